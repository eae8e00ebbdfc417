"""Sweeps' shared state in the Optuna database: the storage, the claim of a waiting trial
by one worker, heartbeats, and the reaping of trials whose worker died (see
`attnlab.experiments.sweep` for how a sweep uses them).

A worker claims a WAITING trial by moving it to RUNNING through the storage, which refuses
a trial another worker moved first. The whole claim (reaping, counting a search's budget,
asking for a new trial) holds one lock so that concurrent workers cannot overshoot a
budget: on PostgreSQL a session advisory lock in the database itself (workers on any
machine), on SQLite a file lock beside the database (workers on one machine; SQLite has no
row locks). Other databases are refused. A RUNNING trial whose pid is gone on this host,
or whose heartbeat is older than `GRACE_S`, is failed with the reason and enqueued again
once.

PostgreSQL URLs: `postgresql+psycopg://` (psycopg 3, `pip install 'attnlab[postgres]'`)
and `postgresql+psycopg2://` name their driver; a plain `postgresql://` takes psycopg 3
when it is installed, else psycopg2 (SQLAlchemy alone would insist on psycopg 3).

Only Optuna's public API is used: the storage is the one `open_storage` returned (the
caller keeps it), a trial's storage id comes from `BaseStorage.get_study_id_from_name` and
`get_trial_id_from_study_id_trial_number`, and a claimed trial is an `optuna.trial.Trial`.
pyproject still caps Optuna below 6 (the storage API's next major version may change).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attnlab.errors import UserError

HEARTBEAT_S = 10.0
GRACE_S = 120.0


POSTGRES_DRIVERS = {"psycopg": "psycopg", "psycopg2": "psycopg2"}  # URL driver -> module
POSTGRES_EXTRA = "pip install 'attnlab[postgres]'"


def storage_url(sweep_dir: Path, storage: str | None) -> str:
    """The database URL: `storage` when given (a PostgreSQL URL with its driver resolved,
    see module doc), else SQLite in the sweep directory. Other databases are refused."""
    if storage is None:
        return f"sqlite:///{(Path(sweep_dir) / 'sweep.db').resolve()}"
    scheme = storage.split("://", 1)[0] if "://" in storage else ""
    dialect, _, driver = scheme.partition("+")
    if dialect == "sqlite":
        return storage
    if dialect not in ("postgresql", "postgres"):
        raise UserError(
            f"--storage {scheme or storage!r}: sweeps run on SQLite (sqlite:///FILE) or "
            "PostgreSQL (postgresql://USER:PASSWORD@HOST/DB); other databases are not supported"
        )
    rest = storage.split("://", 1)[1]
    if driver:
        if driver not in POSTGRES_DRIVERS:
            raise UserError(
                f"--storage: PostgreSQL driver {driver!r} is not supported; use "
                "postgresql+psycopg:// (psycopg 3) or postgresql+psycopg2://"
            )
        if not _importable(POSTGRES_DRIVERS[driver]):
            raise UserError(
                f"--storage {scheme}:// needs the {driver} package, which is not installed: "
                f"{POSTGRES_EXTRA} (psycopg 3), or name an installed driver in the URL"
            )
        return f"postgresql+{driver}://{rest}"
    for name in POSTGRES_DRIVERS:
        if _importable(POSTGRES_DRIVERS[name]):
            return f"postgresql+{name}://{rest}"
    raise UserError(
        f"--storage postgresql:// needs a PostgreSQL driver and none is installed: {POSTGRES_EXTRA}"
    )


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def open_storage(url: str):
    """Optuna's RDB storage for `url`. Its tables are made under a lock, so two workers
    starting at once do not race to create them: a file lock beside a SQLite database (which
    then waits up to 120 s for a lock), an advisory lock on PostgreSQL. A database that
    cannot be reached is a UserError."""
    import optuna
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        db = sa.engine.make_url(url).database  # None or ":memory:": no file to share
        shared = db and db != ":memory:"
        # two commands starting at once on a new file race to create the tables
        with _file_lock(Path(db + ".lock")) if shared else contextlib.nullcontext():
            kwargs = {"connect_args": {"timeout": 120}}
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    engine = sa.create_engine(url)
    try:
        with _advisory_lock(engine, "attnlab.sweep.schema"):
            return optuna.storages.RDBStorage(url)
    except sa.exc.OperationalError as e:
        raise UserError(f"cannot reach the sweep database: {e.orig}") from e
    finally:
        engine.dispose()


@contextmanager
def _advisory_lock(engine, name: str) -> Iterator[None]:
    """A PostgreSQL session advisory lock keyed by `name`, held on a connection of its own
    (so the storage's own sessions, which may lock rows, never wait on it)."""
    import sqlalchemy as sa

    key = {"k": name}
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:k))"), key)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:k))"), key)
            conn.commit()


