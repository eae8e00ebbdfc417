"""Summary numbers of attention patterns, per head (write-up 001's "vertical structure",
"last-token dominance" and "attention collapse", as numbers).

For a causal pattern p (H, T, T) of one sequence, averaged over the queries t >= 1 (the
first query can only see itself):
- `entropy`: −Σ_s p[t, s] log p[t, s] divided by log(t + 1), the entropy of a uniform
  head over the t + 1 keys it sees: 1 spreads evenly, 0 looks at one key (collapse);
- `sink`: p[t, 0], the mass on the first token (a vertical stripe in the grid);
- `diagonal`: p[t, t], the mass a query puts on its own position;
- `previous`: p[t, t − 1], the mass on the token just before.
A uniform head scores entropy 1 and sink = diagonal = previous = the mean of 1 / (t + 1).
"""

from __future__ import annotations

import numpy as np

STATS = ("entropy", "sink", "diagonal", "previous")


def pattern_stats(pattern: np.ndarray) -> dict[str, list[float]]:
    """Per-head statistics (see the module docstring) of one pattern (H, T, T)."""
    p = np.asarray(pattern, dtype=np.float64)  # (H, T, T)
    T = p.shape[-1]
    if T < 2:
        return {k: [float("nan")] * p.shape[0] for k in STATS}
    t = np.arange(1, T)  # queries that see more than themselves
    rows = p[:, 1:, :]  # (H, T-1, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(rows > 0, rows * np.log(rows), 0.0)
    entropy = -plogp.sum(-1) / np.log(t + 1)  # (H, T-1)
    return {
        "entropy": entropy.mean(-1).tolist(),
        "sink": rows[:, :, 0].mean(-1).tolist(),
        "diagonal": p[:, t, t].mean(-1).tolist(),
        "previous": p[:, t, t - 1].mean(-1).tolist(),
    }


def uniform_stats(T: int) -> dict[str, float]:
    """The statistics of a head that spreads evenly over the keys it sees."""
    share = float(np.mean(1.0 / (np.arange(1, T) + 1))) if T > 1 else float("nan")
    return {"entropy": 1.0, "sink": share, "diagonal": share, "previous": share}
