"""Matplotlib figures for reports (Agg backend: no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def curves(records: list[dict], split: str, key: str) -> tuple[list, list]:
    """(steps, values) of `key` over the periodic `metrics.jsonl` records of one split."""
    pts = [
        (r["step"], r[key])
        for r in records
        if r["split"] == split and not r.get("final") and r.get(key) is not None
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def line_plot(
    series: dict[str, tuple[list, list]],
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    logy: bool = False,
    logx: bool = False,
) -> Path:
    """One line per named (x, y) series, saved as a PNG at `path`."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=name)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log", base=2)
    return finish_plot(fig, ax, xlabel, ylabel, title, path, legend=len(series) > 1 or any(series))


def finish_plot(fig, ax, xlabel: str, ylabel: str, title: str, path: Path, legend: bool) -> Path:
    """Labels, grid, legend; save as PNG and close."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def seed_lines_plot(
    series: dict[str, list[tuple[list, list]]],
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    logx: bool = False,
) -> Path:
    """Per name: a thin line per seed and a thick line for their mean (where steps agree),
    with a dot at each point when there are few (so a single point shows)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, runs) in enumerate(series.items()):
        c = colours[i % len(colours)]
        for x, y in runs:
            ax.plot(x, y, color=c, alpha=0.35, linewidth=0.8)
        steps = runs[0][0] if runs else []
        same = [y for x, y in runs if x == steps]
        if steps and same:
            mean = [sum(v) / len(same) for v in zip(*same, strict=True)]
            dots = "o" if len(steps) <= 12 else None
            ax.plot(steps, mean, color=c, linewidth=2.0, marker=dots, markersize=4,
                    label=f"{name} (n={len(same)})")  # fmt: skip
    if logx:
        ax.set_xscale("log", base=2)
    return finish_plot(fig, ax, xlabel, ylabel, title, path, legend=True)


def interval_plot(
    labels: list[str],
    means: list[float],
    lows: list[float],
    highs: list[float],
    points: list[list[float]],
    ylabel: str,
    title: str,
    path: Path,
) -> Path:
    """Per label: its values (dots), their mean (bar) and an interval (whiskers)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 2.0), 4.0), dpi=120)
    xs = list(range(len(labels)))
    for x, m, lo, hi, vals in zip(xs, means, lows, highs, points, strict=True):
        ax.plot([x - 0.25, x + 0.25], [m, m], color="C0", linewidth=2)
        ax.plot([x, x], [lo, hi], color="C0", linewidth=1)
        ax.scatter([x] * len(vals), vals, color="C1", s=12, zorder=3)
    ax.set_xticks(xs, labels, rotation=30, ha="right", fontsize=8)
    return finish_plot(fig, ax, "", ylabel, title, path, legend=False)


def band_plot(
    x: list[float],
    y: list[float],
    low: list[float | None],
    high: list[float | None],
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    mark: float | None = None,
) -> Path:
    """One line with its interval band where there is one (None: no band at that x), a
    zero line, and a vertical mark (a crossover) when given."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(x, y, color="C0", marker="o" if len(x) < 30 else None, markersize=3, label=ylabel)
    pts = [(a, lo, hi) for a, lo, hi in zip(x, low, high, strict=True) if lo is not None]
    if pts:
        xs, los, his = zip(*pts, strict=True)
        ax.fill_between(xs, los, his, color="C0", alpha=0.2, label="95% Welch interval")
    ax.axhline(0.0, color="black", linewidth=0.8)
    if mark is not None:
        ax.axvline(mark, color="C3", linestyle="--", linewidth=1, label="sign changes")
    return finish_plot(fig, ax, xlabel, ylabel, title, path, legend=True)
