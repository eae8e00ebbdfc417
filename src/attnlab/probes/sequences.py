"""The fixed, seeded probe set: repeated random token sequences.

Legend: N sequences, T length.

Each sequence is `prefix · segment · segment · filler` (Olsson et al. 2022; TransformerLens's
`detect_head` examples use the same shape). The segment length S is drawn from
[max(2, T // 4), T // 2] and the prefix length from [0, T - 2S]. When the vocabulary is
large enough, every token outside the second copy is distinct, so the only duplicate
tokens are the designed ones and the scores below have exactly one target per query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ProbeSet:
    """Token rows and where their repeat lies."""

    tokens: torch.Tensor  # (N, T) int64
    prefix: torch.Tensor  # (N,) start of the first copy
    seg_len: torch.Tensor  # (N,) S

    def to(self, device: torch.device | str) -> ProbeSet:
        """The same probe set on `device`."""
        return ProbeSet(self.tokens.to(device), self.prefix.to(device), self.seg_len.to(device))

    def __getitem__(self, rows: slice) -> ProbeSet:
        """The probe set of some rows."""
        return ProbeSet(self.tokens[rows], self.prefix[rows], self.seg_len[rows])

    def repeat_queries(self, drop_last: bool = False) -> torch.Tensor:
        """(N, T) bool: query positions in the second copy, [P + S, P + 2S).

        With `drop_last`, the last one is left out: the rest are the positions whose next
        token is a predictable repeat (the scored targets of `repeat_tokens`).
        """
        t = torch.arange(self.tokens.shape[1], device=self.tokens.device)[None, :]  # (1, T)
        start = (self.prefix + self.seg_len)[:, None]  # (N, 1)
        end = start + self.seg_len[:, None] - int(drop_last)  # (N, 1)
        return (t >= start) & (t < end)


def repeated_sequences(
    vocab_size: int, n: int, seq_len: int, seed: int = 0, pool: np.ndarray | None = None
) -> ProbeSet:
    """`n` probe sequences of `seq_len` tokens over ids [0, vocab_size), or over the ids
    of `pool` (e.g. a text's most frequent tokens: a small model never trains the
    embeddings of rare ones)."""
    if seq_len < 4:
        raise ValueError(f"probe sequences need seq_len >= 4 (got {seq_len})")
    ids = np.arange(vocab_size) if pool is None else np.asarray(pool, dtype=np.int64)
    rng = np.random.default_rng(seed)
    lo, hi = max(2, seq_len // 4), seq_len // 2
    seg = rng.integers(lo, hi + 1, size=n)  # (N,)
    prefix = (rng.random(n) * (seq_len - 2 * seg + 1)).astype(np.int64)  # (N,)
    rows = np.empty((n, seq_len), dtype=np.int64)
    for i in range(n):
        if len(ids) >= seq_len:
            rows[i] = ids[rng.permutation(len(ids))[:seq_len]]  # distinct tokens
        else:
            rows[i] = ids[rng.integers(0, len(ids), size=seq_len)]
        p, s = prefix[i], seg[i]
        rows[i, p + s : p + 2 * s] = rows[i, p : p + s]  # the second copy
    return ProbeSet(torch.from_numpy(rows), torch.from_numpy(prefix), torch.from_numpy(seg))
