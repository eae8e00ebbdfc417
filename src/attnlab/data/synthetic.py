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
"""

from __future__ import annotations

import numpy as np

from attnlab.config.schema import RepeatTokensData

SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}


def repeat_tokens(cfg: RepeatTokensData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (N, T+1) of token ids and the mask (N, T) of scored targets for one split."""
    n = {"train": cfg.num_train, "validation": cfg.num_val, "test": cfg.num_test}[split]
    length = cfg.seq_len + 1
    rng = np.random.default_rng([cfg.seed, SPLIT_INDEX[split]])
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
