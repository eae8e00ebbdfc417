"""Statistics of seeds: mean ± sample std with n, and the difference of two configs with a
95% Welch t interval, so "Conv-Attn beats Attn-Attn" is a claim with a number behind it.

Pure Python (no scipy): the t quantile inverts the regularized incomplete beta function
(continued fraction, Numerical Recipes §6.4) by bisection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    if not values:
        raise ValueError("mean_std of no values")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def format_pm(values: list[float], digits: int = 3, show_n: bool = True) -> str:
    """`mean ± std (n=k)` (without the count when not `show_n`); `–` for no values, the
    value alone for one."""
    if not values:
        return "–"
    m, s = mean_std(values)
    n = f" (n={len(values)})" if show_n else ""
    if len(values) == 1:
        return f"{m:.{digits}f}" + (" (n=1)" if show_n else "")
    return f"{m:.{digits}f} ± {s:.{digits}f}{n}"


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
    front = math.exp(ln + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (> 0, not necessarily whole) degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection on the CDF, to 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Difference:
    """mean(a) − mean(b) with its confidence interval (Welch's t)."""

    diff: float
    low: float
    high: float
    df: float
    n_a: int
    n_b: int
    level: float = 0.95

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return (
            f"{self.diff:+.4f} [{self.low:+.4f}, {self.high:+.4f}] "
            f"({self.level:.0%} Welch t, df {self.df:.1f}, n {self.n_a} vs {self.n_b})"
        )


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> Difference | None:
    """mean(a) − mean(b) with a Welch t interval; None when either side has < 2 values.

    When both samples have zero variance the interval collapses to the difference.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    diff = ma - mb
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Difference(diff, diff, diff, math.inf, len(a), len(b), level)
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    half = t_quantile(0.5 + level / 2.0, df) * se
    return Difference(diff, diff - half, diff + half, df, len(a), len(b), level)


def mean_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): a Student t interval for the mean; (m, m, m) with < 2 values."""
    m, s = mean_std(values)
    if len(values) < 2:
        return m, m, m
    half = t_quantile(0.5 + level / 2.0, len(values) - 1) * s / math.sqrt(len(values))
    return m, m - half, m + half


def prediction_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): where one new run from the same distribution falls with
    probability `level`, mean ± t(n−1) · s · √(1 + 1/n) (a Student t prediction interval);
    a single reported run is judged against this, never against the interval of the
    mean, which narrows as seeds are added and so rejects more runs of the very same
    distribution the more seeds are run. Needs at least 2 values."""
    if len(values) < 2:
        raise ValueError("a prediction interval needs at least 2 values")
    m, s = mean_std(values)
    n = len(values)
    half = t_quantile(0.5 + level / 2.0, n - 1) * s * math.sqrt(1.0 + 1.0 / n)
    return m, m - half, m + half


def false_rejection_rate(n: int, level: float = 0.95) -> float:
    """The chance that one new run from the same normal distribution falls outside the
    `level` t interval of the mean of `n` runs: the error of judging a single reported
    run by the interval of our mean (16% at n = 3, 51% at n = 10 for 95%). Exact: the
    new run minus the mean, over s·√(1/n), is t(n−1) scaled by √(n + 1)."""
    q = t_quantile(0.5 + level / 2.0, n - 1)
    return 2.0 * (1.0 - t_cdf(q / math.sqrt(n + 1.0), n - 1))
