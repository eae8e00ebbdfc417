"""`attnlab report DIR` redraws every figure of a run, a comparison and a sweep from the
directory's files alone: delete the figures, rebuild, the same set comes back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from attnlab.config.load import validate
from attnlab.runs import probe, report, train
from tests.helpers import pig_raw, run_cli, tiny_raw


def _pngs(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*.png")}


def _rebuild(d: Path, figures: Path, monkeypatch, capsys) -> tuple[set[str], set[str]]:
    """(figures before, figures after deleting them and running `attnlab report d`)."""
    before = _pngs(figures)
    for p in figures.rglob("*.png"):
        p.unlink()
    code, _, err = run_cli(["report", str(d)], monkeypatch, capsys)
    assert code == 0, err
    return before, _pngs(figures)


TOKEN_FIGURES = {
    "loss.png",
    "accuracy.png",
    "head_scores.png",
    "loss_by_position.png",
    "kernel_profile.png",
    "attention_repeat.png",
    "embeddings_pca.png",
    "position_cosine.png",
    "induction_by_step.png",
    "icl_by_step.png",
}
TRANSLATION_FIGURES = {
    "errors_by_length.png",
    "word_accuracy.png",
    "embeddings_pca.png",
    "attention_0_brown_cross.png",
    "position_cosine_encoder.png",
}


@pytest.mark.parametrize("kind", ["token", "translation"])
def test_a_probed_run(kind, tmp_path, monkeypatch, capsys):
    if kind == "token":
        raw, want = tiny_raw(train__probe_every=4), TOKEN_FIGURES
        raw["model"]["mixer"]["conv_kernel"] = 3
    else:
        raw, want = pig_raw(tmp_path), TRANSLATION_FIGURES
    run = tmp_path / "run"
    train(validate(raw), run)
    probe(run)
    report(run)
    before, after = _rebuild(run, run / "plots", monkeypatch, capsys)
    assert before == after and want <= before


def test_a_comparison(tmp_path, monkeypatch, capsys):
    runs = []
    for n in (1, 2):
        runs.append(tmp_path / f"r{n}")
        train(validate(tiny_raw(model__n_layers=n)), runs[-1])
    cmp = tmp_path / "cmp"
    code, _, err = run_cli(["compare", *map(str, runs), "--out", str(cmp)], monkeypatch, capsys)
    assert code == 0, err
    before, after = _rebuild(cmp, cmp, monkeypatch, capsys)
    assert before == after and {"val_loss.png", "val_accuracy.png"} <= before


def test_a_sweep(tmp_path, monkeypatch, capsys):
    raw = tiny_raw()
    sets = [f"data.{k}={v}" for k, v in raw["data"].items() if k != "task"]
    sets += ["model.d_model=16", "model.n_layers=1", "train.max_steps=4", "train.eval_every=2"]
    spec = {
        "name": "t",
        "base": "synthetic/repeat_tokens",
        "set": sets,
        "probe": False,
        "grid": {"model.n_layers": [1, 2]},
        "seeds": 2,
    }
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    out = tmp_path / "sw"
    code, _, err = run_cli(["sweep", str(spec_path), "--out", str(out)], monkeypatch, capsys)
    assert code == 0, err
    before, after = _rebuild(out, out / "plots", monkeypatch, capsys)
    assert before == after and {"metric_by_configuration.png", "val_loss.png"} <= before
