"""`attnlab reproduce`: the list, the parts, and each runnable study at --scale quick."""

from __future__ import annotations

import re

import pytest

from attnlab.experiments.reproduce import REPRODUCTIONS, run_reproduction
from tests.helpers import WIKI_TOK


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, r in REPRODUCTIONS.items() if r.ready is None])
def test_each_reproduction_runs_at_quick_scale(name, tmp_path):
    sets = []
    if name.startswith("smeared_keys") or name == "classifier":  # WikiText, offline
        if not WIKI_TOK.is_dir():
            pytest.skip("the shared WikiText copy is absent")
        sets = [f"{'pretrain:' if name == 'classifier' else ''}data.path={WIKI_TOK}"]
    path = run_reproduction(name, tmp_path / name, "quick", jobs=1, echo=lambda *_: None, sets=sets)
    text = path.read_text()
    assert text.startswith(f"# Reproduction: {name}") and "## Settings" in text
    assert "## Verdicts" in text and "**The rule.**" in text
    for part in REPRODUCTIONS[name].parts:
        assert (tmp_path / name / part / "report.md").is_file()
    assert path.with_suffix(".html").is_file()
    assert (tmp_path / name / "verdicts.json").is_file()
    # every figure lives in the reproduction's own figures/ (runs' plots/ are not committed)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(link.startswith("figures/") for link in links), links
    assert all((tmp_path / name / link).is_file() for link in links)
