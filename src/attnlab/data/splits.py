"""Splits and batches: every split hands out `(x, y, mask)` for a list of sequence ids.

Legend: N sequences in a split, T = seq_len, B = batch size.

- `StreamSplit` cuts one token stream into N = (len - 1) // T contiguous windows of T + 1
  tokens (inputs and next-token targets overlap by one); the gather is one vectorised
  index into the memory-mapped array, never a Python loop over tokens.
- `RowSplit` holds fixed inputs, targets and the mask of scored targets (synthetic tasks).
- `data.piglatin.TranslationSplit` holds word pairs (with a source for encoder-decoders).

Which sequences form training step s is a pure function of (seed, s), so resuming at
step s replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnlab.errors import DataError


@dataclass
class Batch:
    """Inputs, next-token targets, the mask of targets that are scored and, for
    encoder-decoder tasks, the source sequences."""

    x: torch.Tensor  # (B, T) int64
    y: torch.Tensor  # (B, T) int64
    mask: torch.Tensor | None = None  # (B, T) bool, None = every target counts
    src: torch.Tensor | None = None  # (B, S) int64, padded with 0
    real: torch.Tensor | None = None  # (B, T) bool: targets that are the row's own tokens,
    # not padding (text rows; None = all), whether or not they are scored

    def to(self, device) -> Batch:
        m = None if self.mask is None else self.mask.to(device)
        src = None if self.src is None else self.src.to(device)
        real = None if self.real is None else self.real.to(device)
        return Batch(self.x.to(device), self.y.to(device), m, src, real)

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
    """Fixed sequences (synthetic tasks, text rows): inputs, a target at every position, the
    mask of the targets that are scored, and for padded rows the targets that are not
    padding, (N, T) each (`attnlab.data.synthetic`, `data.layout: rows`)."""

    def __init__(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        mask: np.ndarray,
        real: np.ndarray | None = None,
    ):
        self.inputs = inputs  # (N, T)
        self.targets = targets  # (N, T)
        self.mask = mask  # (N, T) bool
        self.real = real  # (N, T) bool, or None: no padding
        self.num_sequences = len(inputs)
        self.seq_len = inputs.shape[1]

    @property
    def num_tokens(self) -> int:
        """Scored targets in the split."""
        return int(self.mask.sum())

    def get(self, ids: np.ndarray) -> Batch:
        ids = np.asarray(ids, dtype=np.int64)
        x = torch.from_numpy(self.inputs[ids].astype(np.int64))  # (B, T)
        y = torch.from_numpy(self.targets[ids].astype(np.int64))  # (B, T)
        mask = torch.from_numpy(np.asarray(self.mask[ids], dtype=bool))  # (B, T)
        real = None
        if self.real is not None:
            real = torch.from_numpy(np.asarray(self.real[ids], dtype=bool))  # (B, T)
        return Batch(x, y, mask, real=real)


def steps_per_epoch(split, batch_size: int) -> int:
    """Optimizer steps in one pass over `split` with global batch `batch_size` (drop last)."""
    return split.num_sequences // batch_size


def train_ids(num_sequences: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Sequence ids of training step `step`: epoch-wise permutations seeded by (seed, epoch)."""
    per_epoch = num_sequences // batch_size
    epoch, b = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(num_sequences)
    return perm[b * batch_size : (b + 1) * batch_size]


SPLITS = ("train", "validation", "test")
EVAL_SUBSET_SEED = 0  # one subset for every run and every evaluation of a split


def eval_ids(num_sequences: int, batch_size: int, max_batches: int | None = None) -> np.ndarray:
    """The sequence ids an evaluation reads: all of them, in order, or, when `max_batches`
    batches hold fewer, a fixed random subset (seeded by `EVAL_SUBSET_SEED`, in order of
    id), the same at every evaluation and in every run."""
    k = num_sequences if max_batches is None else min(num_sequences, max_batches * batch_size)
    if k == num_sequences:
        return np.arange(num_sequences)
    return np.sort(np.random.default_rng(EVAL_SUBSET_SEED).permutation(num_sequences)[:k])


def eval_batches(split, batch_size: int, max_batches: int | None = None):
    """Batches over `eval_ids` of the split (the last one may be short); an empty split is
    an error, never a 0.0 accuracy."""
    n = split.num_sequences
    if n == 0:
        raise DataError("an evaluation split holds no sequences; nothing to evaluate")
    ids = eval_ids(n, batch_size, max_batches)
    for i in range(0, len(ids), batch_size):
        yield split.get(ids[i : i + batch_size])


def subset_note(num_sequences: int, batch_size: int, max_batches: int | None) -> dict:
    """What an evaluation capped at `max_batches` reads, for summaries and reports."""
    k = len(eval_ids(num_sequences, batch_size, max_batches))
    whole = k == num_sequences
    return {
        "sequences": k,
        "of": num_sequences,
        "subset": None if whole else f"fixed random subset, seed {EVAL_SUBSET_SEED}",
    }
