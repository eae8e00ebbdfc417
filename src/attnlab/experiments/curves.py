"""Curves over seeds: two configurations' validation loss at equal tokens seen, and their
difference with a 95% Welch band at every evaluation both logged (write-up 000's
"converges faster" is a claim about this curve, not about one end point)."""

from __future__ import annotations

from dataclasses import dataclass

from attnlab.stats import mean_std, welch_interval


@dataclass(frozen=True)
class Point:
    """mean(a) − mean(b) at one evaluation step; `low` / `high` None with < 2 seeds."""

    step: int
    tokens: float  # training tokens seen by then (the mean over runs)
    diff: float
    low: float | None
    high: float | None


def val_curve(run: dict, key: str = "loss") -> dict[int, tuple[float, float]]:
    """step → (tokens seen, validation `key`) of one run's periodic evaluations; the
    tokens a step saw come from its training records (input tokens a step)."""
    recs = run["records"]
    per_step = _tokens_per_step(run)
    return {
        r["step"]: (r["step"] * per_step, r[key])
        for r in recs
        if r.get("split") == "validation" and not r.get("final") and r.get(key) is not None
    }


def _tokens_per_step(run: dict) -> float:
    s = run["summary"]
    return s.get("train_tokens", 0) / max(s.get("steps", 1), 1)


def loss_difference(a: list[dict], b: list[dict], key: str = "loss") -> list[Point]:
    """mean over `a`'s runs minus mean over `b`'s of the validation `key` at each step
    every run of both logged, with a 95% Welch interval where both sides have ≥ 2 runs."""
    if not a or not b:
        return []
    curves_a, curves_b = [val_curve(r, key) for r in a], [val_curve(r, key) for r in b]
    steps = set.intersection(*(set(c) for c in curves_a + curves_b))
    out = []
    for step in sorted(steps):
        xa = [c[step][1] for c in curves_a]
        xb = [c[step][1] for c in curves_b]
        tokens = sum(c[step][0] for c in curves_a + curves_b) / (len(xa) + len(xb))
        d = welch_interval(xa, xb)
        diff = mean_std(xa)[0] - mean_std(xb)[0]
        out.append(Point(step, tokens, diff, d.low if d else None, d.high if d else None))
    return out


def crossover(points: list[Point]) -> Point | None:
    """The first evaluation where the difference changes sign from the first one's."""
    if not points:
        return None
    sign = points[0].diff > 0
    return next((p for p in points[1:] if (p.diff > 0) != sign), None)
