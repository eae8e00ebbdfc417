"""`attention.json`: the attention patterns the report's interactive explorer shows.

Each example (a probe sequence or a translated word) holds its query and key labels and,
per attention layer, the (H, Tq, Tk) pattern quantised to bytes (round(255·p), base64):
a 4-layer, 8-head model on 32 tokens is 32 KB per example, so the HTML report can embed
it. The values are exact to ±0.002, which is what a hover needs.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from attnlab.run_dir import RunDir


class ExplorerLog:
    """Collects examples of one run and writes `attention.json`."""

    def __init__(self) -> None:
        self.examples: list[dict] = []

    def add(
        self,
        example: str,
        query_labels: list[str],
        key_labels: list[str],
        layers: list[tuple[str, np.ndarray]],
    ) -> int | None:
        """One example: (layer name, pattern (H, Tq, Tk)) for each attention layer; its
        index in `examples` (None when no layer has attention, and nothing is kept)."""
        out = []
        for name, p in layers:
            H, Tq, Tk = p.shape
            if (Tq, Tk) != (len(query_labels), len(key_labels)):
                raise ValueError(f"{name}: pattern {p.shape} does not fit the labels")
            q = np.clip(np.rint(np.asarray(p, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
            out.append({"name": name, "heads": H, "data": base64.b64encode(q.tobytes()).decode()})
        if not out:
            return None
        self.examples.append(
            {"example": example, "queries": query_labels, "keys": key_labels, "layers": out}
        )
        return len(self.examples) - 1

    def save(self, rd: RunDir) -> Path | None:
        """Write the run's `attention.json` (nothing when no example has attention)."""
        if not self.examples:
            return None
        return rd.write_attention({"examples": self.examples})


def layer_patterns(cache, keep=lambda _n: True) -> list[tuple[str, np.ndarray]]:
    """(layer name without `.hook_pattern`, (H, Tq, Tk) of the first sequence) per layer."""
    names = [n for n in cache.layer_names("hook_pattern") if keep(n)]
    return [(n.removesuffix(".hook_pattern"), cache[n][0].float().numpy()) for n in names]


def decode_pattern(layer: dict, n_queries: int, n_keys: int) -> np.ndarray:
    """The (H, Tq, Tk) float pattern of one saved layer (for tests and notebooks)."""
    raw = np.frombuffer(base64.b64decode(layer["data"]), dtype=np.uint8)
    return raw.reshape(layer["heads"], n_queries, n_keys).astype(np.float64) / 255.0


def example_patterns(example: dict) -> list[np.ndarray]:
    """The (H, Tq, Tk) patterns of every layer of one saved example."""
    nq, nk = len(example["queries"]), len(example["keys"])
    return [decode_pattern(layer, nq, nk) for layer in example["layers"]]
