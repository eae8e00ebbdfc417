"""`Task`: what one kind of task adds to the one data path.

The trainer, the probes and the report are generic: they call these hooks and never ask
which task they run. A task decides whether it applies to a config (`matches`), fills the
model fields its data decides (`model_fields`), says whether its model is causal (and so
leak-checked), attaches its extra evaluations to the trainer (`attach`), adds its summary
fields (`summarise`), returns its probes as data (`probe`), draws its figures and writes
its report section from the run directory's files (`report_section`, `sweep_section`),
and says what the CLI prints (`summary_lines`, `probe_lines`).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from attnlab.config.schema import RunConfig
from attnlab.run_dir import RunDir


class Task:
    """The defaults: a causal token model with no extra evaluation, probe or section."""

    name = "task"
    description = ""
    causal = True  # leak-checked before and after training

    def matches(self, cfg: RunConfig) -> bool:
        """Whether this task runs `cfg`."""
        raise NotImplementedError

    def model_fields(self, cfg: RunConfig, dataset) -> dict:
        """Model config fields the data decides, beyond vocabulary size and length."""
        return {}

    def attach(self, trainer, cfg: RunConfig, dataset) -> None:
        """Set the trainer's extra periodic evaluation (`task_eval`) or probe (`probe_fn`)."""

    def summarise(self, trainer, val: dict, test: dict, cap: int | None) -> dict:
        """Extra `summary.json` fields after training (`val`, `test`: the final evals)."""
        return {}

    def probe(self, rd: RunDir, cfg: RunConfig, model: nn.Module, tok) -> dict:
        """Every probe of a trained run, as data (no figures)."""
        return {}

    def report_section(
        self,
        rd: RunDir,
        summary: dict,
        records: list[dict],
        probes: dict | None,
        attention: dict | None,
    ) -> str:
        """The task's part of a run report (Markdown), drawing its figures into `plots/`."""
        return ""

    def sweep_section(self, groups: dict, order: list[str], plots: Path) -> str:
        """The task's part of a sweep report, drawing its figures into `plots`."""
        return ""

    def summary_lines(self, summary: dict) -> list[str]:
        """What `attnlab train` prints after the generic line."""
        return []

    def probe_lines(self, probes: dict) -> list[str]:
        """What `attnlab probe` prints."""
        return []
