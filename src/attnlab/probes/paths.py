"""Path ablation, path patching and pattern-preserving ablation: one head's contribution
removed (or restored) only where a chosen downstream input reads it.

    with path_ablate(model, 0, [2], [("k", 1)], how="resample", reference=(other,)):
        logits = model(tokens)  # layer 1's keys see head 0.2 ablated; all else is clean

Heads `hs` of layer a write c = Σ_h z_h W_O,hᵀ (B, T, D) into the residual stream. A path
ablation replaces z_h by its ablated value (`intervene.ablate`'s `mean`, `mean_pos`,
`resample` or `zero`) in what one receiver reads, and nowhere else: the receiver's input
becomes stream − c + c_ablated. Receivers are `("q" | "k" | "v", b)`, block b's queries,
keys or values (its `hook_{q,k,v}_input`, before the norm; b > a), and `("logits", None)`,
the stream the final norm and unembedding read (the last block's `hook_resid_post`), the
head's direct path to the answer. Ablating into "k" of the induction heads' layer alone
tests K-composition (Olsson et al. 2022; Elhage et al. 2021); path patching (Wang et al.
2022) is the same edit with the clean run's own output put into a corrupted run.

Pattern-preserving ablation (Olsson et al. 2022) ablates heads with every attention
pattern of the model held at its clean value, so only what the heads write through the
values (and onward) is removed; the effect it lacks against an ordinary ablation is the
effect through later heads' queries and keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from einops import rearrange
from torch import nn

from attnlab.probes.capture import capture
from attnlab.probes.intervene import (
    Patched,
    ablation_values,
    head_output,
    intervene,
    replace_heads,
)

RECEIVERS = ("q", "k", "v", "logits")
Receiver = tuple[str, int | None]


def head_write(model: nn.Module, layer: int, z: torch.Tensor) -> torch.Tensor:
    """What layer `layer`'s heads write into the residual stream from z (B, T, H, E):
    Σ_h z_h W_O,hᵀ (B, T, D), without the output bias (a head's share has none)."""
    attn = model.blocks[layer].mixer
    wo = rearrange(attn.out.weight, "d (h e) -> h e d", h=attn.n_heads)  # (H, E, D)
    return torch.einsum("bthe,hed->btd", z, wo.to(z.dtype))


def receiver_point(model: nn.Module, sender: int, receiver: Receiver) -> str:
    """The hook point a receiver reads: `blocks.{b}.hook_{q,k,v}_input` or the last
    block's `hook_resid_post` for "logits"; a receiver not after the sender is an error."""
    what, b = receiver
    if what not in RECEIVERS:
        raise ValueError(f"receiver {what!r}: choose one of {', '.join(RECEIVERS)}")
    if what == "logits":
        return f"blocks.{len(model.blocks) - 1}.hook_resid_post"
    if b is None or not sender < b < len(model.blocks):
        raise ValueError(f"receiver ({what}, {b}): the layer must come after the sender {sender}")
    if not hasattr(model.blocks[b], f"hook_{what}_input"):
        raise ValueError(f"block {b}'s mixer has no separate {what} input")
    return f"blocks.{b}.hook_{what}_input"


@contextmanager
def path_ablate(
    model: nn.Module,
    layer: int,
    heads: list[int],
    receivers: list[Receiver],
    how: str = "mean_pos",
    reference: tuple[torch.Tensor, ...] | None = None,
) -> Iterator[None]:
    """Inside the context, each receiver reads heads `heads` of block `layer` ablated
    `how` (values from `reference`, as `ablate`); the heads' output itself, and every
    other path it takes, are unchanged."""
    sender = head_output(layer)
    ref = ablation_values(model, [sender], how, reference).get(sender)
    delta: dict[str, torch.Tensor] = {}

    def record(z: torch.Tensor) -> None:  # (B, T, H, E), left as it is
        change = replace_heads(z, heads, how, ref) - z  # (B, T, H, E), zero outside heads
        delta["write"] = head_write(model, layer, change)  # (B, T, D)

    def add(x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        return x + delta["write"].to(x.dtype)

    edits: dict[str, Callable] = {sender: record}
    for r in receivers:
        edits[receiver_point(model, layer, r)] = add
    with intervene(model, edits):
        yield


@contextmanager
def frozen_patterns(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Iterator[None]:
    """Inside the context, every attention layer's pattern is the one it had on a clean
    (eval, gradient-free) run of `inputs`: run the same inputs inside it."""
    is_pattern = lambda n: n.endswith(".hook_pattern")  # noqa: E731
    with torch.no_grad(), capture(model, is_pattern, to_cpu=False) as cache:
        model(*inputs)
    names = cache.layer_names(".hook_pattern")

    def keep(name: str) -> Callable:
        def fn(p: torch.Tensor) -> torch.Tensor:  # (B, H, T, S)
            if p.shape != cache[name].shape:
                raise ValueError(f"{name}: frozen on {tuple(cache[name].shape)}, run on {p.shape}")
            return cache[name]

        return fn

    with intervene(model, {n: keep(n) for n in names}):
        yield


@contextmanager
def pattern_preserving(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    heads: dict[int, list[int]],
    how: str = "mean_pos",
    reference: tuple[torch.Tensor, ...] | None = None,
) -> Iterator[None]:
    """Heads ablated (as `ablate`) with every attention pattern held at its clean value
    on `inputs` (run those inputs inside the context)."""
    names = {head_output(layer): hs for layer, hs in heads.items()}
    ref = ablation_values(model, list(names), how, reference)
    edits = {
        n: (lambda z, n=n, hs=hs: replace_heads(z, hs, how, ref.get(n))) for n, hs in names.items()
    }
    with frozen_patterns(model, inputs), intervene(model, edits):
        yield


@torch.no_grad()
def path_patch(
    model: nn.Module,
    clean: tuple[torch.Tensor, ...],
    corrupted: tuple[torch.Tensor, ...],
    layer: int,
    heads: list[int],
    receivers: list[Receiver],
    metric: Callable[[torch.Tensor], float],
) -> Patched:
    """Path patching: the corrupted run with the clean run's output of heads `heads`
    (row for row) put only into `receivers`; `recovered` is the share of the metric's
    clean − corrupted gap it restores (0 = corrupted, 1 = clean)."""
    clean_logits, corrupted_logits = model(*clean), model(*corrupted)
    with path_ablate(model, layer, heads, receivers, "resample", clean):
        patched = model(*corrupted)
    return Patched(metric(clean_logits), metric(corrupted_logits), metric(patched))
