"""The slow tier of tests/integration/test_probe_cli.py: end-to-end runs of minutes or
several processes, or tests of more than a few seconds."""

from __future__ import annotations

import json

import pytest
import yaml

from attnlab.experiments.study import run_study
from attnlab.experiments.sweep import run_sweep
from attnlab.experiments.sweep_results import load_trials
from attnlab.run_dir import RunDir
from tests.helpers import grid_spec, run_cli, tiny_raw
from tests.integration.test_probe_cli import PNG


def test_probe_on_a_char_text_run(tmp_path, text_dir, monkeypatch, capsys):
    raw = {
        "name": "chars",
        "data": {
            "task": "lm_text",
            "path": str(text_dir),
            "tokenizer": "char",
            "seq_len": 32,
            "batch_size": 8,
        },
        "model": {"d_model": 32, "n_layers": 1, "mixer": {"n_heads": 2}},
        "train": {"max_steps": 6, "eval_every": 3, "progress": False},
    }
    cfg = tmp_path / "chars.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert run_cli(["train", str(cfg), "--out", str(run)], monkeypatch, capsys)[0] == 0
    code, text, _ = run_cli(["probe", str(run)], monkeypatch, capsys)
    assert code == 0, text
    p = json.loads((run / "probes.json").read_text())
    assert (run / "plots" / "attention_text.png").read_bytes()[:4] == PNG
    assert len(p["grids"]["text"]["labels"]) == 32
    assert "a" in p["embeddings"]["neighbours"] or "e" in p["embeddings"]["neighbours"]
    freq = p["loss_by_frequency"]
    assert list(freq) == ["head", "body", "long tail", "tail", "unseen"]
    assert sum(b["targets"] for b in freq.values()) > 0
    assert (run / "plots" / "loss_by_frequency.png").is_file()
    code, _, err = run_cli(["probe", str(run), "--lengths", "64"], monkeypatch, capsys)
    assert code == 2 and "synthetic tasks" in err
    # the probe set from the text's most frequent characters
    args = ["probe", str(run), "--set", "probes.tokens=frequent", "--set", "probes.pool=8"]
    assert run_cli(args, monkeypatch, capsys)[0] == 0


def test_study_is_a_sweep_with_a_head_probe_table(tmp_path):
    spec = grid_spec(
        tmp_path,
        {
            f"l{n}": tiny_raw(model__n_layers=n, train__max_steps=8, train__probe_every=4)
            for n in (1, 2)
        },
        seeds=2,
        quick=["l2"],
    )
    out = run_sweep(spec, tmp_path / "sw", echo=lambda *_: None)
    text = (out / "report.md").read_text()
    assert "| l1 | 2 |" in text and "| l2 | 2 |" in text and "## Head probes" in text
    assert (out / "plots" / "induction_by_step.png").read_bytes()[:4] == PNG
    quick = run_sweep(spec, tmp_path / "q", echo=lambda *_: None, quick=True)
    _, trials = load_trials(quick)
    assert {t["label"] for t in trials} == {"l2"}


@pytest.mark.slow
def test_induction_study_quick_shows_the_two_layer_gap(tmp_path):
    """2 seeds of the 1- and 2-layer attention-only models (about 2 minutes on 2 cores)."""
    path = run_study("induction", tmp_path / "study", seeds=2, quick=True, echo=print)
    _, trials = load_trials(path.parent)
    figures = {}
    for t in trials:
        run = RunDir(path.parent / t["run_dirs"][0])
        heads = run.read_probes()["heads"]
        figures.setdefault(t["label"], []).append(
            (heads["max_induction"]["score"], run.read_summary()["final_val_accuracy"])
        )
    one, two = figures["attn_1layer"], figures["attn_2layer"]
    assert min(s for s, _ in two) > 0.3 > 0.1 > max(s for s, _ in one)
    assert min(a for _, a in two) > 0.7 and max(a for _, a in one) < 0.3
    # ablating the 2-layer model's induction heads (or its layer-0 previous-token heads)
    # drops its repeat accuracy toward the 1-layer model's
    for t in trials:
        if t["label"] == "attn_2layer":
            a = RunDir(path.parent / t["run_dirs"][0]).read_probes()["ablation"]
            base = a["baseline"]["repeat_accuracy"]
            by = {g["what"]: g["repeat_accuracy"] for g in a["groups"]}
            induction = [
                v for w, v in by.items() if "induction heads" in w or "induction head" in w
            ]
            assert induction and induction[0] < base - 0.3  # every induction head (or the layer)
            assert by["layer 0's previous-token heads"] < base - 0.3
            assert max(max(r) for r in a["patching"]["recovered"]) > 0.3
            # the path: into layer 1's keys alone it breaks the repeat; into its values not
            c = a["circuit"]["ablation"]["mean_pos"]
            assert c["k"]["repeat_accuracy"] < base - 0.3 < c["v"]["repeat_accuracy"]
    assert "### Head ablation (mean ablation" in path.parent.joinpath("report.md").read_text()
