"""`attnlab sweep SPEC.yaml`: grids, ablations and searches over seeds, run by Optuna.

The sweep directory holds `spec.yaml`, the Optuna study (`sweep.db`, SQLite, unless
`--storage URL` names another database that workers on many machines share), one normal
run directory per trial under `trials/`, and the report.

Trials. A grid or an ablation is a fixed list of jobs (configuration × seed), enqueued
once when the study is created; workers pop them from Optuna's queue. A search asks
Optuna's sampler (random or TPE) for a configuration until `budget` trials have finished;
each such trial trains every seed and reports their mean. Every trial carries its job
name, its overrides, its worker (host, pid) and a heartbeat in its user attributes.

Resume and failure. Re-running the same command loads the study: finished trials stay
finished. A running trial whose worker is gone (its pid is dead on this host, or its
heartbeat is older than `grace_s`) is marked failed with the reason "worker died" and
enqueued again with the same job and parameters, so it is rerun from scratch; exactly one
worker does that, because only one can move the trial out of RUNNING. A trial that fails
by itself (NaN loss, an error, a NaN metric) is recorded as failed with its reason and
`error.txt` in its run directory, and the sweep goes on; it is not retried.

With SQLite, every worker takes a file lock (`.claim.lock`) while it claims a trial,
because SQLite has no row locks: so two local workers never pop the same trial. Across
machines (PostgreSQL), Optuna's row locks make the pop atomic.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from itertools import product
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from attnlab.config.load import config_path
from attnlab.config.sweep import Range, SweepSpec
from attnlab.errors import UserError
from attnlab.experiments.sweep_claim import (
    claim_lock,
    heartbeat,
    open_storage,
    pop_waiting,
    reap_stale,
    storage_url,
    trial_id,
)
from attnlab.report.tables import summary_value
from attnlab.run_dir import SPEC, RunDir


@dataclass(frozen=True)
class Job:
    """One configuration × seed of a grid or ablation: its name, label and overrides."""

    name: str  # unique, also the run directory's name
    label: str  # the configuration (without the seed)
    config: str  # config file
    overrides: tuple[str, ...]
    seed: int


def _short(key: str, value: Any) -> str:
    """`model.mixer.conv_kernel`, 3 → `conv_kernel=3`; a config path → its stem."""
    if key == "config":
        return Path(str(value)).stem
    return f"{key.rsplit('.', 1)[-1]}={value}"


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)
    return keep.replace("=", "-")[:80]


def _overrides(point: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f"{k}={json.dumps(v)}" for k, v in point.items() if k != "config")


def configurations(spec: SweepSpec) -> list[tuple[str, dict[str, Any]]]:
    """(label, point) of a grid (every combination) or ablation (base, then one change)."""
    if spec.grid is not None:
        out = []
        for vals in product(*spec.grid.values()):
            point: dict[str, Any] = {}
            for k, v in zip(spec.grid, vals, strict=True):  # a mapping sets several keys
                point.update(v if isinstance(v, dict) else {k: v})
            out.append((", ".join(_short(k, v) for k, v in point.items()), point))
        return out
    if spec.ablation is not None:
        out: list[tuple[str, dict[str, Any]]] = [("base", {})]
        for k, vals in spec.ablation.items():
            for v in vals:  # a mapping: several keys changed together (one change)
                point = v if isinstance(v, dict) else {k: v}
                out.append((", ".join(_short(kk, vv) for kk, vv in point.items()), point))
        return out
    raise ValueError("a search has no fixed configurations")


def jobs(spec: SweepSpec, spec_dir: Path) -> list[Job]:
    """Every configuration × seed of a grid or ablation, in table order."""
    out = []
    for label, point in configurations(spec):
        if spec.only is not None and label not in spec.only:
            continue
        cfg = str(config_path(point.get("config", spec.base), spec_dir))
        for seed in spec.seed_list:
            out.append(Job(f"{_slug(label)}-s{seed}", label, cfg, _overrides(point), seed))
    names = [j.name for j in out]
    if len(set(names)) != len(names):
        raise UserError("two configurations of the sweep get the same name; make values distinct")
    return out


def _claim(study, storage, spec: SweepSpec):
    """The next trial for this worker (queue first, then a new search trial), or None."""
    from optuna.trial import TrialState

    trial = pop_waiting(study, storage)
    if trial is not None or spec.search is None:
        return trial
    counted = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL)
    used = [
        t
        for t in study.get_trials(deepcopy=False, states=counted)
        if not str(t.user_attrs.get("fail_reason", "")).startswith("worker died")
    ]
    if len(used) >= spec.search.budget:
        return None
    # a sampler seeded by the new trial's number: workers that load the study at the same
    # time would otherwise draw the same point from equal seeds; this way the points
    # depend on the history alone, not on how many workers there are
    study.sampler = _sampler(spec, offset=len(study.get_trials(deepcopy=False)))
    return study.ask()


def _suggest(trial, name: str, space: Range | list[Any]) -> Any:
    if isinstance(space, list):
        return trial.suggest_categorical(name, space)
    if space.integer:
        step = int(space.step or 1)
        return trial.suggest_int(name, int(space.low), int(space.high), step=step, log=space.log)
    return trial.suggest_float(name, space.low, space.high, step=space.step, log=space.log)


def _trial_plan(trial, spec: SweepSpec, spec_dir: Path) -> tuple[str, str, list[str], list]:
    """(job name, config, overrides, seeds) of a claimed trial.

    A grid or ablation trial carries them from the queue; a search trial suggests its
    point (an enqueued retry gets its old parameters back from Optuna) and records them.
    """
    attrs = trial.user_attrs
    if spec.search is None:
        return attrs["job"], attrs["config"], list(attrs["overrides"]), [attrs["seed"]]
    point = {k: _suggest(trial, k, v) for k, v in spec.search.params.items()}
    shown = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in point.items()}
    job = attrs.get("job") or f"t{trial.number:03d}"
    cfg = str(config_path(point.get("config", spec.base), spec_dir))
    overrides = list(_overrides(point))
    plan = {
        "job": job,
        "label": ", ".join(_short(k, v) for k, v in shown.items()),
        "config": cfg,
        "overrides": overrides,
        "seed": None,
    }
    for k, v in plan.items():
        trial.set_user_attr(k, v)
    return job, cfg, overrides, spec.seed_list


# ---- running a trial -----------------------------------------------------------------


def train_one(config: str, sets: list[str], run_dir: Path, probe: bool) -> dict:
    """Train (and probe, and report) one run directory; returns its summary.

    A run directory already made with this config is not thrown away: a finished one is
    kept (probed first if the sweep probes and its weights are there), and one that was
    stopped mid-way continues from its checkpoint. So a sweep whose database is gone (a
    fresh clone of committed results) takes its runs back instead of training them again.
    """
    from attnlab import runs
    from attnlab.config import load_config

    cfg = load_config(config_path(config), [*sets, "train.progress=false"])
    rd = RunDir(run_dir)
    same = rd.config.is_file() and _same_run(rd, cfg)
    if same and rd.is_finished() and (rd.is_probed() or not probe):
        return rd.read_summary()
    if same and rd.weights.is_file() and (rd.is_finished() or rd.state.is_file()):
        summary = rd.read_summary() if rd.is_finished() else runs.resume(run_dir)
        if probe:
            runs.probe(run_dir)
        runs.report(run_dir)
        return summary
    if run_dir.exists():
        _set_aside(rd)  # another config's, or nothing to continue from
    return runs.run(cfg, run_dir, probes=probe)


def _set_aside(rd: RunDir) -> None:
    """Clear a trial's directory for a fresh run. One that holds results (a summary or a
    checkpoint: hours of training made under another config) is moved to the sweep's
    `replaced/` folder with a warning, not deleted; one with nothing to keep is removed."""
    if not (rd.summary.is_file() or rd.state.is_file() or rd.weights.is_file()):
        shutil.rmtree(rd.path)
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = rd.path.parent.parent / "replaced" / f"{rd.path.name}-{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(rd.path), dest)
    print(f"warning: {rd.path} was made with another config; moved to {dest}", flush=True)


def _same_run(rd: RunDir, cfg) -> bool:
    """Whether the run directory's saved config is `cfg` (fields `cfg` leaves unset, which
    training fills from the data, and `train.progress` aside; so is the Hub dataset's name
    of a text read from a local `data.path`, which never reads it: the name's default
    moved to `Salesforce/wikitext` after runs had been made with `wikitext`)."""
    from attnlab.config import load_config

    def fits(want, have) -> bool:
        if isinstance(want, dict):
            return isinstance(have, dict) and all(
                fits(v, have.get(k)) for k, v in want.items() if k != "progress"
            )
        return want is None or want == have

    saved = load_config(rd.config).model_dump(mode="json")
    want = cfg.model_dump(mode="json")
    if want["data"].get("path") is not None and "dataset" in want["data"]:
        for key in ("dataset", "dataset_config"):
            want["data"][key] = None  # unset: anything fits
    return fits(want, saved)


def run_trial(study, storage, trial, spec: SweepSpec, sweep_dir: Path, spec_dir: Path) -> None:
    """Train a claimed trial's seeds and tell Optuna the value, or the failure and why."""
    from optuna.trial import TrialState

    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("heartbeat", time.time())
    stop = threading.Event()
    tid = trial_id(storage, study, trial.number)
    beat = threading.Thread(target=heartbeat, args=(storage, tid, stop), daemon=True)
    beat.start()
    try:
        job, cfg, overrides, seeds = _trial_plan(trial, spec, spec_dir)
        values, dirs = [], []
        for seed in seeds:
            name = job if spec.search is None else f"{job}-s{seed}"
            run_dir = Path(sweep_dir) / "trials" / name
            dirs.append(str(run_dir.relative_to(sweep_dir)))
            trial.set_user_attr("run_dirs", dirs)
            try:
                summary = train_one(
                    cfg, [*spec.set, *overrides, f"train.seed={seed}"], run_dir, spec.probe
                )
            except Exception as e:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
                raise _TrialFailed(f"{type(e).__name__}: {e}") from e
            v = summary_value(summary, spec.metric)
            if v is None or not math.isfinite(v):
                raise _TrialFailed(f"metric {spec.metric} is {v} in {run_dir.name}")
            values.append(v)
        stop.set()
        study.tell(trial, sum(values) / len(values))
    except _TrialFailed as e:
        stop.set()
        trial.set_user_attr("fail_reason", str(e))
        study.tell(trial, state=TrialState.FAIL)
    finally:
        stop.set()


