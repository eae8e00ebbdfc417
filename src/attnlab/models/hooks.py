"""Named capture points (TransformerLens-style `HookPoint`s).

A `HookPoint` is an identity module placed at an activation that probes read
(`blocks.0.attn.hook_pattern`). It stores nothing itself: `attnlab.probes.capture` attaches
forward hooks to the points it wants and always removes them. A module asks
`hook.active` to decide whether to compute an activation that its fast path skips (the
explicit attention pattern is only built while something listens for it). Tools that
trace modules without forward hooks (nnsight) see every point after `hook.always = True`
(`attnlab.probes.capture.all_hook_points`).
"""

from __future__ import annotations

import torch
from torch import nn


class HookPoint(nn.Module):
    """Identity at a named activation; probes attach forward hooks to it."""

    always = False  # True: run on every forward, listened to or not (see module doc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def active(self) -> bool:
        """True while a probe listens (a forward hook is attached) or `always` is set."""
        return self.always or bool(self._forward_hooks)


class HiddenAttentionPoint(HookPoint):
    """A Mamba layer's hidden attention α (B, E, T, S) (`models.mamba`): a data-dependent
    linear operator per channel, not softmax weights (signed, rows not summing to 1)."""
