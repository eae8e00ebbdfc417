"""AdamW with decoupled weight decay on matrices only, and the learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnlab.config.schema import TrainConfig


def decays(p: nn.Parameter) -> bool:
    """Whether weight decay applies: tensors of >= 2 dims (weights), unless a module marked
    the parameter `_no_weight_decay` (Mamba's A_log and D, as the reference Mamba does).
    Biases, norms, gates and other vectors never decay."""
    return p.dim() >= 2 and not getattr(p, "_no_weight_decay", False)


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, precision: str | None = None
) -> torch.optim.AdamW:
    """AdamW with two groups: the parameters that `decays` and the rest (no weight decay).

    Fused (one kernel for every parameter's update, CPU and CUDA; 6x faster than the
    per-parameter loop on a 2-core CPU at the write-up's size, docs/LOG.md) unless the run
    trains in `16-mixed`: there the loss scaler unscales the gradients, and a fused AdamW
    would unscale them itself, which gradient clipping cannot follow. `precision` is the
    run's resolved one (default: the config's).
    """
    decay, no_decay = [], []
    seen: set[int] = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if decays(p) else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = fused_ok(model) and (precision or cfg.precision) not in ("16-mixed", "auto")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)


def fused_ok(model: nn.Module) -> bool:
    """Whether fused AdamW supports every parameter (floating point on CPU or CUDA)."""
    return all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in model.parameters()
    )


def lr_at(step: int, total: int, cfg: TrainConfig, plateau_scale: float = 1.0) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total`.

    `constant`: linear warmup over `warmup_steps`, then `lr`.
    `cosine`: the same warmup, then a cosine from `lr` down to `min_lr_ratio * lr` at `total`.
    `plateau`: the same warmup, then `lr * plateau_scale` (see `Plateau`).
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "plateau":
        return cfg.lr * plateau_scale
    span = max(1, total - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


def plateau_update(scale: float, bad: int, improved: bool, cfg: TrainConfig) -> tuple[float, int]:
    """One evaluation of PyTorch's `ReduceLROnPlateau` (mode min, threshold 0): returns the
    new (scale, evaluations without improvement).

    After more than `plateau_patience` evaluations in a row without a new best validation
    loss the scale is multiplied by `plateau_factor`, floored at `min_lr_ratio`.
    """
    if improved:
        return scale, 0
    bad += 1
    if bad > cfg.plateau_patience:
        return max(scale * cfg.plateau_factor, cfg.min_lr_ratio), 0
    return scale, bad