class _TrialFailed(Exception):
    """A trial that failed by itself (recorded, not retried)."""


# ---- the sweep -----------------------------------------------------------------------


def open_study(
    sweep_dir: Path, spec: SweepSpec, url: str, spec_dir: Path, before: SweepSpec | None = None
):
    """Create (and enqueue) or load the sweep's study; a different spec is an error, but for
    a grid or ablation whose seeds changed from `before` (the spec the study was made
    from): the trials of seeds it lacks are enqueued."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    sampler = _sampler(spec)
    direction = spec.direction
    with claim_lock(sweep_dir, storage, spec.name):
        study = optuna.create_study(
            storage=storage,
            study_name=spec.name,
            direction=direction,
            sampler=sampler,
            load_if_exists=True,
        )
        have = study.user_attrs.get("spec_fingerprint")
        reseeded = (
            before is not None
            and have == before.fingerprint()
            and before.differs_only_in_seeds(spec)
        )
        if have is not None and have != spec.fingerprint() and not reseeded:
            raise UserError(
                f"the study {spec.name!r} in {url} was made from another spec; use a new "
                "--out (or --storage) or rename the sweep"
            )
        if have is None or reseeded:
            study.set_user_attr("spec_fingerprint", spec.fingerprint())
            study.set_user_attr("kind", spec.kind)
            if spec.search is None:
                queued = {t.user_attrs.get("job") for t in study.get_trials(deepcopy=False)}
                for j in jobs(spec, spec_dir):
                    if j.name in queued:
                        continue
                    attrs = {
                        "job": j.name,
                        "label": j.label,
                        "config": j.config,
                        "overrides": list(j.overrides),
                        "seed": j.seed,
                    }
                    study.enqueue_trial({}, user_attrs=attrs, skip_if_exists=False)
            study.set_user_attr("ready", True)
    return study


def _sampler(spec: SweepSpec, offset: int = 0):
    """The spec's sampler, its seed `sampler_seed + offset` (no sampler draws for a grid)."""
    import optuna

    if spec.search is None:
        return optuna.samplers.RandomSampler(seed=0)  # unused: every trial is enqueued
    seed = spec.search.sampler_seed + offset
    if spec.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, spec.search.budget))


