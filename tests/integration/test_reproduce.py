"""`attnlab reproduce`: the list, the parts, the overrides (each runnable study at
--scale quick: tests/e2e/test_reproduce.py)."""

from __future__ import annotations

import pytest

from attnlab.errors import UserError
from attnlab.experiments.reproduce import REPRODUCTIONS, part_overrides
from tests.helpers import run_cli


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
