"""Shared fixtures: an isolated token cache, tiny configs, and the optional shared data.

The tiers are folders: `tests/unit` (one module at a time, in memory), `tests/integration`
(runs, commands, sweeps and databases, a few seconds at most each) and `tests/e2e` (the
slow tier: end-to-end runs of minutes, several processes, anything longer; every test
there is marked `slow`, which the default command deselects). Torch uses one thread: the
figures do not depend on it, and the suite shares a 2-core machine with other work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnlab.config import validate
from tests.helpers import tiny_raw

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_configure(config):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Every test under tests/e2e is in the slow tier."""
    for item in items:
        if E2E in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own token cache, so no test sees another's files; and
    `train.precision: auto` means float32 (tests compare float32 figures; a CPU with AMX
    would otherwise train them in bf16). tests/integration/test_precision.py tests auto itself."""
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("ATTNLAB_AUTO_PRECISION", "32-true")


@pytest.fixture
def tiny_cfg():
    """Build a tiny validated config; keyword `section__field=value` overrides."""
    return lambda **over: validate(tiny_raw(**over), "tiny")


@pytest.fixture
def text_dir(tmp_path) -> Path:
    """A local corpus laid out like WikiText (train / valid / test files)."""
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "the",
        "mat",
        "and",
        "the",
        "dog",
        "ran",
        "to",
        "the",
        "park",
        "while",
        "birds",
        "sang",
    ]
    files = (("wiki.train.raw", 4000, 7), ("wiki.valid.raw", 600, 5), ("wiki.test.raw", 600, 3))
    for name, n, stride in files:
        text = " ".join(words[(i * stride) % len(words)] for i in range(n)) + "\n"
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (tests/postgres_server.py)."""
    from tests.postgres_server import start_server

    yield from start_server()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new empty database on the session's PostgreSQL server; its URL."""
    return postgres_server.database()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path) -> str:
    """A shared database URL: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")
