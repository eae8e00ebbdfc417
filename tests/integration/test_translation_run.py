"""Pig Latin end to end: train (seq2seq and prefix LM), scores, probes, report, CLI."""

from __future__ import annotations

import json

import pytest

from attnlab.config import validate
from attnlab.experiments.sweep import run_sweep
from attnlab.runs import train
from tests.helpers import grid_spec, pig_raw, run_cli


@pytest.mark.parametrize("arch", ["seq2seq", "decoder"])
def test_train_probe_report_translate(tmp_path, arch, monkeypatch, capsys):
    cfg = validate(pig_raw(tmp_path, arch=arch))
    run = tmp_path / "run"
    summary = train(cfg, run)
    t = summary["translation"]
    for split in ("train", "validation", "test"):
        assert 0.0 <= t[split]["word_accuracy"] <= 1.0
        assert t[split]["loss_per_char"] > 0
    assert t["validation"]["words"] == t["test"]["words"] == 6
    assert summary["test_word_accuracy"] == t["test"]["word_accuracy"]
    d = summary["data"]
    width = d["tgt_len"] if arch == "seq2seq" else d["src_len"] + d["tgt_len"] + 1
    full = summary["steps"] * cfg.data.batch_size * width
    assert 0 < summary["train_tokens"] < full  # batches cut to their longest word
    details = json.loads((run / "translations.json").read_text())
    n = sum(v["words"] for v in details["test"]["errors_by_length"].values())
    assert n == 6
    errors = sum(v["errors"] for v in details["test"]["errors_by_length"].values())
    assert errors == round(6 * (1 - t["test"]["word_accuracy"]))
    assert len(details["test"]["mistakes"]) == errors  # all kept (fewer than 50)
    # the mistakes by first letter and the repeated last characters reach the file (they
    # were computed, then left out of it)
    by_start = details["test"]["errors_by_start"]
    assert sum(v["words"] for v in by_start.values()) == 6 and set(by_start) <= {
        "vowel", "consonant",
    }  # fmt: skip
    assert sum(v["errors"] for v in by_start.values()) == errors
    assert 0 <= details["test"]["mistakes_repeating_last"] <= errors
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("word_accuracy" in r for r in records if r["split"] == "validation")

    code, text, err = run_cli(["probe", str(run)], monkeypatch, capsys)
    assert code == 0, err
    assert "brown →" in text
    probes = json.loads((run / "probes.json").read_text())
    assert probes["kind"] == "translation"
    kinds = {"seq2seq": {"encoder", "decoder", "cross"}, "decoder": {"self"}}[arch]
    assert set(probes["attention"][0]["explorer"]) == kinds
    for i, w in enumerate(probes["attention"]):  # drawn by the report `probe` rewrote
        for kind in w["explorer"]:
            assert (run / "plots" / f"attention_{i}_{w['word']}_{kind}.png").is_file()
    a = probes["alignment"]
    assert len(a["scores"]) == 1 and all(0 <= s <= 1 for s in a["scores"][0])
    specials = probes["embeddings"]["special_cosines"]
    assert {"[SOS]", "[EOS]", "letters (mean)"} <= set(specials)
    assert -1 <= specials["[SOS]"]["[EOS]"] <= 1
    enc = probes["encoder_heads"]
    if arch == "seq2seq":
        (layer,) = enc["layers"].values()
        assert all(0 <= v <= 1 for v in layer["identity"] + layer["previous"])
    else:
        assert enc is None
    assert (run / "plots" / "embeddings_pca.png").is_file()
    assert set(probes["positions"]) == (
        {"encoder", "decoder"} if arch == "seq2seq" else {"decoder"}
    )
    report = (run / "report.md").read_text()
    assert "## Translation" in report and "errors_by_length.png" in report
    assert "Test word accuracy by first letter: " in report
    assert "Test mistakes that repeat the word's last character" in report
    assert "Alignment" in report and (run / "plots" / "errors_by_length.png").is_file()

    code, text, err = run_cli(
        ["translate", str(run), "brown", "is", "--beam", "3"], monkeypatch, capsys
    )
    assert code == 0, err
    assert text.count("→") == 2


def test_translate_errors(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["translate", str(tmp_path), "brown"], monkeypatch, capsys)
    assert code == 2 and "not a trained run directory" in err
    train(validate(pig_raw(tmp_path)), tmp_path / "run")
    code, _, err = run_cli(["translate", str(tmp_path / "run"), "br0wn"], monkeypatch, capsys)
    assert code == 2 and "not in the vocabulary" in err
    code, _, err = run_cli(["translate", str(tmp_path / "run"), "a" * 40], monkeypatch, capsys)
    assert code == 2 and "longer than" in err


def test_same_seed_same_word_accuracy(tmp_path):
    a = train(validate(pig_raw(tmp_path)), tmp_path / "a")
    b = train(validate(pig_raw(tmp_path)), tmp_path / "b")
    assert a["translation"] == b["translation"]


def test_translation_sweep_table(tmp_path):
    """The ablation's table (what `attnlab study piglatin` writes): word accuracies and the
    best alignment per configuration."""
    base = pig_raw(tmp_path)
    none = pig_raw(tmp_path)
    none["model"]["pos"] = "none"
    spec = grid_spec(tmp_path, {"base": base, "pos_none": none}, metric="final_val_word_accuracy")
    text = (run_sweep(spec, tmp_path / "sw", echo=lambda *_: None) / "report.md").read_text()
    assert "| base | 1 |" in text and "| pos_none | 1 |" in text
    assert "best alignment" in text and "val word acc" in text


def test_a_run_resumed_without_its_tokenizer_writes_it_again(tmp_path):
    """A study's committed checkpoint keeps no tokenizer.json: the resumed run writes it
    again, and a finished run without one is loaded with the tokenizer its data rebuilds
    (before, its probes failed after training: 'NoneType' has no attribute 'encode')."""
    from attnlab.data.tokenizers import load_tokenizer
    from attnlab.probes.run import load_trained
    from attnlab.runs import resume

    run = tmp_path / "run"
    assert train(validate(pig_raw(tmp_path)), run, stop_after=2) is None
    saved = (run / "tokenizer.json").read_text()
    (run / "tokenizer.json").unlink()
    resume(run)
    assert (run / "tokenizer.json").read_text() == saved
    (run / "tokenizer.json").rename(tmp_path / "kept.json")
    _, _, rebuilt = load_trained(run)
    assert rebuilt.fingerprint == load_tokenizer(tmp_path / "kept.json").fingerprint
