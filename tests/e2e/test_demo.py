"""Acceptance: the demo, offline, reproduces the induction effect (slow)."""

from __future__ import annotations

import pytest

from attnlab.experiments.demo import run_demo
from attnlab.run_dir import RunDir


@pytest.mark.slow
def test_demo_conv_attn_copies_and_one_layer_does_not(tmp_path):
    report = run_demo(tmp_path / "demo", echo=lambda *_: None)
    text = report.read_text()
    assert "| conv_attn |" in text and "| attn_attn |" in text
    runs = {
        name: RunDir(tmp_path / "demo" / "repeat_tokens" / "trials" / f"{name}-s42")
        for name in ("attn_only_1layer", "attn_attn", "conv_attn")
    }
    acc = {name: rd.read_summary()["final_val_accuracy"] for name, rd in runs.items()}
    assert acc["attn_only_1layer"] < 0.3
    assert acc["conv_attn"] > 0.8
    assert acc["attn_attn"] > acc["attn_only_1layer"] + 0.3
    induction = {
        name: rd.read_probes()["heads"]["max_induction"]["score"] for name, rd in runs.items()
    }
    assert induction["attn_attn"] > induction["attn_only_1layer"] + 0.2
    assert "max induction" in text
    for png in ("val_loss.png", "val_accuracy.png"):
        assert (tmp_path / "demo" / "repeat_tokens" / "plots" / png).is_file()
