"""Synthetic tasks generated from a seed, no download.

`repeat_tokens` (Olsson et al. 2022, "In-context learning and induction heads"): each
sequence of T + 1 tokens is `prefix · segment · segment · filler`, every token uniform
over the vocabulary. The segment length S is drawn per sequence from
[min_segment_len, segment_len] and the prefix length from [0, T + 1 - 2S]: the repeat's
absolute position and its distance back to the first copy both vary, so no positional
head (absolute or relative offset) solves it; matching content does (an induction head).
With one fixed S a single attention layer reaches 100% by attending S - 1 tokens back.
The scored targets are the repeated tokens after the first one (S - 1 per sequence): the
first repeated token cannot be predicted, every later one can.

`assoc_recall` (Zoology's multi-query associative recall), `copying` and
`selective_copying` (the Mamba paper's) are described on their config classes. Every
generator returns rows (N, T + 1) and the mask (N, T) of scored targets (target t predicts
token t + 1) and depends only on (config, split).
"""

from __future__ import annotations

import numpy as np

from attnlab.config.schema import (
    AssocRecallData,
    CopyingData,
    RepeatTokensData,
    SelectiveCopyingData,
)

SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}


def _rng_and_size(cfg, split: str) -> tuple[np.random.Generator, int]:
    n = {"train": cfg.num_train, "validation": cfg.num_val, "test": cfg.num_test}[split]
    return np.random.default_rng([cfg.seed, SPLIT_INDEX[split]]), n


def repeat_tokens(cfg: RepeatTokensData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (N, T+1) of token ids and the mask (N, T) of scored targets for one split."""
    rng, n = _rng_and_size(cfg, split)
    length = cfg.seq_len + 1
    rows = rng.integers(0, cfg.vocab_size, size=(n, length))  # (N, L)
    seg = rng.integers(cfg.min_segment_len, cfg.segment_len + 1, size=n)  # (N,)
    prefix = (rng.random(n) * (length - 2 * seg + 1)).astype(np.int64)  # (N,) in [0, L-2S]
    r, j = np.nonzero(np.arange(cfg.segment_len)[None, :] < seg[:, None])  # offsets < S
    rows[r, prefix[r] + seg[r] + j] = rows[r, prefix[r] + j]  # second copy
    # target t predicts token t + 1; scored when t + 1 is a repeated token but the first
    t = np.arange(cfg.seq_len)[None, :] + 1  # (1, T)
    start, end = (prefix + seg)[:, None], (prefix + 2 * seg)[:, None]  # (N, 1)
    mask = (t > start) & (t < end)  # (N, T)
    return rows, mask


def assoc_recall(cfg: AssocRecallData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows `k1 v1 … kN vN · filler with Q (key, value) queries` and the mask of the values."""
    rng, n = _rng_and_size(cfg, split)
    N, Q, L = cfg.num_pairs, cfg.num_queries or cfg.num_pairs, cfg.seq_len + 1
    half = cfg.vocab_size // 2
    keys = np.argsort(rng.random((n, half - 1)), axis=1)[:, :N] + 1  # (n, N) distinct in [1, V/2)
    values = rng.integers(half, cfg.vocab_size, size=(n, N))  # (n, N)
    rows = np.zeros((n, L), dtype=np.int64)
    rows[:, 0 : 2 * N : 2], rows[:, 1 : 2 * N : 2] = keys, values
    # Q non-overlapping 2-token slots in the R = L - 2N free places: sorted distinct c_i in
    # [0, R - Q), slot i starts at c_i + i (so consecutive slots are >= 2 apart)
    R = L - 2 * N
    c = np.sort(np.argsort(rng.random((n, R - Q)), axis=1)[:, :Q], axis=1)  # (n, Q)
    starts = 2 * N + c + np.arange(Q)  # (n, Q)
    which = np.argsort(rng.random((n, N)), axis=1)[:, :Q]  # (n, Q) pairs queried
    r = np.arange(n)[:, None]
    rows[r, starts], rows[r, starts + 1] = keys[r, which], values[r, which]
    mask = np.zeros((n, L - 1), dtype=bool)
    mask[r, starts] = True  # the target after a query key is its value
    return rows, mask


def copying(cfg: CopyingData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows `segment · SEP(1) · segment · zeros` and the mask of the copy's targets."""
    rng, n = _rng_and_size(cfg, split)
    L = cfg.seq_len + 1
    seg = rng.integers(cfg.min_segment_len, cfg.segment_len + 1, size=n)  # (n,)
    content = rng.integers(2, cfg.vocab_size, size=(n, cfg.segment_len))  # (n, Smax)
    j = np.arange(L)[None, :]  # (1, L)
    S = seg[:, None]  # (n, 1)
    rows = np.zeros((n, L), dtype=np.int64)
    first = j < S
    rows[first] = content[np.nonzero(first)]
    rows[j == S] = 1  # separator
    second = (j > S) & (j <= 2 * S)
    src = np.nonzero(second)
    rows[src] = content[src[0], src[1] - seg[src[0]] - 1]
    t = np.arange(L - 1)[None, :]  # target t predicts token t + 1
    mask = (t >= S) & (t < 2 * S)
    return rows, mask


def selective_copying(cfg: SelectiveCopyingData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows `region (K tokens among zeros) · SEP(1) · the K tokens` and the mask of those K."""
    rng, n = _rng_and_size(cfg, split)
    K, L = cfg.num_tokens, cfg.seq_len + 1
    R = cfg.seq_len - K  # region length: R + 1 + K = L
    where = np.sort(np.argsort(rng.random((n, R)), axis=1)[:, :K], axis=1)  # (n, K) distinct
    tokens = rng.integers(2, cfg.vocab_size, size=(n, K))  # (n, K)
    rows = np.zeros((n, L), dtype=np.int64)
    np.put_along_axis(rows, where, tokens, axis=1)
    rows[:, R] = 1  # separator
    rows[:, R + 1 :] = tokens
    mask = np.zeros((n, L - 1), dtype=bool)
    mask[:, R:] = True  # targets t = R .. R + K - 1 predict the K tokens
    return rows, mask
