"""The slow tier of tests/integration/test_sweep.py: end-to-end runs of minutes or
several processes, or tests of more than a few seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from attnlab.config.sweep import load_sweep_spec
from attnlab.experiments.sweep import jobs, run_sweep
from attnlab.experiments.sweep_results import load_trials
from tests.integration.test_sweep import TINY, _assert_each_job_once, _quiet, _spec


@pytest.mark.slow  # starts several processes
def test_two_workers_share_one_sqlite_study(tmp_path):
    """A 6-trial grid with 2 local worker processes: each trial runs exactly once."""
    spec = _spec(tmp_path, grid={"train.lr": [0.001, 0.003], "model.pos": ["learned"]}, seeds=3)
    out = run_sweep(spec, tmp_path / "sw", workers=2, echo=_quiet)
    _, trials = load_trials(out)
    assert len(trials) == 6
    want = {j.name for j in jobs(load_sweep_spec(spec), tmp_path)}
    _assert_each_job_once(trials, want)
    for t in trials:
        run = out / t["run_dirs"][0]
        assert json.loads((run / "summary.json").read_text())["seed"] == t["seed"]
    report = (out / "report.md").read_text()
    assert "| pos=learned, lr=0.003 | 3 |" in report
    assert "95% CI" in report and (out / "report.html").is_file()
    # running it again finds nothing to do
    run_sweep(spec, tmp_path / "sw", workers=2, echo=_quiet)
    assert len(load_trials(out)[1]) == 6


@pytest.mark.slow  # starts several processes
def test_killed_worker_is_rerun_without_loss_or_duplicate(tmp_path):
    """Kill the sweep's process mid-trial; the same command completes every job once."""
    slow = [*TINY, "train.max_steps=1500", "train.eval_every=1000", "train.log_every=1"]
    spec = _spec(tmp_path, set=slow, grid={"train.lr": [0.001]}, seeds=3)
    out = tmp_path / "sw"
    cmd = [sys.executable, "-m", "attnlab", "sweep", str(spec), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics = out / "trials" / "lr-0.001-s1" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.is_file() and metrics.stat().st_size > 0):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "the first trial never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, before = load_trials(out)
    assert [t["state"] for t in before].count("running") == 1
    assert not (metrics.parent / "summary.json").is_file()  # killed halfway

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    _, trials = load_trials(out)
    _assert_each_job_once(trials, {"lr-0.001-s1", "lr-0.001-s2", "lr-0.001-s3"})
    failed = [t for t in trials if t["state"] == "fail"]
    assert len(failed) == 1 and failed[0]["job"] == "lr-0.001-s1"
    assert failed[0]["fail_reason"].startswith("worker died")
    retry = [t for t in trials if t.get("retry_of") == failed[0]["number"]]
    assert len(retry) == 1 and retry[0]["state"] == "complete"
    assert (metrics.parent / "summary.json").is_file()
    report = (out / "report.md").read_text()
    assert "3 complete, 1 stopped and rerun" in report
    assert f"trial {retry[0]['number']} (complete)" in report
