"""`capture(model)`: record activations at named hook points, TransformerLens-style.

    with capture(model) as cache:
        model(tokens)
    cache["blocks.0.attn.hook_pattern"]  # (B, H, T, S)

Names are module paths with the block's mixer under its alias (`blocks.{i}.attn.…` for
attention). Entering the context attaches forward hooks to the chosen `HookPoint`s, and
adds the static tensors probes read (`blocks.{i}.attn.conv.kernel` (C, K) and
`blocks.{i}.attn.smear_gate` (H,) where they exist); leaving it always removes every hook,
so outside a capture the fast path runs and nothing is stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from attnlab.models.conv import CausalDepthwiseConv
from attnlab.models.hooks import HiddenAttentionPoint, HookPoint


class Cache(dict):
    """Captured tensors by name (detached; on CPU unless the capture kept the device)."""

    def layer_names(self, suffix: str) -> list[str]:
        """Captured names ending in `suffix`, in block order."""
        found = [n for n in self if n.endswith(suffix)]
        return sorted(found, key=lambda n: [int(p) if p.isdigit() else p for p in n.split(".")])


def probe_name(model: nn.Module, module_path: str) -> str:
    """The TransformerLens-style name of a module path (`blocks.0.mixer.x` → `blocks.0.attn.x`)."""
    m = re.match(r"blocks\.(\d+)\.mixer(\.|$)", module_path)
    if m is None:
        return module_path
    alias = getattr(model.blocks[int(m.group(1))].mixer, "alias", "mixer")
    return f"blocks.{m.group(1)}.{alias}" + module_path[m.end(0) - len(m.group(2)) :]


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Every hook point of a model by probe name."""
    return {
        probe_name(model, path): module
        for path, module in model.named_modules()
        if isinstance(module, HookPoint)
    }


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside the context, its own mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def softmax_patterns(model: nn.Module, where: Callable[[str], bool] = lambda _n: True) -> list:
    """Names of the attention layers' softmax patterns (B, H, T, S) that `where` keeps;
    Mamba's hidden attention (`HiddenAttentionPoint`, (B, E, T, S)) is left out."""
    return [
        n
        for n, p in hook_points(model).items()
        if n.endswith("hook_pattern") and not isinstance(p, HiddenAttentionPoint) and where(n)
    ]


def static_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Convolution kernels (C, K) and smear gates σ(α) (H,) of every block, by probe name."""
    out = {}
    for path, module in model.named_modules():
        if isinstance(module, CausalDepthwiseConv):
            out[probe_name(model, f"{path}.kernel")] = module.conv.weight[:, 0, :].detach()
        gate = getattr(module, "smear_gate", None)
        if callable(gate) and gate() is not None:
            out[probe_name(model, f"{path}.smear_gate")] = gate()
    return out


@contextmanager
def all_hook_points(model: nn.Module) -> Iterator[nn.Module]:
    """Within the context every hook point of `model` runs on every forward (the attention
    builds its explicit pattern), so tools that trace modules without forward hooks, such
    as nnsight, can read and edit `hook_pattern` and `hook_z`; restored on exit."""
    points = list(hook_points(model).values())
    before = [p.always for p in points]
    for p in points:
        p.always = True
    try:
        yield model
    finally:
        for p, b in zip(points, before, strict=True):
            p.always = b


@contextmanager
def capture(
    model: nn.Module,
    names: Callable[[str], bool] | list[str] | None = None,
    to_cpu: bool = True,
) -> Iterator[Cache]:
    """Record the activations of the hook points `names` selects (default: all).

    `names` is a list of probe names or a predicate on them. Each forward pass inside the
    context overwrites the previous one's entries. Unknown names are an error (a typo
    would otherwise capture nothing).
    """
    points, static = hook_points(model), static_tensors(model)
    if isinstance(names, list):
        unknown = sorted(set(names) - set(points) - set(static))
        if unknown:
            raise KeyError(f"no hook point named {unknown}; known: {sorted(points)}")
        wanted = set(names)
        keep = wanted.__contains__
    else:
        keep = names or (lambda _: True)
    cache = Cache()
    for name, tensor in static.items():
        if keep(name):
            cache[name] = tensor.cpu() if to_cpu else tensor
    handles = []
    try:
        for name, point in points.items():
            if keep(name):

                def hook(_module, _inputs, output, name=name):
                    out = output.detach()
                    cache[name] = out.cpu() if to_cpu else out

                handles.append(point.register_forward_hook(hook))
        yield cache
    finally:
        for h in handles:
            h.remove()
