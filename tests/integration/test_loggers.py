"""`train.loggers`: TensorBoard, CSV and W&B (offline) beside metrics.jsonl, through
Lightning Fabric's logger interface; read back with each tool's own reader."""

from __future__ import annotations

import csv

import pytest

from attnlab.run_dir import RunDir, read_metrics
from tests.helpers import run_cli, tiny_file


def _train(tmp_path, monkeypatch, capsys, loggers: str):
    cfg = tiny_file(tmp_path, "logged")
    run = tmp_path / "run"
    args = ["train", str(cfg), "--out", str(run), "--set", f"train.loggers={loggers}"]
    code, text, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, text + err
    return RunDir(run)


def test_tensorboard_and_csv_hold_the_logged_scalars(tmp_path, monkeypatch, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rd = _train(tmp_path, monkeypatch, capsys, "[tensorboard,csv]")
    records = read_metrics(rd.metrics)
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "validation" and not r.get("final")]
    assert train and val
    events = EventAccumulator(str(rd.logs / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "validation/loss", "validation/accuracy", "final_test/loss"} <= set(tags)
    got = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert got == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in train]
    got = {e.step: e.value for e in events.Scalars("validation/accuracy")}
    for r in val:
        assert got[r["step"]] == pytest.approx(r["accuracy"], rel=1e-6)
    rows = list(csv.DictReader((rd.logs / "csv" / "metrics.csv").open()))
    logged = [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss")]
    assert logged == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in train]
    # metrics.jsonl stays the source of truth: the report still reads it
    assert "loss" in (rd.path / "report.md").read_text()


def test_wandb_logs_offline_into_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    rd = _train(tmp_path, monkeypatch, capsys, "[wandb]")
    runs = list((rd.logs / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((rd.logs / "wandb").iterdir())
    assert list(runs[0].glob("*.wandb")), "no offline run file"


def test_an_unknown_logger_is_a_config_error(tmp_path, monkeypatch, capsys):
    cfg = tiny_file(tmp_path, "bad")
    args = ["train", str(cfg), "--out", str(tmp_path / "r"), "--set", "train.loggers=[mlflow]"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "train.loggers" in err
