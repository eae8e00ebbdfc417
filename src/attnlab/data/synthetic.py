"""Synthetic tasks generated from a seed, no download.

Every generator returns `(inputs, labels, targets)`, three (N, T) int64 arrays: `labels[n,
t]` is the token the model should output at position t, and `IGNORE` (-100) where nothing
is scored (the convention of Zoology and Hugging Face); `targets` is a target at every
position, for probes that read all of them (the ICL score): the next token for next-token
tasks, and for the answer tasks the label where there is one, else the next input. For
next-token tasks the label at t is the input at t + 1; for `mqar`, paper-form
`selective_copying` and `induction_heads` it is an answer that is never fed back as an
input. A split depends only on (config, split).

`repeat_tokens` (Olsson et al. 2022, "In-context learning and induction heads"): each
sequence of T + 1 tokens is `prefix · segment · segment · filler`, every token uniform
over the vocabulary. The segment length S is drawn per sequence from
[min_segment_len, segment_len] and the prefix length from [0, T + 1 - 2S]: the repeat's
absolute position and its distance back to the first copy both vary, so no positional
head (absolute or relative offset) solves it; matching content does (an induction head).
With one fixed S a single attention layer reaches 100% by attending S - 1 tokens back.
The scored targets are the repeated tokens after the first one (S - 1 per sequence): the
first repeated token cannot be predicted, every later one can.

`mqar` is Zoology's `multiquery_ar` property for property (keys, values, power-law query
gaps, random non-query tokens, one label per query); it draws with a numpy `Generator`
instead of the global seed, and samples the gaps without replacement by Gumbel top-k,
which has the distribution of `np.random.choice(..., replace=False, p=p)`.
`copying`, `selective_copying` (the Mamba paper's, from the S4 code's generator) and
`induction_heads` (the Mamba paper's) are described on their config classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnlab.config.schema import (
    CopyingData,
    InductionHeadsData,
    MQARData,
    RepeatTokensData,
    SelectiveCopyingData,
    check_mqar,
)

IGNORE = -100
SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}


def _rng_and_size(cfg, split: str) -> tuple[np.random.Generator, int]:
    n = {"train": cfg.num_train, "validation": cfg.num_val, "test": cfg.num_test}[split]
    return np.random.default_rng([cfg.seed, SPLIT_INDEX[split]]), n


Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # inputs, labels, targets: (N, T) each


def next_token_labels(rows: np.ndarray, mask: np.ndarray) -> Split:
    """A next-token task's split from rows (N, T+1) and the mask (N, T) of scored targets."""
    labels = np.where(mask, rows[:, 1:], IGNORE)  # (N, T)
    return rows[:, :-1], labels, rows[:, 1:]


def answer_targets(inputs: np.ndarray, labels: np.ndarray) -> Split:
    """An answer task's split: targets are the labels, and the next input (0 at the end)
    where nothing is scored."""
    following = np.zeros_like(inputs)
    following[:, :-1] = inputs[:, 1:]  # (N, T)
    return inputs, labels, np.where(labels >= 0, labels, following)


def repeat_tokens(cfg: RepeatTokensData, split: str) -> Split:
    """The predictable tokens of the repeat are labelled."""
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
    return next_token_labels(rows, mask)