def worker(
    sweep_dir: str,
    spec_path: str,
    url: str,
    threads: int | None = None,
    max_trials: int | None = None,
) -> int:
    """Claim and run trials until none is left (or `max_trials`); returns how many it ran."""
    import optuna

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    sweep_dir = Path(sweep_dir)
    spec = read_spec(sweep_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    study = optuna.load_study(study_name=spec.name, storage=storage, sampler=_sampler(spec))
    ran = 0
    while max_trials is None or ran < max_trials:
        with claim_lock(sweep_dir, storage, spec.name):
            reap_stale(study, storage)
            trial = _claim(study, storage, spec)
        if trial is None:
            break
        run_trial(study, storage, trial, spec, sweep_dir, Path(spec_path).parent)
        ran += 1
    return ran


def read_spec(sweep_dir: Path) -> SweepSpec:
    from attnlab.config.sweep import load_sweep_spec

    return load_sweep_spec(Path(sweep_dir) / SPEC)


def run_sweep(
    spec_path: Path,
    out: Path | None = None,
    storage: str | None = None,
    workers: int = 1,
    sets: list[str] | None = None,
    report: bool = True,
    echo=print,
    seeds: int | None = None,
    quick: bool = False,
) -> Path:
    """Run (or resume) a sweep with `workers` local processes; returns the sweep directory.

    `seeds` replaces the spec's seeds (1..seeds); `quick` runs only its `quick` list.
    """
    import yaml

    from attnlab.config.sweep import load_sweep_spec

    spec_path = Path(spec_path)
    spec = load_sweep_spec(spec_path, sets)
    if workers < 1:
        raise UserError("--workers must be >= 1")
    if seeds is not None:
        if seeds < 1:
            raise UserError("--seeds must be >= 1")
        spec = spec.model_copy(update={"seeds": seeds})
    if quick:
        if spec.quick is None:
            raise UserError(f"sweep {spec.name} has no quick list (`quick:` in its spec)")
        spec = spec.model_copy(update={"only": spec.quick})
    sweep_dir = Path(out or Path("runs") / f"sweep-{spec.name}")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    saved = sweep_dir / SPEC
    before = read_spec(sweep_dir) if saved.is_file() else None
    if before is not None and before.fingerprint() != spec.fingerprint():
        if not before.differs_only_in_seeds(spec):
            raise UserError(f"{sweep_dir} holds another sweep's spec.yaml; choose another --out")
        if spec.seeds < before.seeds:  # fewer seeds remove no trial: the sweep keeps its own
            echo(f"seeds {spec.seeds} < the {before.seeds} in {sweep_dir}: all {before.seeds} kept")
            spec = before
        else:
            echo(f"seeds {before.seeds} → {spec.seeds}: the trials of the new seeds are added")
    text = yaml.safe_dump(spec.model_dump(mode="json", by_alias=True), sort_keys=False)
    saved.write_text(text, encoding="utf-8")
    url = storage_url(sweep_dir, storage)
    study = open_study(sweep_dir, spec, url, spec_path.parent, before)
    (sweep_dir / "storage.txt").write_text(_redact(url) + "\n", encoding="utf-8")
    t0 = time.perf_counter()
    echo(f"sweep {spec.name} ({spec.kind}): storage {_redact(url)}, {workers} worker(s)")
    _progress(study, echo)
    cpus = os.cpu_count() or 1
    if workers == 1:
        worker(str(sweep_dir), str(spec_path), url)
    else:
        ctx = get_context("spawn")
        threads = max(1, cpus // workers)
        procs = [
            ctx.Process(target=worker, args=(str(sweep_dir), str(spec_path), url, threads))
            for _ in range(workers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    _progress(study, echo)
    echo(f"sweep {spec.name}: {(time.perf_counter() - t0) / 60:.1f} min")
    if report:
        from attnlab.experiments.sweep_results import report_sweep

        echo(f"report: {report_sweep(sweep_dir, storage)}")
    return sweep_dir


def _progress(study, echo) -> None:
    from collections import Counter

    states = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    echo("  trials: " + (", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"))


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
