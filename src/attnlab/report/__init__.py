"""Reports: plots (matplotlib), tables and Markdown, rebuilt from a run directory alone.

Every number in a report is read from `summary.json`, `metrics.jsonl` or `probes.json`.
A run's report is `report.run`; comparisons are drawn by `attnlab.experiments.compare`,
sweeps by `report.sweep`.
"""

from __future__ import annotations

from attnlab.report.plots import line_plot
from attnlab.report.run import curves, load_run, probe_curves, write_run_report
from attnlab.report.tables import markdown_table

__all__ = [
    "curves",
    "line_plot",
    "load_run",
    "markdown_table",
    "probe_curves",
    "write_run_report",
]
