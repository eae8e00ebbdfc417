"""One run, end to end: `train`, `resume`, `probe`, `report` and `run` (all three).

These are the public entry points for a run directory. Each picks the run's task from its
config (`tasks.task_for`) and hands it to the generic trainer, probes and report, so
`attnlab.train`, `attnlab.probes` and `attnlab.report` never ask which task they run.
"""

from __future__ import annotations

from pathlib import Path

from attnlab.config import load_config, validate
from attnlab.config.load import apply_overrides
from attnlab.config.schema import RunConfig
from attnlab.errors import UserError
from attnlab.probes.run import load_trained
from attnlab.report.run import write_run_report
from attnlab.run_dir import RunDir
from attnlab.tasks import Task, task_for
from attnlab.train import run as train_run


def train(cfg: RunConfig, run_dir: str | Path, stop_after: int | None = None) -> dict | None:
    """Train a fresh run into `run_dir`; returns the summary (None when stopped early).

    `stop_after` ends the run after that many steps with a resumable checkpoint.
    """
    return train_run.train(cfg, run_dir, task_for(cfg), stop_after)


def _task_of(rd: RunDir, doing: str = "read") -> Task:
    if not rd.config.is_file():
        raise UserError(f"cannot {doing} {rd.path}: {rd.config.name} is missing (not a run)")
    return task_for(load_config(rd.config))


def resume(run_dir: str | Path, stop_after: int | None = None) -> dict | None:
    """Continue the run in `run_dir` from its last checkpoint, exactly where it stopped."""
    return train_run.resume(run_dir, _task_of(RunDir(run_dir), "resume"), stop_after)


def probe(
    run_dir: str | Path, weights: str = "final", ablation: bool = False, sets: list | None = None
) -> dict:
    """Run every probe of the run's task on its `final` or `best` weights; writes
    `probes.json` (and the explorer's `attention.json`) and returns the data. `ablation`
    adds the head-ablation table (as `probes.ablation: true` does); `sets` change the
    `probes` section for this call (`probes.tokens=frequent`)."""
    rd = RunDir(run_dir)
    cfg, model, tok = load_trained(rd.path, weights)
    task = task_for(cfg)
    sets = [*(sets or []), *(["probes.ablation=true"] if ablation else [])]
    if sets:
        cfg = probes_overridden(cfg, sets)
    result = {"run": cfg.name, "weights": weights, "kind": task.name}
    result.update(task.probe(rd, cfg, model, tok))
    if ablation and "ablation" not in result:
        raise UserError(
            f"--ablation: {rd.path} has no attention heads on the repeat probe set to ablate "
            f"({task.description or task.name})"
        )
    rd.write_probes(result)
    return result


def probes_overridden(cfg: RunConfig, sets: list[str]) -> RunConfig:
    """`cfg` with `probes.KEY=VALUE` overrides (only the probes section: the weights fix
    the rest)."""
    bad = [s for s in sets if not s.startswith("probes.")]
    if bad:
        raise UserError(f"probe --set changes only probes.* settings (not {', '.join(bad)})")
    raw = apply_overrides(cfg.model_dump(mode="json"), sets)
    return validate(raw, "probe --set")


def report(run_dir: str | Path) -> Path:
    """Write the run's `report.md`, `report.html` and every figure from its files alone."""
    rd = RunDir(run_dir)
    return write_run_report(rd.path, _task_of(rd).report_section)


def run(cfg: RunConfig, run_dir: str | Path, probes: bool = True) -> dict:
    """Train → probe (unless `probes` is False) → report one run; returns the summary."""
    summary = train(cfg, run_dir)
    if probes:
        probe(run_dir)
    report(run_dir)
    return summary


def summary_lines(summary: dict, cfg: RunConfig) -> list[str]:
    """What the CLI prints about a finished run: the generic line and the task's."""
    first = (
        f"{summary['name']}: val loss {summary['final_val_loss']:.4f}, "
        f"val accuracy {summary['final_val_accuracy']:.4f}, "
        f"perplexity {summary['val_perplexity']:.2f}, {summary['tokens_per_s']:,.0f} tokens/s"
    )
    return [first, *task_for(cfg).summary_lines(summary)]


def probe_lines(probes: dict, run_dir: str | Path) -> list[str]:
    """What the CLI prints about a probed run."""
    return _task_of(RunDir(run_dir)).probe_lines(probes)
