"""Token-level loss and accuracy, summed (not averaged) so batches and ranks add up exactly.

Legend: B batch, T time, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_stats(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None,
    accuracy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(sum of cross-entropy, number of scored targets, number predicted right or None).

    `logits` (B, T, V) — possibly padded with -inf columns, which neither the loss nor the
    argmax can pick — `targets` (B, T), `mask` (B, T) bool or None for every target.
    The argmax pass is skipped when `accuracy` is False (training steps).
    """
    V = logits.shape[-1]
    flat = logits.reshape(-1, V)  # (B*T, V), a view
    y = targets.reshape(-1)  # (B*T,)
    if mask is not None:
        keep = mask.reshape(-1)
        flat, y = flat[keep], y[keep]
    loss_sum = F.cross_entropy(flat.float(), y, reduction="sum")
    correct = (flat.argmax(dim=-1) == y).sum() if accuracy else None
    return loss_sum, torch.tensor(y.numel(), device=y.device), correct
