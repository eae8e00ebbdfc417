"""`attnlab reproduce`: the list, the parts, and each runnable study at --scale quick."""

from __future__ import annotations

import re

import pytest

from attnlab.errors import UserError
from attnlab.experiments.reproduce import REPRODUCTIONS, part_overrides, run_reproduction
from tests.helpers import WIKI_TOK, run_cli


def test_list_names_every_write_up(monkeypatch, capsys):
    code, text, err = run_cli(["reproduce", "--list"], monkeypatch, capsys)
    assert code == 0, err
    for name in ("smeared_keys", "smeared_keys_k3", "piglatin", "mamba_piglatin", "classifier"):
        assert f"  {name} " in text


def test_unknown_reproduction_and_scale(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["reproduce", "nope", "--out", str(tmp_path)], monkeypatch, capsys)
    assert code == 2 and "unknown reproduction" in err
    code, _, err = run_cli(["reproduce", "piglatin", "--scale", "huge"], monkeypatch, capsys)
    assert code == 2


def test_induction_on_text_is_judged_against_a_uniform_head():
    from attnlab.experiments.reproduce import _induction_on_text

    def run(score, kind="lm_text"):
        heads = {
            "uniform": {"induction": 0.006},
            "max_induction": {"score": score, "layer": 1, "head": 2},
        }
        return {"max_induction": score, "probes": {"kind": kind, "heads": heads}}

    groups = {"main": {"plain": [run(0.03), run(0.25), run(0.3)], "copy": [run(0.9, "synthetic")]}}
    text = _induction_on_text(groups)
    row = next(line for line in text.splitlines() if "| plain |" in line)
    assert "| 0.006 |" in row and "32.2x" in row and "layer 1, head 2" in row and "2 of 3" in row
    assert "| copy |" not in text  # not a text model
    assert _induction_on_text({"main": {"copy": [run(0.9, "synthetic")]}}) == ""


def test_overrides_reach_the_parts_they_name(tmp_path):
    rep = REPRODUCTIONS["classifier"]
    sets = ["train.seed=3", "pretrain:data.path=/x"]
    pre = part_overrides(rep, "pretrain", "quick", tmp_path, sets)
    fine = part_overrides(rep, "finetuned", "quick", tmp_path, sets)
    hand = part_overrides(rep, "handpicked", "quick", tmp_path, sets)
    assert pre[-2:] == ["train.seed=3", "data.path=/x"] and "data.tokenizer=char" in pre
    assert f"model.init_from={tmp_path}/pretrain/trials/pretrain_lm-s1" in fine
    assert "data.path=/x" not in fine and "data.path=/x" not in hand
    assert "data.num_train=400" in hand and "data.num_train=100" in fine
    with pytest.raises(UserError, match="not a part of classifier"):
        part_overrides(rep, "pretrain", "quick", tmp_path, ["lm:data.path=/x"])


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
