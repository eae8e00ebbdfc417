"""Sweeps shared through a database by separate commands: a real PostgreSQL server
(tests/postgres_server.py) and a shared SQLite file. Every grid trial runs exactly once,
a SIGKILLed command's trial is failed with its reason and rerun once, a search's budget
holds with concurrent workers, and the storage URL forms and missing-driver message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from attnlab.errors import UserError
from attnlab.experiments import sweep_claim
from attnlab.experiments.sweep_claim import claim_lock, open_storage, storage_url
from attnlab.experiments.sweep_results import load_trials
from tests.test_sweep import TINY, _assert_each_job_once, _spec

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path) -> str:
    """A shared database URL: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


def _cmd(spec: Path, out: Path, storage: str) -> list[str]:
    return [sys.executable, "-m", "attnlab", "sweep", str(spec), "--out", str(out),
            "--storage", storage]  # fmt: skip


# ---- the URL and the driver ------------------------------------------------------------


def test_postgres_url_forms(monkeypatch, tmp_path):
    monkeypatch.setattr(sweep_claim, "_importable", lambda m: m == "psycopg")
    assert storage_url(tmp_path, "postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url(tmp_path, "postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(UserError, match=r"psycopg2 package.*attnlab\[postgres\]"):
        storage_url(tmp_path, "postgresql+psycopg2://u@h/db")
    # only psycopg2 installed (the README's old advice): a plain URL takes it
    monkeypatch.setattr(sweep_claim, "_importable", lambda m: m == "psycopg2")
    assert storage_url(tmp_path, "postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    monkeypatch.setattr(sweep_claim, "_importable", lambda m: False)
    with pytest.raises(UserError, match=r"none is installed: pip install 'attnlab\[postgres\]'"):
        storage_url(tmp_path, "postgresql://u@h/db")
    with pytest.raises(UserError, match="not supported"):
        storage_url(tmp_path, "mysql://u@h/db")
    with pytest.raises(UserError, match="driver 'pg8000' is not supported"):
        storage_url(tmp_path, "postgresql+pg8000://u@h/db")
    assert storage_url(tmp_path, None).endswith("/sweep.db")


def test_missing_driver_is_a_clear_cli_error(tmp_path):
    """Tried as a new user would: a URL naming a driver that is not installed."""
    spec = _spec(tmp_path, grid={"train.lr": [0.001]})
    res = subprocess.run(
        _cmd(spec, tmp_path / "sw", "postgresql+psycopg2://u@127.0.0.1:1/db"),
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if "psycopg2" in sys.modules or sweep_claim._importable("psycopg2"):
        pytest.skip("psycopg2 is installed here")
    assert res.returncode == 2, res.stderr
    assert "attnlab[postgres]" in res.stderr and "Traceback" not in res.stderr


def test_an_unreachable_database_is_a_clear_error(postgres_server):
    url = f"postgresql://postgres@127.0.0.1:{postgres_server.port}/no_such_database"
    with pytest.raises(UserError, match="cannot reach the sweep database"):
        open_storage(storage_url(Path("."), url))


# ---- the claim lock --------------------------------------------------------------------


def test_the_claim_lock_excludes_another_worker(storage, tmp_path):
    """While one worker holds the claim lock, another (its own connection) waits."""
    url = storage_url(tmp_path, storage)
    first, second = open_storage(url), open_storage(url)
    order: list[str] = []
    held = threading.Event()

    def other() -> None:
        held.wait()
        with claim_lock(tmp_path, second, "t"):
            order.append("second in")

    thread = threading.Thread(target=other)
    thread.start()
    with claim_lock(tmp_path, first, "t"):
        held.set()
        time.sleep(0.5)  # the other worker is blocked meanwhile
        order.append("first out")
    thread.join(timeout=30)
    assert order == ["first out", "second in"]


# ---- separate commands -----------------------------------------------------------------


def _trials_so_far(out: Path, url: str) -> list[dict]:
    """The sweep's trials, or none while its first command is still making the study."""
    try:
        return load_trials(out, url)[1]
    except Exception:  # no spec.yaml or no study yet
        return []


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
