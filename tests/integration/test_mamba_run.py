"""Mamba end to end: Pig Latin as a prefix LM (train, probes, report), the repeat task's
probes, the discretisation sweep's table, and `attnlab bench scan`."""

from __future__ import annotations

import json

from attnlab.config import validate
from attnlab.runs import train
from tests.helpers import pig_raw, run_cli


def _mamba_pig(tmp_path, **mixer) -> dict:
    raw = pig_raw(tmp_path, arch="decoder")
    raw["model"] = {
        "d_model": 16,
        "n_layers": 2,
        "pos": "none",
        "norm": "rmsnorm",
        "mixer": {"name": "mamba", "d_state": 4, **mixer},
    }
    return raw


def test_mamba_piglatin_probe_and_report(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    summary = train(validate(_mamba_pig(tmp_path)), run)
    assert 0 <= summary["test_word_accuracy"] <= 1
    code, _, err = run_cli(["probe", str(run)], monkeypatch, capsys)
    assert code == 0, err
    probes = json.loads((run / "probes.json").read_text())
    first = probes["attention"][0]
    assert first["explorer"] == {} and "ssm" in first  # no attention: the Δ / decay only
    ssm = first["ssm"]
    assert [lay["name"] for lay in ssm["layers"]] == ["blocks.0.mamba", "blocks.1.mamba"]
    for lay in ssm["layers"]:
        n = len(ssm["labels"])
        assert len(lay["dt_mean"]) == len(lay["weight"]) == n
        assert min(lay["dt_mean"]) > 0  # softplus
        assert lay["weight"][-1] == 1.0  # the last position keeps all of itself
        assert all(
            a <= b + 1e-12 for a, b in zip(lay["weight"][:-1], lay["weight"][1:], strict=True)
        )
    assert (run / "plots" / f"ssm_0_{first['word']}.png").is_file()  # drawn by the report
    assert probes["alignment"]["layers"] == []
    report = (run / "report.md").read_text()
    assert "Mamba Δ and decay" in report


def test_mamba_repeat_task_probes(tmp_path, monkeypatch, capsys):
    raw = {
        "name": "m",
        "data": {"task": "repeat_tokens", "vocab_size": 16, "seq_len": 24, "segment_len": 8},
        "model": {"d_model": 16, "n_layers": 1, "pos": "none", "mixer": {"name": "mamba"}},
        "train": {"max_steps": 3, "eval_every": 3, "progress": False},
    }
    raw["data"].update(num_train=64, num_val=16, num_test=16, batch_size=8)
    run = tmp_path / "run"
    train(validate(raw), run)
    code, _, err = run_cli(["probe", str(run)], monkeypatch, capsys)
    assert code == 0, err
    probes = json.loads((run / "probes.json").read_text())
    assert "ssm_repeat" in probes["grids"] and probes["heads"]["layers"] == [0]
    assert 0 <= probes["heads"]["repeat_accuracy"] <= 1
    # the hidden attention in the explorer: the 8 channels of highest induction score
    explorer = json.loads((run / "attention.json").read_text())
    layer = explorer["examples"][probes["grids"]["repeat"]["explorer"]]["layers"][0]
    row = probes["heads"]["scores"]["induction"][0]
    top = sorted(sorted(range(len(row)), key=lambda c: -row[c])[:8])
    assert layer["name"] == f"blocks.0.mamba (channels {', '.join(map(str, top))})"
    assert layer["heads"] == 8


def test_bench_scan_cli(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench"
    args = ["bench", "scan", "--lengths", "8,33", "--no-compile", "--repeats", "1"]
    code, _, err = run_cli([*args, "--channels", "4", "--out", str(out)], monkeypatch, capsys)
    assert code == 0, err
    res = json.loads((out / "scan_bench.json").read_text())
    assert res["lengths"] == [8, 33]
    for L in ("8", "33"):
        for m in ("sequential", "parallel", "log"):
            cell = res["results"][L][m]
            assert cell["ms"] > 0 and cell["rel_error"] < 1e-5 and cell["grad_rel_error"] < 1e-5
    assert (out / "scan_time.png").is_file() and (out / "scan_precision.png").is_file()
    code, _, err = run_cli(["bench", "scan", "--lengths", "x"], monkeypatch, capsys)
    assert code == 2 and "--lengths" in err
