"""Figures of the probes: attention grids, head-score maps, kernel profiles, embeddings.

Every function takes plain numbers (lists or tensors already on the CPU) and writes one
PNG; none of them runs a model.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

MAX_LABELS = 40  # token labels on attention axes up to this length


def _save(fig, path: Path, tight: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def attention_grid(
    patterns: list[np.ndarray],
    labels: list[str] | None,
    title: str,
    path: Path,
    query_labels: list[str] | None = None,
) -> Path:
    """Every layer × head pattern of one sequence: `patterns[layer]` is (H, Tq, Tk).

    `labels` name the keys, `query_labels` the queries (default: the same labels). One row
    per layer; a single layer's heads wrap into rows of four.
    """
    L, H = len(patterns), patterns[0].shape[0]
    Tq, T = patterns[0].shape[1], patterns[0].shape[2]
    rows_lab = query_labels if query_labels is not None else labels
    cols = H if L > 1 else min(H, 4)
    rows = L if L > 1 else -(-H // cols)
    size = 2.6 if T <= MAX_LABELS and labels else 1.8
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols + 0.4, size * rows + 0.6), dpi=110, squeeze=False
    )
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.08, top=0.9, wspace=0.08, hspace=0.25)
    show = bool(labels) and max(T, Tq) <= MAX_LABELS
    font = 7 if max(T, Tq) <= 16 else 5 if max(T, Tq) <= 28 else 4
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        li, h = (i // cols, i % cols) if L > 1 else (0, i)
        if h >= H:
            ax.axis("off")
            continue
        ax.imshow(patterns[li][h], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"L{li} H{h}", fontsize=7)
        if show and i % cols == 0:
            ax.set_yticks(range(Tq), rows_lab, fontsize=font)
        else:
            ax.set_yticks([])
        if show and i // cols == rows - 1:
            ax.set_xticks(range(T), labels, fontsize=font, rotation=90)
        else:
            ax.set_xticks([])
    fig.suptitle(f"{title}  (rows: query, columns: key)", fontsize=9)
    return _save(fig, path, tight=False)


def score_maps(scores: dict[str, list[list[float]]], layers: list[int], path: Path) -> Path:
    """One layers × heads heat map per head score, with the values written in."""
    names = list(scores)
    fig, axes = plt.subplots(
        1,
        len(names),
        figsize=(3.2 * len(names), 0.6 * len(layers) + 1.6),
        dpi=110,
        squeeze=False,
    )
    for ax, name in zip(axes[0], names, strict=True):
        m = np.asarray(scores[name], dtype=float)  # (L, H)
        lo = -1.0 if name == "ov_copying" else 0.0
        im = ax.imshow(m, cmap="magma" if lo == 0 else "coolwarm", vmin=lo, vmax=1.0)
        for (i, j), v in np.ndenumerate(m):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if v < 0.5 and lo == 0 else "black",
            )
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_xlabel("head")
        ax.set_yticks(range(len(layers)), [f"L{i}" for i in layers])
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def channel_distribution(
    scores: dict[str, list[list[float]]], layers: list[int], path: Path
) -> Path:
    """Per pattern score, each layer's channels sorted from highest to lowest: how the
    score is spread over a Mamba layer's channels (a few strong ones, or all alike)."""
    names = [n for n in ("previous_token", "duplicate_token", "induction") if n in scores]
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 2.8), dpi=110, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for li, layer in enumerate(layers):
            v = np.sort(np.asarray(scores[name][li], dtype=float))[::-1]  # (E,)
            ax.plot(np.arange(len(v)), v, label=f"L{layer}")
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_xlabel("channel, by rank")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    return _save(fig, path)


def kernel_profiles(profiles: dict[str, dict], path: Path) -> Path:
    """Mean weight (± spread over channels) and mean |weight| by offset, one panel per conv."""
    n = len(profiles)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), dpi=110, squeeze=False)
    for ax, (name, p) in zip(axes[0], profiles.items(), strict=True):
        x = np.asarray(p["offsets"])
        mean, std = np.asarray(p["mean"]), np.asarray(p["std"])
        ax.bar(x - 0.18, mean, width=0.36, yerr=std, capsize=2, label="mean weight ± std")
        ax.bar(x + 0.18, p["mean_abs"], width=0.36, label="mean |weight|")
        ax.axhline(0, color="black", linewidth=0.6)
        if "init_mean_abs" in p:
            ax.axhline(
                p["init_mean_abs"],
                color="grey",
                linestyle="--",
                linewidth=0.8,
                label="mean |weight| at init",
            )
        ax.set_xticks(x)
        ax.set_xlabel("offset from the current token")
        ax.set_title(f"{name}\n(argmax |w| at {p['argmax_offset']})", fontsize=8)
        ax.legend(fontsize=7)
    return _save(fig, path)


def embedding_scatter(
    points: np.ndarray, labels: list[str], groups: list[str], var: list[float], path: Path
) -> Path:
    """2-D PCA of embeddings, coloured by group, with the given labels written beside points."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=120)
    for g in sorted(set(groups)):
        idx = [i for i, gi in enumerate(groups) if gi == g]
        ax.scatter(points[idx, 0], points[idx, 1], s=12, label=g, alpha=0.8)
    for (x, y), lab in zip(points, labels, strict=True):
        if lab:
            ax.annotate(lab, (x, y), fontsize=6, alpha=0.85)
    ax.set_xlabel(f"PC1 ({100 * var[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * var[1]:.1f}% of variance)")
    ax.set_title("token embeddings, first two principal components", fontsize=9)
    if len(set(groups)) > 1:
        ax.legend(fontsize=7)
    return _save(fig, path)


def heatmap(matrix: np.ndarray, title: str, xlabel: str, ylabel: str, path: Path) -> Path:
    """A square heat map with a colour bar (e.g. positional cosine similarity)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    im = ax.imshow(matrix, cmap="coolwarm", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, shrink=0.85)
    return _save(fig, path)


def ssm_profile(layers: list[dict], labels: list[str], title: str, path: Path) -> Path:
    """Mamba per position: Δ (mean ± std over channels) and the weight the final state keeps.

    `layers[i]` holds `dt_mean`, `dt_std` and `weight` (one number per position); one
    column per layer, Δ on top, the kept weight (log scale) below, characters on the x axis.
    """
    n = len(layers)
    fig, axes = plt.subplots(2, n, figsize=(max(4.0, 0.28 * len(labels)) * n, 5.2), dpi=120)
    axes = np.asarray(axes).reshape(2, n)
    x = np.arange(len(labels))
    for i, lay in enumerate(layers):
        mean, std = np.asarray(lay["dt_mean"]), np.asarray(lay["dt_std"])
        top, bottom = axes[0, i], axes[1, i]
        top.plot(x, mean, marker="o", markersize=3)
        top.fill_between(x, np.maximum(mean - std, 0), mean + std, alpha=0.25)
        top.set_title(f"{lay['name']}: Δ (mean ± std over channels)", fontsize=8)
        bottom.semilogy(x, np.maximum(lay["weight"], 1e-30), marker="o", markersize=3)
        bottom.set_title("weight kept in the final state: mean of Π Ā after t", fontsize=8)
        for ax in (top, bottom):
            ax.set_xticks(x)
            ax.set_xticklabels(labels, fontsize=7)
            ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def bars(names: list[str], values: list[float], ylabel: str, title: str, path: Path) -> Path:
    """One bar per name."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6), dpi=120)
    ax.bar(range(len(names)), values)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
