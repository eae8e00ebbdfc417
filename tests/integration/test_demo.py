"""The demo's guard: it never replaces a directory it did not make (the demo's own run:
tests/e2e/test_demo.py)."""

from __future__ import annotations

import pytest

from attnlab.experiments.demo import run_demo


def test_demo_refuses_to_replace_a_foreign_directory(tmp_path):
    from attnlab.errors import UserError

    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(UserError, match="not made by the demo"):
        run_demo(tmp_path, echo=lambda *_: None)
    assert (tmp_path / "mine.txt").read_text() == "precious"
