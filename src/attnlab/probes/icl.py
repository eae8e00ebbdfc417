"""In-context learning score (Olsson et al. 2022): late-token loss minus early-token loss.

Legend: N sequences, B batch, T positions.

Olsson et al. average the loss of the 500th token of 512-token contexts minus that of
the 50th; a model that uses its context gets better later, so the score is negative
(theirs settles near -0.4 nats). For shorter contexts the positions are scaled:
early = round(50 T / 512), late = min(T - 1, round(500 T / 512)) (T = 128: 12 and 125;
T = 48: 5 and 47). Positions count the predicting input token from 0. To cut the noise of
single positions, each is a window of ±T // 64 positions (T = 128: 10-14 and 123-127;
below 64 tokens exactly the two positions). Every target of every sequence counts here,
also on synthetic tasks whose training loss is masked, except padding: on padded text
rows (`data.layout: rows`) only the rows whose two windows hold their own tokens count
(a padding target is no context to learn from, scored or not).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.data.splits import eval_batches


def icl_window(seq_len: int) -> int:
    """Half-width of the position windows averaged for the ICL score."""
    return seq_len // 64


def icl_positions(seq_len: int) -> tuple[int, int]:
    """(early, late) positions for contexts of `seq_len` tokens (window centres)."""
    if seq_len < 3:
        raise ValueError(f"the ICL score needs seq_len >= 3 (got {seq_len})")
    early = max(0, round(50 * seq_len / 512))
    late = min(seq_len - 1, round(500 * seq_len / 512))
    return early, max(late, early + 1)


@torch.no_grad()
def per_position_loss(
    model: nn.Module, split, batch_size: int, max_batches: int | None = None
) -> torch.Tensor:
    """(N, T) next-token loss of every position of a split (or of its fixed random
    subset of `max_batches` batches, `attnlab.data.splits.eval_ids`); NaN at padding."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for batch in eval_batches(split, batch_size, max_batches):
        logits = model(batch.x.to(device)).float()  # (B, T, Vp)
        y = batch.y.to(device)
        loss = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").cpu()  # (B, T)
        if batch.real is not None:
            loss = loss.masked_fill(~batch.real, math.nan)
        rows.append(loss)
    model.train(was_training)
    return torch.cat(rows)


def icl_score(model: nn.Module, split, batch_size: int, max_batches: int | None = None) -> dict:
    """ICL score with its standard error and the per-position loss curve (JSON-ready)."""
    losses = per_position_loss(model, split, batch_size, max_batches)  # (N, T)
    T = losses.shape[1]
    early, late = icl_positions(T)
    w = icl_window(T)
    lo = losses[:, max(0, early - w) : early + w + 1].double().mean(1)  # (N,) NaN: padding
    hi = losses[:, late - w : min(T, late + w + 1)].double().mean(1)  # (N,)
    diff = hi - lo  # (N,)
    diff = diff[~diff.isnan()]  # (n,) the sequences long enough
    n = len(diff)
    se = float(diff.std() / math.sqrt(n)) if n > 1 else float("nan")
    return {
        "score": float(diff.mean()) if n else float("nan"),
        "stderr": se,
        "early_position": early,
        "late_position": late,
        "window": w,
        "sequences": n,
        "loss_by_position": losses.nanmean(0).tolist(),  # NaN where every row is padding
    }
