"""Mamba probes: what Δ does per input position, and how much of each position the final
state still holds.

For one sequence and each Mamba layer:
- `dt_mean`, `dt_std`: Δ at each position, mean and standard deviation over the E
  channels (a large Δ writes the input into the state and forgets the past; a small Δ
  skips the input and keeps the state; the selective mechanism of Gu & Dao 2023, §3.5).
- `weight`: the weight input position s keeps in the state at the last position T - 1,
  Π_{r>s} Ā_r, averaged over channels and state dimensions (|Ā| for bilinear, whose Ā can
  be negative). The last position keeps weight 1. This is the decay part only; B̄_s scales
  what was written at s.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attnlab.probes.capture import capture


def mamba_layers(model: nn.Module) -> list[int]:
    """Indices of the blocks whose mixer is Mamba."""
    return [i for i, b in enumerate(getattr(model, "blocks", [])) if hasattr(b.mixer, "hook_dt")]


@torch.no_grad()
def ssm_profile(model: nn.Module, tokens: torch.Tensor) -> list[dict]:
    """Δ and kept weights per position of every Mamba layer for tokens (T,)."""
    layers = mamba_layers(model)
    if not layers:
        return []
    names = [f"blocks.{i}.mamba.{h}" for i in layers for h in ("hook_dt", "hook_a_bar")]
    dev = next(model.parameters()).device
    with capture(model, names) as cache:
        model(tokens[None].to(dev))
    out = []
    for i in layers:
        dt = cache[f"blocks.{i}.mamba.hook_dt"][0].double()  # (T, E)
        log_a = cache[f"blocks.{i}.mamba.hook_a_bar"][0].double().abs().clamp_min(1e-300).log()
        # log Π_{r>s} |Ā_r| = (Σ_{r<=T-1} - Σ_{r<=s}) log|Ā_r|: (T, E, N)
        total = log_a.sum(0, keepdim=True)
        after = total - log_a.cumsum(0)
        weight = after.exp().mean(dim=(1, 2))  # (T,)
        out.append(
            {
                "name": f"blocks.{i}.mamba",
                "dt_mean": dt.mean(1).tolist(),
                "dt_std": dt.std(1).tolist(),
                "weight": weight.tolist(),
            }
        )
    return out


def ssm_data(model: nn.Module, tokens, labels: list[str]) -> dict | None:
    """`ssm_profile` of one sequence with its token labels; None when the model has no
    Mamba layer."""
    layers = ssm_profile(model, torch.as_tensor(np.asarray(tokens), dtype=torch.long))
    if not layers:
        return None
    return {"labels": labels, "layers": layers}