def mqar(
    vocab_size: int,
    num_examples: int,
    seq_len: int,
    num_kv_pairs: int,
    power_a: float = 0.01,
    random_non_queries: bool = True,
    seed: int | Sequence[int] = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Zoology's multi-query associative recall: (inputs, labels), each (N, T) int64.

    Layout (N = num_kv_pairs, C = 2N): `k1 v1 … kN vN` in the first C places; the query
    region after it has (T - C) / 2 even slots, and each key is queried once, in the slot
    `C + 2 g` for gaps g drawn without replacement with P(g) ∝ (g + 1)^(power_a − 1). The
    label at a query is its key's value; every other label is -100. Places that are not
    pairs or queries hold random tokens from [0, V) (or 0 without `random_non_queries`).
    """
    check_mqar(vocab_size, seq_len, num_kv_pairs)
    rng = np.random.default_rng(seed)
    n, N, T, half = num_examples, num_kv_pairs, seq_len, vocab_size // 2
    C = 2 * N
    keys = np.argsort(rng.random((n, half - 1)), axis=1)[:, :N] + 1  # (n, N) in [1, V/2)
    values = np.argsort(rng.random((n, vocab_size - half)), axis=1)[:, :N] + half  # (n, N)
    space = (T - C) // 2
    log_p = (power_a - 1) * np.log(np.arange(1, space + 1))  # unnormalised log P(gap)
    gumbel = -np.log(-np.log(rng.random((n, space))))  # (n, space)
    gaps = np.argsort(-(log_p + gumbel), axis=1)[:, :N]  # (n, N) distinct, weighted
    inputs = np.zeros((n, T), dtype=np.int64)
    inputs[:, 0:C:2], inputs[:, 1:C:2] = keys, values
    where = C + 2 * gaps  # (n, N) query positions
    np.put_along_axis(inputs, where, keys, axis=1)
    labels = np.full((n, T), IGNORE, dtype=np.int64)
    np.put_along_axis(labels, where, values, axis=1)
    if random_non_queries:
        filler = rng.integers(0, vocab_size, size=(n, T))  # (n, T)
        inputs = np.where(inputs == 0, filler, inputs)
    return inputs, labels


def mqar_split(cfg: MQARData, split: str) -> Split:
    """`mqar` for one split of a config (seeded by the config's seed and the split)."""
    _, n = _rng_and_size(cfg, split)
    return answer_targets(
        *mqar(
            cfg.vocab_size,
            n,
            cfg.seq_len,
            cfg.num_kv_pairs,
            cfg.power_a,
            cfg.random_non_queries,
            seed=[cfg.seed, SPLIT_INDEX[split]],
        )
    )


def copying(cfg: CopyingData, split: str) -> Split:
    """Rows `segment · SEP(1) · segment · zeros`; the copy's tokens are labelled."""
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
    return next_token_labels(rows, mask)


def selective_copying(cfg: SelectiveCopyingData, split: str) -> Split:
    """`region (K tokens among noise) · K markers`, the K tokens labelled at the markers
    (`form: paper`), or `region · SEP(1) · the K tokens` as next-token targets."""
    rng, n = _rng_and_size(cfg, split)
    K, T, V = cfg.num_tokens, cfg.seq_len, cfg.vocab_size
    R = T - K  # region length
    where = np.sort(np.argsort(rng.random((n, R)), axis=1)[:, :K], axis=1)  # (n, K) distinct
    if cfg.form == "teacher_forced":
        tokens = rng.integers(2, V, size=(n, K))  # (n, K)
        rows = np.zeros((n, T + 1), dtype=np.int64)
        np.put_along_axis(rows, where, tokens, axis=1)
        rows[:, R] = 1  # separator
        rows[:, R + 1 :] = tokens
        mask = np.zeros((n, T), dtype=bool)
        mask[:, R:] = True  # targets t = R .. R + K - 1 predict the K tokens
        return next_token_labels(rows, mask)
    tokens = rng.integers(1, V - 1, size=(n, K))  # (n, K), 0 noise and V-1 marker excluded
    inputs = np.zeros((n, T), dtype=np.int64)
    np.put_along_axis(inputs, where, tokens, axis=1)
    inputs[:, R:] = V - 1  # markers
    labels = np.full((n, T), IGNORE, dtype=np.int64)
    labels[:, R:] = tokens
    return answer_targets(inputs, labels)


def induction_heads(cfg: InductionHeadsData, split: str) -> Split:
    """Random tokens, a special token (V-1) at p and at the end; the last position's label
    is the token after p."""
    rng, n = _rng_and_size(cfg, split)
    T, special = cfg.seq_len, cfg.vocab_size - 1
    inputs = rng.integers(0, special, size=(n, T))  # (n, T) over [0, V-1)
    p = rng.integers(0, T - 2, size=n)  # (n,) in [0, T-3]: x_{p+1} is a random token
    rows = np.arange(n)
    inputs[rows, p] = special
    inputs[:, T - 1] = special
    labels = np.full((n, T), IGNORE, dtype=np.int64)
    labels[:, T - 1] = inputs[rows, p + 1]
    return answer_targets(inputs, labels)


GENERATORS = {
    "repeat_tokens": repeat_tokens,
    "mqar": mqar_split,
    "copying": copying,
    "selective_copying": selective_copying,
    "induction_heads": induction_heads,
}
