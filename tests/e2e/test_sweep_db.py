"""The slow tier of tests/integration/test_sweep_db.py: end-to-end runs of minutes or
several processes, or tests of more than a few seconds."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from attnlab.experiments.sweep_claim import storage_url
from attnlab.experiments.sweep_results import load_trials
from tests.integration.test_sweep import TINY, _assert_each_job_once, _spec
from tests.integration.test_sweep_db import ENV, _cmd, _trials_so_far


@pytest.mark.slow  # starts several processes
def test_two_commands_share_a_study_and_a_killed_one_is_rerun(storage, tmp_path):
    """Two `attnlab sweep --storage` commands share a 3-trial grid; one is SIGKILLed
    mid-trial; a third command finishes. Every job completes exactly once, the dead trial
    is failed with its reason and rerun once."""
    slow = [*TINY, "train.max_steps=1500", "train.eval_every=1000", "train.log_every=1"]
    spec = _spec(tmp_path, set=slow, grid={"train.lr": [0.001]}, seeds=3)
    out = tmp_path / "sw"
    url = storage_url(out, storage)
    victim = subprocess.Popen(_cmd(spec, out, storage), env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 180
    while True:  # the victim's trial has started training
        assert victim.poll() is None, victim.stderr.read().decode()
        assert time.time() < deadline, "the first command never started a trial"
        mine = [t for t in _trials_so_far(out, url)
                if t["state"] == "running" and t.get("pid") == victim.pid]  # fmt: skip
        metrics = out / "trials" / mine[0]["job"] / "metrics.jsonl" if mine else None
        if metrics is not None and metrics.is_file() and metrics.stat().st_size > 0:
            break
        time.sleep(0.1)
    other = subprocess.Popen(_cmd(spec, out, storage), env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(1.0)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_job = mine[0]["job"]
    assert not (out / "trials" / killed_job / "summary.json").is_file()  # killed halfway
    _, err = other.communicate(timeout=600)
    assert other.returncode == 0, err.decode()
    res = subprocess.run(_cmd(spec, out, storage), env=ENV, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    _, trials = load_trials(out, url)
    _assert_each_job_once(trials, {"lr-0.001-s1", "lr-0.001-s2", "lr-0.001-s3"})
    failed = [t for t in trials if t["state"] == "fail"]
    assert len(failed) == 1 and failed[0]["job"] == killed_job
    assert failed[0]["fail_reason"].startswith("worker died")
    retry = [t for t in trials if t.get("retry_of") == failed[0]["number"]]
    assert len(retry) == 1 and retry[0]["state"] == "complete"
    for job in ("lr-0.001-s1", "lr-0.001-s2", "lr-0.001-s3"):
        assert (out / "trials" / job / "summary.json").is_file()


@pytest.mark.slow  # starts several processes
def test_concurrent_commands_keep_a_search_budget(storage, tmp_path):
    """Three commands at once on a search with budget 4: exactly 4 trials, all complete."""
    search = {"sampler": "random", "budget": 4,
              "params": {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}}  # fmt: skip
    spec = _spec(tmp_path, search=search, metric="final_val_loss")
    out = tmp_path / "sw"
    procs = [subprocess.Popen(_cmd(spec, out, storage), env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(3)]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
    _, trials = load_trials(out, storage_url(out, storage))
    assert [t["state"] for t in trials] == ["complete"] * 4
