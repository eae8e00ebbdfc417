"""Interventions: edit activations at named hook points, ablate heads, patch activations.

    with intervene(model, {"blocks.0.hook_resid_post": lambda x: x * 0}):
        logits = model(tokens)
    with ablate(model, {1: [0, 3]}, how="mean", reference=(tokens,)):
        logits = model(tokens)
    result = patch(model, clean, corrupted, "blocks.1.attn.hook_z", metric, index)

Names are `capture`'s (TransformerLens-style): a head's output before the output
projection is `{layer}.hook_z` (B, T, H, E) with `{layer}` `blocks.{i}.attn` in a
decoder, `encoder.{i}.attn`, `decoder.{i}.attn` or `decoder.{i}.cross` in an
encoder-decoder; the residual stream is `blocks.{i}.hook_resid_pre` / `hook_resid_post`
(B, T, D). `capture` stays read-only; these contexts attach forward hooks whose return
value replaces the activation, and always remove them on exit (also after an exception),
so the model is exactly as before. Inputs are tuples of the model's positional arguments
(`(tokens,)`, or `(tgt, src)` for an encoder-decoder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from attnlab.probes.capture import capture, hook_points, probe_name

Edit = Callable[[torch.Tensor], torch.Tensor | None]


@contextmanager
def intervene(model: nn.Module, edits: dict[str, Edit]) -> Iterator[None]:
    """Inside the context, each hook point `name` passes its activation through
    `edits[name]` (its return value replaces the activation; None keeps it, edited in
    place or not). Unknown names are an error."""
    points = hook_points(model)
    unknown = sorted(set(edits) - set(points))
    if unknown:
        raise KeyError(f"no hook point named {unknown}; known: {sorted(points)}")
    handles = []
    try:
        for name, fn in edits.items():
            handles.append(points[name].register_forward_hook(lambda _m, _i, out, fn=fn: fn(out)))
        yield
    finally:
        for h in handles:
            h.remove()


def head_output(layer: int | str) -> str:
    """The `hook_z` name of a layer: an index is a decoder's `blocks.{i}.attn`, a string
    names the attention module itself (`decoder.0.cross`)."""
    prefix = f"blocks.{layer}.attn" if isinstance(layer, int) else layer
    return f"{prefix}.hook_z"


def unit_output(model: nn.Module, layer: int | str) -> str:
    """The hook point whose last-but-one axis holds a layer's units: an attention layer's
    `hook_z` (B, T, H, E; heads), a Mamba layer's `hook_ssm_out` (B, T, E; channels, the
    unit its hidden attention is scored in)."""
    if isinstance(layer, int):
        mixer = model.blocks[layer].mixer
        if hasattr(mixer, "hook_ssm_out"):
            return f"blocks.{layer}.{mixer.alias}.hook_ssm_out"
    return head_output(layer)


ABLATIONS = ("zero", "mean", "mean_pos", "resample")


@contextmanager
def ablate(
    model: nn.Module,
    heads: dict[int | str, list[int]],
    how: str = "zero",
    reference: tuple[torch.Tensor, ...] | None = None,
) -> Iterator[None]:
    """Replace the outputs (`hook_z`, before the output projection) of the heads `heads`
    (layer → head indices; for a Mamba layer, channel indices of its `hook_ssm_out`), the
    model's other activations untouched, restored on exit:

    - `zero`: by zero;
    - `mean`: by their mean over the batch and positions of `reference` (one vector);
    - `mean_pos`: by their mean over the batch of `reference` at each position (the
      position's typical output; `reference` at least as long as the ablated inputs);
    - `resample`: row b by row b mod R of `reference`'s own output at the same positions
      (another input's activation: a resample ablation).

    `reference` is the model's inputs (a batch other than the one scored, for `mean_pos`
    and `resample`), run once in eval mode without gradients."""
    names = {unit_output(model, layer): list(hs) for layer, hs in heads.items()}
    ref = ablation_values(model, list(names), how, reference)

    def edit(name: str, hs: list[int]) -> Edit:
        return lambda z: replace_heads(z, hs, how, ref.get(name))

    with intervene(model, {n: edit(n, hs) for n, hs in names.items()}):
        yield


def ablation_values(
    model: nn.Module, names: list[str], how: str, reference: tuple[torch.Tensor, ...] | None
) -> dict[str, torch.Tensor]:
    """What `replace_heads` puts in, per `hook_z` name: for `mean` (H, E), `mean_pos`
    (T_ref, H, E), `resample` (R, T_ref, H, E) (a `hook_ssm_out`: the same without E),
    from one eval-mode, gradient-free run of `reference`; nothing for `zero`."""
    if how not in ABLATIONS:
        raise ValueError(f"ablate how={how!r}: choose one of {', '.join(ABLATIONS)}")
    if how == "zero":
        return {}
    if reference is None:
        raise ValueError(f"{how} ablation needs a reference batch (reference=(inputs,))")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, names, to_cpu=False) as cache:
            model(*reference)
    finally:
        model.train(was_training)
    reduce = {"mean": lambda z: z.mean(dim=(0, 1)), "mean_pos": lambda z: z.mean(dim=0)}
    return {n: reduce.get(how, lambda z: z)(cache[n]) for n in names}


def replace_heads(
    z: torch.Tensor, hs: list[int], how: str, ref: torch.Tensor | None
) -> torch.Tensor:
    """A copy of z (B, T, H, E), or (B, T, E) channels, with units `hs` of axis 2 ablated
    `how`, from `ablation_values`'s `ref` for that hook point."""
    B, T = z.shape[:2]
    z = z.clone()
    if how == "zero":
        z[:, :, hs] = 0.0
    elif how == "mean":
        z[:, :, hs] = ref[hs].to(z.dtype)
    else:
        T_ref = ref.shape[0 if how == "mean_pos" else 1]
        if T_ref < T:
            raise ValueError(f"{how} ablation: reference of {T_ref} positions < {T}")
        if how == "mean_pos":
            z[:, :, hs] = ref[:T, hs].to(z.dtype)  # (T, |hs|[, E]) over the batch
        else:
            rows = torch.arange(B, device=ref.device) % ref.shape[0]
            z[:, :, hs] = ref[rows, :T][:, :, hs].to(z.dtype)  # (B, T, |hs|[, E])
    return z


@dataclass
class Patched:
    """An activation-patching measurement: the metric on the clean run, on the corrupted
    run, and on the corrupted run with the activation patched in from the clean one;
    `recovered` is the share of the clean − corrupted gap the patch restores."""

    clean: float
    corrupted: float
    patched: float

    @property
    def recovered(self) -> float:
        gap = self.clean - self.corrupted
        return (self.patched - self.corrupted) / gap if gap else float("nan")


Index = tuple[int | slice, ...]


@torch.no_grad()
def patch(
    model: nn.Module,
    clean: tuple[torch.Tensor, ...],
    corrupted: tuple[torch.Tensor, ...],
    name: str,
    metric: Callable[[torch.Tensor], float],
    index: Index = (),
) -> Patched:
    """Run `clean` and `corrupted` (same shapes), then `corrupted` with the activation at
    hook point `name` — its part `index` (e.g. `(slice(None), pos)` for one residual
    position, `(slice(None), slice(None), head)` for one head of `hook_z`) — taken from
    the clean run; `metric(logits) → float` scores each run."""
    with capture(model, [name], to_cpu=False) as cache:
        clean_logits = model(*clean)
    source = cache[name]
    corrupted_logits = model(*corrupted)

    def put(act: torch.Tensor) -> torch.Tensor:
        if act.shape != source.shape:
            raise ValueError(f"{name}: clean {tuple(source.shape)} vs corrupted {tuple(act.shape)}")
        act = act.clone()
        act[index] = source[index]
        return act

    with intervene(model, {name: put}):
        patched_logits = model(*corrupted)
    return Patched(metric(clean_logits), metric(corrupted_logits), metric(patched_logits))


def head_patching(
    model: nn.Module,
    clean: tuple[torch.Tensor, ...],
    corrupted: tuple[torch.Tensor, ...],
    metric: Callable[[torch.Tensor], float],
    layers: list[int | str] | None = None,
) -> tuple[torch.Tensor, Patched]:
    """Patch every head's output (all positions) from clean into corrupted, one at a time:
    the (L, H) heat map of the share of the metric's gap each restores, and the unpatched
    baseline (`layers`: default every `blocks.{i}.attn` of a decoder)."""
    if layers is None:
        layers = list(range(len(model.blocks)))
    names = [head_output(layer) for layer in layers]
    n_heads = [_heads(model, n) for n in names]
    grid = torch.full((len(names), max(n_heads, default=0)), float("nan"))  # (L, H)
    base = None
    for i, (name, h_count) in enumerate(zip(names, n_heads, strict=True)):
        for h in range(h_count):
            res = patch(model, clean, corrupted, name, metric, (slice(None), slice(None), h))
            grid[i, h] = res.recovered
            if base is None:
                base = res
    return grid, base


def resid_patching(
    model: nn.Module,
    clean: tuple[torch.Tensor, ...],
    corrupted: tuple[torch.Tensor, ...],
    metric: Callable[[torch.Tensor], float],
) -> torch.Tensor:
    """Patch the residual stream entering each block (`hook_resid_pre`) at each position,
    one at a time: the (L, T) heat map of the share of the metric's gap each restores."""
    T = clean[0].shape[1]
    grid = torch.empty(len(model.blocks), T)  # (L, T)
    for i in range(len(model.blocks)):
        for t in range(T):
            res = patch(
                model, clean, corrupted, f"blocks.{i}.hook_resid_pre", metric, (slice(None), t)
            )
            grid[i, t] = res.recovered
    return grid


def _heads(model: nn.Module, name: str) -> int:
    """The head count of the attention module whose `hook_z` is `name`."""
    for path, module in model.named_modules():
        hook = getattr(module, "hook_z", None)
        if hook is not None and probe_name(model, f"{path}.hook_z") == name:
            return module.n_heads
    raise KeyError(f"no attention module has the hook point {name}")
