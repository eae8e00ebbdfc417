"""Sweeps shared through a database by separate commands: a real PostgreSQL server
(tests/postgres_server.py) and a shared SQLite file. Every grid trial runs exactly once,
a SIGKILLed command's trial is failed with its reason and rerun once, a search's budget
holds with concurrent workers, and the storage URL forms and missing-driver message."""

from __future__ import annotations

import os
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
from tests.integration.test_sweep import _spec

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


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
