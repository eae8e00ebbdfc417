"""Splits and batches: every split hands out `(x, y, mask)` for a list of sequence ids.

Legend: N sequences in a split, T = seq_len, B = batch size.

- `StreamSplit` cuts one token stream into N = (len - 1) // T contiguous windows of T + 1
  tokens (inputs and next-token targets overlap by one); the gather is one vectorised
  index into the memory-mapped array, never a Python loop over tokens.
- `RowSplit` holds fixed rows (synthetic tasks) and a mask of the scored targets.
- `data.piglatin.TranslationSplit` holds word pairs (with a source for encoder-decoders).

Which sequences form training step s is a pure function of (seed, s), so resuming at
step s replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Batch:
    """Inputs, next-token targets, the mask of targets that are scored and, for
    encoder-decoder tasks, the source sequences."""

    x: torch.Tensor  # (B, T) int64
    y: torch.Tensor  # (B, T) int64
    mask: torch.Tensor | None = None  # (B, T) bool, None = every target counts
    src: torch.Tensor | None = None  # (B, S) int64, padded with 0

    def to(self, device) -> Batch:
        m = None if self.mask is None else self.mask.to(device)
        src = None if self.src is None else self.src.to(device)
        return Batch(self.x.to(device), self.y.to(device), m, src)

    def inputs(self) -> tuple[torch.Tensor, ...]:
        """The model's positional arguments: `(x,)` or `(x, src)`."""
        return (self.x,) if self.src is None else (self.x, self.src)


class StreamSplit:
    """Contiguous windows of one token stream."""

    def __init__(self, tokens: np.ndarray, seq_len: int):
        self.tokens = tokens  # (L,) memory-mapped
        self.seq_len = seq_len
        self.num_sequences = max(0, (len(tokens) - 1) // seq_len)

    @property
    def num_tokens(self) -> int:
        return self.num_sequences * self.seq_len

    def get(self, ids: np.ndarray) -> Batch:
        """The windows `ids` as a batch."""
        starts = np.asarray(ids, dtype=np.int64) * self.seq_len  # (B,)
        idx = starts[:, None] + np.arange(self.seq_len + 1)  # (B, T+1)
        rows = torch.from_numpy(self.tokens[idx].astype(np.int64))  # (B, T+1)
        return Batch(rows[:, :-1], rows[:, 1:])


class RowSplit:
    """Fixed sequences of T + 1 tokens with a per-target score mask."""

    def __init__(self, rows: np.ndarray, mask: np.ndarray):
        self.rows = rows  # (N, T+1)
        self.mask = mask  # (N, T) bool
        self.num_sequences = len(rows)
        self.seq_len = rows.shape[1] - 1

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())

    def get(self, ids: np.ndarray) -> Batch:
        ids = np.asarray(ids, dtype=np.int64)
        rows = torch.from_numpy(self.rows[ids].astype(np.int64))  # (B, T+1)
        mask = torch.from_numpy(np.asarray(self.mask[ids], dtype=bool))  # (B, T)
        return Batch(rows[:, :-1], rows[:, 1:], mask)


def steps_per_epoch(split, batch_size: int) -> int:
    """Optimizer steps in one pass over `split` with global batch `batch_size` (drop last)."""
    return split.num_sequences // batch_size


def train_ids(num_sequences: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Sequence ids of training step `step`: epoch-wise permutations seeded by (seed, epoch)."""
    per_epoch = num_sequences // batch_size
    epoch, b = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(num_sequences)
    return perm[b * batch_size : (b + 1) * batch_size]


def eval_batches(split, batch_size: int, max_batches: int | None = None):
    """In-order batches over a whole split (the last one may be short)."""
    n = split.num_sequences
    count = -(-n // batch_size)
    if max_batches is not None:
        count = min(count, max_batches)
    for i in range(count):
        yield split.get(np.arange(i * batch_size, min(n, (i + 1) * batch_size)))
