"""Token-level loss and accuracy, summed (not averaged) so batches and ranks add up exactly.

Legend: B batch, T time, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_stats(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sum of cross-entropy, number of scored targets, number predicted right).

    `logits` (B, T, V), `targets` (B, T), `mask` (B, T) bool or None for every target.
    """
    V = logits.shape[-1]
    flat = logits.reshape(-1, V).float()  # (B*T, V)
    y = targets.reshape(-1)  # (B*T,)
    if mask is not None:
        keep = mask.reshape(-1)
        flat, y = flat[keep], y[keep]
    loss_sum = F.cross_entropy(flat, y, reduction="sum")
    correct = (flat.argmax(dim=-1) == y).sum()
    return loss_sum, torch.tensor(y.numel(), device=y.device), correct
