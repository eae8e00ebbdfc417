"""Synthetic tasks generated from a seed, no download.

`repeat_tokens` (Olsson et al. 2022, "In-context learning and induction heads"): each
sequence of T + 1 tokens is `prefix · segment · segment · filler`, every token uniform
over the vocabulary. The prefix has a random length in [0, T + 1 - 2S], so the distance
from a token to its repeat is always S but its absolute position varies: a model cannot
solve the task with a fixed positional offset from the start. The scored targets are the
repeated tokens after the first one (S - 1 per sequence): the first repeated token cannot
be predicted, every later one can, by an induction head.
"""

from __future__ import annotations

import numpy as np

from attnlab.config.schema import RepeatTokensData

SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}


def repeat_tokens(cfg: RepeatTokensData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (N, T+1) of token ids and the mask (N, T) of scored targets for one split."""
    n = {"train": cfg.num_train, "validation": cfg.num_val, "test": cfg.num_test}[split]
    length, seg = cfg.seq_len + 1, cfg.segment_len
    rng = np.random.default_rng([cfg.seed, SPLIT_INDEX[split]])
    rows = rng.integers(0, cfg.vocab_size, size=(n, length))  # (N, L)
    prefix = rng.integers(0, length - 2 * seg + 1, size=n)  # (N,)
    r = np.arange(n)[:, None]  # (N, 1)
    first = prefix[:, None] + np.arange(seg)  # (N, S) positions of the segment
    rows[r, first + seg] = rows[r, first]  # second copy
    # target j predicts token j + 1; scored when j + 1 is a repeated token but the first
    j = np.arange(cfg.seq_len)[None, :]  # (1, T)
    mask = (j + 1 > prefix[:, None] + seg) & (j + 1 < prefix[:, None] + 2 * seg)  # (N, T)
    return rows, mask
