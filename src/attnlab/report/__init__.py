"""Reports: figures (matplotlib), tables and Markdown, drawn from a run directory alone.

Every number and every figure in a report is read from `summary.json`, `metrics.jsonl`,
`probes.json`, `attention.json` or `translations.json`. A run's report is `report.run`
(generic; the task adds its section), a sweep's `report.sweep`; comparisons are drawn by
`attnlab.experiments.compare`.
"""

from __future__ import annotations

from attnlab.report.plots import curves, line_plot
from attnlab.report.run import load_run, write_run_report
from attnlab.report.tables import markdown_table

__all__ = ["curves", "line_plot", "load_run", "markdown_table", "write_run_report"]
