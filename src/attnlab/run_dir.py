"""The run directory's format: every file name, and every read and write of its files.

A run directory holds one trained run (`RunDir`); a comparison, sweep or reproduction
directory holds run directories and a few files of its own (`COMPARE`, `SPEC`, `RESULTS`,
`REPRODUCTION`). Nothing else in
the package spells these names. JSON and text files are written atomically (a temporary
file renamed over the old one), so an interrupted write never leaves half a file.

This module sits below `train`, `probes` and `report`, so a reader never imports the trainer.
"""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path

import numpy as np

# a run directory
CONFIG, METRICS, SUMMARY = "config.yaml", "metrics.jsonl", "summary.json"
WEIGHTS, BEST, STATE = "model.safetensors", "best.safetensors", "state.pt"
TOKENIZER, TRANSLATIONS = "tokenizer.json", "translations.json"
PROBES, ATTENTION = "probes.json", "attention.json"
REPORT, REPORT_HTML, PLOTS = "report.md", "report.html", "plots"
LOGS = "logs"  # train.loggers' files (TensorBoard, CSV, W&B)
# a comparison (its run list and report), a sweep (its spec; its report is REPORT)
COMPARE, COMPARE_REPORT = "compare.json", "compare.md"
SPEC, RESULTS = "spec.yaml", "results.json"
REPRODUCTION = "reproduction.md"  # a reproduction directory's report (its parts: sweeps)
REPRO_FIGURES = "figures"  # its figures, copied out of the runs' (uncommitted) plots/
VERDICTS = "verdicts.json"  # its verdicts as data (the README's headline table reads them)

FILE_NAMES = (
    CONFIG, METRICS, SUMMARY, WEIGHTS, BEST, STATE, TOKENIZER, TRANSLATIONS,
    PROBES, ATTENTION, REPORT, REPORT_HTML, PLOTS, LOGS, COMPARE, COMPARE_REPORT, SPEC, RESULTS,
    REPRODUCTION, REPRO_FIGURES, VERDICTS,
)  # fmt: skip


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_json(path: Path, obj, indent: int | None = 1) -> Path:
    """`obj` as JSON (non-finite floats as null), written atomically; with `indent`, a
    list that holds no object (numbers, strings, lists of them) stays on one line, so a
    matrix takes one line per file, not one per number."""
    return atomic_write_text(path, dumps(_finite(obj), indent) + "\n")


def dumps(obj, indent: int | None = 1, level: int = 0) -> str:
    """JSON text of `obj`: objects indented by `indent`, object-free lists inline."""
    if indent is None or not _holds_object(obj):
        return json.dumps(obj, separators=(",", ":") if indent is None else (", ", ": "))
    pad, inner = " " * indent * level, " " * indent * (level + 1)
    if isinstance(obj, dict):
        items = [
            f"{inner}{json.dumps(str(k))}: {dumps(v, indent, level + 1)}" for k, v in obj.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}" if items else "{}"
    items = [f"{inner}{dumps(v, indent, level + 1)}" for v in obj]
    return "[\n" + ",\n".join(items) + f"\n{pad}]" if items else "[]"


def _holds_object(obj) -> bool:
    """Whether obj is, or a list inside it holds, a JSON object."""
    if isinstance(obj, dict):
        return True
    return isinstance(obj, list | tuple) and any(_holds_object(v) for v in obj)


def encode_matrix(a) -> dict:
    """A float matrix (any shape) as `{"shape", "float16"}`: float16 bytes in base64, 2
    bytes a number (3 significant digits, what a heat map shows), not a JSON number each."""
    a = np.asarray(a, dtype=np.float16)
    return {"shape": list(a.shape), "float16": base64.b64encode(a.tobytes()).decode()}


def decode_matrix(x) -> np.ndarray:
    """The array `encode_matrix` stored (float32), or a nested list as an array."""
    if isinstance(x, dict):
        raw = np.frombuffer(base64.b64decode(x["float16"]), dtype=np.float16)
        return raw.reshape(x["shape"]).astype(np.float32)
    return np.asarray(x, dtype=np.float32)