@contextmanager
def claim_lock(sweep_dir: Path, storage, study_name: str) -> Iterator[None]:
    """An exclusive lock while a worker claims a trial (see module doc): a PostgreSQL
    advisory lock keyed by the study's name, held on a connection of its own, or a file
    lock beside the SQLite database."""
    if storage.engine.dialect.name == "postgresql":
        with _advisory_lock(storage.engine, f"attnlab.sweep:{study_name}"):
            yield
        return
    with _file_lock(Path(sweep_dir) / ".claim.lock"):
        yield


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive `flock` on the file `path` (made if missing) between processes."""
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(trial, grace_s: float) -> str | None:
    """Why a RUNNING trial's worker is gone, or None while it may still be alive."""
    attrs = trial.user_attrs
    host, pid = attrs.get("host"), attrs.get("pid")
    if host == socket.gethostname() and pid is not None and not _pid_alive(int(pid)):
        return f"worker died (pid {pid} on {host} is gone)"
    beat = attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    if beat is not None and time.time() - float(beat) > grace_s:
        return f"worker died (no heartbeat for {time.time() - float(beat):.0f} s)"
    return None


def trial_id(storage, study, number: int) -> int:
    """The storage's id of the study's trial `number`."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def reap_stale(study, storage, grace_s: float = GRACE_S) -> list[int]:
    """Fail the RUNNING trials whose worker is gone and enqueue each again; their numbers.
    `storage` is the study's (`open_storage`)."""
    import optuna
    from optuna.trial import TrialState

    reaped = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = _is_stale(t, grace_s)
        if reason is None:
            continue
        tid = trial_id(storage, study, t.number)
        try:
            storage.set_trial_user_attr(tid, "fail_reason", reason)
            if not storage.set_trial_state_values(tid, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        keep = {k: v for k, v in t.user_attrs.items() if k in JOB_ATTRS}
        study.enqueue_trial(t.params, user_attrs={**keep, "retry_of": t.number})
        reaped.append(t.number)
    return reaped


JOB_ATTRS = ("job", "label", "config", "overrides", "seed")


def pop_waiting(study, storage):
    """Move one WAITING trial to RUNNING atomically; the optuna Trial, or None. Retries of
    trials whose worker died come first: their run may continue from its checkpoint."""
    import optuna
    from optuna.trial import TrialState

    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for t in sorted(waiting, key=lambda t: (t.user_attrs.get("retry_of") is None, t.number)):
        tid = trial_id(storage, study, t.number)
        try:
            if storage.set_trial_state_values(tid, TrialState.RUNNING):
                return optuna.trial.Trial(study, tid)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def heartbeat(storage, tid: int, stop: threading.Event) -> None:
    """Every `HEARTBEAT_S` until `stop`: the trial's heartbeat user attribute, now."""
    while not stop.wait(HEARTBEAT_S):
        # the database may be briefly locked; the next beat will do
        with contextlib.suppress(Exception):
            storage.set_trial_user_attr(tid, "heartbeat", time.time())
