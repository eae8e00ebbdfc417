"""`attnlab study NAME`: the named studies, each a packaged sweep spec (`sweeps/NAME.yaml`).

A study is a sweep over config files × seeds with probes: `induction` (five models on
repeated random segments, and when each forms an induction head), `piglatin` (the Pig
Latin ablation) and `mamba_discretization` (three discretisations). Running one is
running its sweep, so resume, failure records, statistics and the report are the sweep's;
the command only names the spec and spreads the runs over the CPU's cores.
"""

from __future__ import annotations

import os
from pathlib import Path

from attnlab.config.load import config_path
from attnlab.errors import UserError
from attnlab.experiments.sweep import run_sweep
from attnlab.run_dir import REPORT

STUDIES = {  # study name → packaged sweep spec
    "induction": "induction",
    "piglatin": "piglatin_ablation",
    "mamba_discretization": "mamba_discretization",
}


def run_study(
    name: str,
    out: Path,
    seeds: int | None = None,
    quick: bool = False,
    jobs: int | None = None,
    echo=print,
) -> Path:
    """Run (or resume) a study's sweep into `out` with `jobs` workers (default: one per
    core, one thread each); returns the path of its `report.md`."""
    if name not in STUDIES:
        raise UserError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    cpus = os.cpu_count() or 1
    workers = max(1, min(jobs or cpus, cpus))
    spec = config_path(f"sweeps/{STUDIES[name]}")
    sweep_dir = run_sweep(spec, out, workers=workers, echo=echo, seeds=seeds, quick=quick)
    return sweep_dir / REPORT
