"""Loss on rare and frequent tokens (write-up 000's "tails of the distribution" claim).

Each validation target is put in a bucket by how often its token occurs in the training
split: the tokens sorted from most to least frequent and cut where the cumulative share of
training occurrences reaches 50%, 90% and 99% (so `head` is the few tokens that make half
of the text, `tail` those that make its last 1%), plus `unseen` (never in training). Per
bucket: the mean next-token loss, the accuracy and how many validation targets fall in it.
Padding targets of padded text rows (`data.layout: rows`) are left out, scored or not.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.data.splits import eval_batches

BUCKETS = (("head", 0.5), ("body", 0.9), ("long tail", 0.99), ("tail", 1.0))


def frequency_buckets(train_tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """The bucket index (0..len(BUCKETS); the last means unseen) of every token id (V,)."""
    counts = np.bincount(np.asarray(train_tokens), minlength=vocab_size)[:vocab_size]
    order = np.argsort(-counts, kind="stable")  # most frequent first
    share = np.cumsum(counts[order]) / max(counts.sum(), 1)  # (V,) cumulative share
    bucket = np.full(vocab_size, len(BUCKETS), dtype=np.int64)
    edges = [cut for _, cut in BUCKETS]
    ranks = np.searchsorted(edges, share - counts[order] / max(counts.sum(), 1), side="right")
    seen = counts[order] > 0
    bucket[order[seen]] = np.minimum(ranks[seen], len(BUCKETS) - 1)
    return bucket


@torch.no_grad()
def loss_by_frequency(
    model: nn.Module, split, train_tokens: np.ndarray, batch_size: int, max_batches: int | None
) -> dict:
    """Mean loss, accuracy and target count per frequency bucket (see the module doc), on
    the validation `split` (its fixed random subset of `max_batches` batches)."""
    V = model.vocab_size
    bucket = torch.from_numpy(frequency_buckets(train_tokens, V))  # (V,)
    n = len(BUCKETS) + 1
    loss_sum, hits, count = torch.zeros(n, dtype=torch.float64), torch.zeros(n), torch.zeros(n)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    for batch in eval_batches(split, batch_size, max_batches):
        logits = model(batch.x.to(device)).float()[..., :V]  # (B, T, V)
        y = batch.y.to(device)  # (B, T)
        loss = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").cpu()  # (B, T)
        right = (logits.argmax(-1) == y).float().cpu()  # (B, T)
        b = bucket[y.cpu()]  # (B, T)
        keep = torch.ones_like(b, dtype=torch.bool) if batch.real is None else batch.real
        b, loss, right = b[keep], loss[keep], right[keep]  # (n,) the rows' own targets
        loss_sum.index_add_(0, b, loss.double())
        hits.index_add_(0, b, right)
        count.index_add_(0, b, torch.ones(b.numel()))
    model.train(was_training)
    names = [name for name, _ in BUCKETS] + ["unseen"]
    return {
        name: {
            "targets": int(count[i]),
            "loss": float(loss_sum[i] / count[i]) if count[i] else None,
            "accuracy": float(hits[i] / count[i]) if count[i] else None,
        }
        for i, name in enumerate(names)
    }
