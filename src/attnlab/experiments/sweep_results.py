"""A sweep's results: its trials read back from the Optuna study (`load_trials`) and its
report (`report_sweep`), drawn by `report.sweep` with the task's own section."""

from __future__ import annotations

from pathlib import Path

from attnlab.config.sweep import SweepSpec
from attnlab.errors import UserError
from attnlab.experiments.sweep import configurations, read_spec
from attnlab.experiments.sweep_claim import JOB_ATTRS, open_storage, storage_url
from attnlab.run_dir import RESULTS, SPEC, RunDir, read_json


def load_trials(sweep_dir: Path, storage: str | None = None) -> tuple[SweepSpec, list[dict]]:
    """The spec and every trial of a sweep directory as plain dicts (state, value, attrs).

    A committed sweep keeps `results.json` but not its SQLite database: with no `storage`
    given and no database file here, the trials are read from `results.json`."""
    import optuna

    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / SPEC).is_file():
        raise UserError(f"{sweep_dir} is not a sweep directory (no spec.yaml)")
    spec = read_spec(sweep_dir)
    url = storage_url(sweep_dir, storage)
    db = url.removeprefix("sqlite:///")
    if storage is None and not Path(db).is_file() and (sweep_dir / RESULTS).is_file():
        return spec, read_json(sweep_dir / RESULTS)["trials"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=spec.name, storage=open_storage(url))
    out = []
    for t in study.get_trials(deepcopy=False):
        out.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": dict(t.params),
                **{
                    k: t.user_attrs.get(k)
                    for k in (*JOB_ATTRS, "run_dirs", "fail_reason", "retry_of", "host", "pid")
                },
                "seconds": _seconds(sweep_dir, t),
            }
        )
    return spec, out


def _seconds(sweep_dir: Path, trial) -> float | None:
    """A trial's time: its runs' own wall time where every run has a summary (a trial
    taken back from committed results took the study a fraction of a second), else the
    study's duration of the trial."""
    dirs = [RunDir(sweep_dir / d) for d in trial.user_attrs.get("run_dirs") or []]
    walls = [d.read_summary().get("wall_s") if d.summary.is_file() else None for d in dirs]
    if walls and all(w is not None for w in walls):
        return float(sum(walls))
    return trial.duration.total_seconds() if trial.duration is not None else None


def report_sweep(sweep_dir: Path, storage: str | None = None) -> Path:
    """(Re)write a sweep's `results.json`, `report.md`, `report.html` and figures from its
    study and run directories, with its task's section."""
    from attnlab.config import load_config
    from attnlab.report.sweep import write_sweep_report
    from attnlab.tasks import task_for

    sweep_dir = Path(sweep_dir)
    spec, trials = load_trials(sweep_dir, storage)
    labels = [label for label, _ in configurations(spec)] if spec.search is None else []
    section = None
    for t in trials:  # the task of the first finished run
        dirs = [RunDir(sweep_dir / d) for d in t.get("run_dirs") or []]
        done = [d for d in dirs if d.is_finished()]
        if t["state"] == "complete" and done:
            section = task_for(load_config(done[0].config)).sweep_section
            break
    return write_sweep_report(sweep_dir, spec, trials, labels, section)
