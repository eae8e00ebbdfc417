"""Sweeps' shared state in the Optuna database: the storage, the claim of a waiting trial
by one worker, heartbeats, and the reaping of trials whose worker died (see
`attnlab.experiments.sweep` for how a sweep uses them).

A worker claims a WAITING trial by moving it to RUNNING through the storage, which refuses
a trial another worker moved first; with SQLite a file lock serialises the claim, since
SQLite has no row locks. A RUNNING trial whose pid is gone on this host, or whose heartbeat
is older than `GRACE_S`, is failed with the reason and enqueued again once.

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

HEARTBEAT_S = 10.0
GRACE_S = 120.0


def storage_url(sweep_dir: Path, storage: str | None) -> str:
    """The database URL: `storage` when given, else SQLite in the sweep directory."""
    return storage or f"sqlite:///{(Path(sweep_dir) / 'sweep.db').resolve()}"


def open_storage(url: str):
    """Optuna's RDB storage for `url` (SQLite waits up to 120 s for a lock)."""
    import optuna

    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


@contextmanager
def claim_lock(sweep_dir: Path, url: str) -> Iterator[None]:
    """An exclusive file lock while a worker claims a trial (SQLite only; see module doc)."""
    if not url.startswith("sqlite"):
        yield
        return
    import fcntl

    with open(Path(sweep_dir) / ".claim.lock", "a+") as fh:
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
