"""A throwaway PostgreSQL server for the sweep tests: Debian's server binaries, a cluster
in a temporary directory, listening on 127.0.0.1 at a free port, trust authentication,
stopped and removed when the test session ends.

Where no server binary exists the tests that need it are skipped with the reason, except
when ATTNLAB_REQUIRE_POSTGRES=1 (set by `.ci/run`), where that is a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "postgres"


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl (PATH first, then Debian's newest), or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(versions[0]).parent if versions else None


def _as_server_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as Debian's postgres user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", USER, "--", *cmd]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running cluster; `database()` makes a new empty database and returns its URL."""

    def __init__(self, port: int, bindir: Path) -> None:
        self.port, self.bindir, self._n = port, bindir, 0

    def database(self) -> str:
        self._n += 1
        name = f"attnlab_test_{self._n}"
        subprocess.run(
            [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
             name],
            check=True, capture_output=True,
        )  # fmt: skip
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"


def start_server() -> Iterator[Server]:
    """Start a cluster in a temporary directory; yield it; stop it and remove the files."""
    bindir = server_bin()
    if bindir is None:
        reason = "no PostgreSQL server binary (Debian: apt-get install postgresql)"
        if os.environ.get("ATTNLAB_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}; ATTNLAB_REQUIRE_POSTGRES=1 makes that a failure")
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="attnlab-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, USER, USER)
    data, port = base / "data", _free_port()
    subprocess.run(
        _as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", USER,
                         "--auth=trust", "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True,
    )  # fmt: skip
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log")]
    subprocess.run(
        _as_server_user([*ctl, "-o", opts, "-w", "start"]), check=True, capture_output=True
    )
    try:
        yield Server(port, bindir)
    finally:
        subprocess.run(_as_server_user([*ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
