"""The run directory's format, as far as it is gathered here: its file names and
`metrics.jsonl` (one JSON object per logged step and per evaluation).

Every command reads and writes run directories; train writes the metrics, report and
compare read them. This module sits below `train`, `probes` and `report`, so a reader
never imports the trainer. (Issue 16 moves every read and write of a run directory here;
so far the names and the metrics log.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

CONFIG, METRICS, SUMMARY = "config.yaml", "metrics.jsonl", "summary.json"
PROBES, ATTENTION, REPORT = "probes.json", "attention.json", "report.md"


class MetricsLog:
    """Append-only JSON lines; on resume, records after the checkpoint step are dropped."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        """Keep only records of steps <= `step` that are not end-of-run records."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [r for r in read_metrics(self.path) if r["step"] <= step and not r.get("final")]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
        tmp.replace(self.path)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """All records of a `metrics.jsonl`."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