def read_json(path: Path):
    """The JSON value in `path`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _finite(obj):
    """`obj` with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def plot_link(name: str) -> str:
    """How a report refers to the figure `name` (a file in `plots/`)."""
    return f"{PLOTS}/{name}"


class RunDir:
    """One run directory: the path of each of its files, and reading and writing them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # paths
    config = property(lambda self: self.path / CONFIG)
    metrics = property(lambda self: self.path / METRICS)
    summary = property(lambda self: self.path / SUMMARY)
    weights = property(lambda self: self.path / WEIGHTS)
    best = property(lambda self: self.path / BEST)
    state = property(lambda self: self.path / STATE)
    tokenizer = property(lambda self: self.path / TOKENIZER)
    translations = property(lambda self: self.path / TRANSLATIONS)
    probes = property(lambda self: self.path / PROBES)
    attention = property(lambda self: self.path / ATTENTION)
    report = property(lambda self: self.path / REPORT)
    report_html = property(lambda self: self.path / REPORT_HTML)
    plots = property(lambda self: self.path / PLOTS)
    logs = property(lambda self: self.path / LOGS)

    def plot(self, name: str) -> Path:
        """The path of the figure `name` in `plots/`."""
        return self.path / PLOTS / name

    def weights_file(self, which: str) -> Path:
        """The `final` (last) or `best` (lowest periodic validation loss) weights."""
        files = {"final": self.weights, "best": self.best}
        if which not in files:
            raise ValueError(f"weights {which!r}: choose final or best")
        return files[which]

    def is_finished(self) -> bool:
        """Whether training wrote its summary."""
        return self.summary.is_file()

    def is_probed(self) -> bool:
        return self.probes.is_file()

    # reads and writes
    def read_summary(self) -> dict:
        return read_json(self.summary)

    def write_summary(self, summary: dict) -> Path:
        return write_json(self.summary, summary, indent=2)

    def read_probes(self) -> dict | None:
        """`probes.json`, or None when the run was not probed."""
        return read_json(self.probes) if self.probes.is_file() else None

    def write_probes(self, probes: dict) -> Path:
        return write_json(self.probes, probes)

    def read_translations(self) -> dict:
        """`translations.json` (Pig Latin's word-level details), {} when absent."""
        return read_json(self.translations) if self.translations.is_file() else {}

    def write_translations(self, details: dict) -> Path:
        return write_json(self.translations, details, indent=2)

    def read_attention(self) -> dict | None:
        return read_json(self.attention) if self.attention.is_file() else None

    def write_attention(self, data: dict) -> Path:
        return write_json(self.attention, data, indent=None)

    def read_metrics(self) -> list[dict]:
        """All records of `metrics.jsonl` ([] before the first one)."""
        return read_metrics(self.metrics) if self.metrics.is_file() else []

    def metrics_log(self, enabled: bool = True, mirror=None) -> MetricsLog:
        return MetricsLog(self.metrics, enabled, mirror)

    def write_report(self, text: str) -> Path:
        return atomic_write_text(self.report, text)


class MetricsLog:
    """Append-only JSON lines; on resume, records after the checkpoint step are dropped.
    `mirror`, when given, also receives every record written (`train.loggers`)."""

    def __init__(self, path: Path, enabled: bool = True, mirror=None):
        self.path, self.enabled, self.mirror = path, enabled, mirror

    def truncate_after(self, step: int) -> None:
        """Keep only records of steps <= `step` that are not end-of-run records."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [r for r in read_metrics(self.path) if r["step"] <= step and not r.get("final")]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(_finite(record)) + "\n")
        if self.mirror is not None:
            self.mirror(record)


def read_metrics(path: Path) -> list[dict]:
    """All records of a `metrics.jsonl`."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
