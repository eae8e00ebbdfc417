"""`train.probe_every`, `attnlab probe`, compare's probe columns and `attnlab study`."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from attnlab.run_dir import read_metrics
from tests.helpers import run_cli, tiny_file, tiny_raw

PNG = b"\x89PNG"


def test_probe_every_records_scores_during_training(tmp_path, monkeypatch, capsys):
    cfg = tiny_file(tmp_path, "p", train__probe_every=4)
    out = tmp_path / "run"
    code, text, _ = run_cli(["train", str(cfg), "--out", str(out)], monkeypatch, capsys)
    assert code == 0, text
    recs = [r for r in read_metrics(out / "metrics.jsonl") if r["split"] == "probe"]
    assert [r["step"] for r in recs] == [0, 4, 8, 12]
    for r in recs:
        assert 0 <= r["max_induction"] <= 1
        assert len(r["induction"]) == 2 and len(r["induction"][0]) == 4
        assert isinstance(r["icl_score"], float)
    assert "Probes during training" in (out / "report.md").read_text()
    assert (out / "plots" / "induction_by_step.png").read_bytes()[:4] == PNG


def test_probe_command_on_a_conv_run_and_compare(tmp_path, monkeypatch, capsys):
    conv = tiny_file(tmp_path, "conv", model__mixer={"n_heads": 4, "conv_kernel": 3})
    plain = tiny_file(tmp_path, "plain")
    for cfg, name in ((conv, "rc"), (plain, "rp")):
        code, text, _ = run_cli(
            ["train", str(cfg), "--out", str(tmp_path / name)], monkeypatch, capsys
        )
        assert code == 0, text
    run = tmp_path / "rc"
    code, text, _ = run_cli(["probe", str(run)], monkeypatch, capsys)
    assert code == 0, text
    assert "max induction score" in text and "kernel peaks" in text
    p = json.loads((run / "probes.json").read_text())
    assert set(p["heads"]["scores"]) == {
        "previous_token",
        "duplicate_token",
        "induction",
        "copying",
        "ov_copying",
    }
    assert p["conv"]["blocks.0.attn.conv"]["offsets"] == [-2, -1, 0]
    assert "score" in p["icl"]
    for png in (
        "attention_repeat.png",
        "head_scores.png",
        "kernel_profile.png",
        "embeddings_pca.png",
        "position_cosine.png",
        "loss_by_position.png",
    ):
        assert (run / "plots" / png).read_bytes()[:4] == PNG, png
    report = (run / "report.md").read_text()
    assert "## Probes" in report and "Convolution kernels" in report
    code, text, _ = run_cli(
        ["compare", str(run), str(tmp_path / "rp"), "--out", str(tmp_path / "cmp")],
        monkeypatch,
        capsys,
    )
    assert code == 0
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("|")}
    assert f"{p['heads']['max_induction']['score']:.4g}" in rows["conv"]
    assert rows["plain"].rstrip().endswith("| – | – |")  # not probed


def test_probe_ablation_table(tmp_path, monkeypatch, capsys):
    cfg = tiny_file(tmp_path, "p", train__max_steps=16)
    out = tmp_path / "run"
    assert run_cli(["train", str(cfg), "--out", str(out)], monkeypatch, capsys)[0] == 0
    code, text, _ = run_cli(["probe", str(out), "--ablation"], monkeypatch, capsys)
    assert code == 0, text
    p = json.loads((out / "probes.json").read_text())
    a = p["ablation"]
    assert a["how"] == "mean" and len(a["heads"]) == 2 * 4
    assert a["baseline"]["repeat_accuracy"] == pytest.approx(p["heads"]["repeat_accuracy"])
    assert any(r["repeat_loss"] != a["baseline"]["repeat_loss"] for r in a["heads"])
    report = (out / "report.md").read_text()
    assert "### Head ablation (mean ablation)" in report
    assert "### Composition scores (from the weights)" in report  # 2 attention layers
    assert "### Direct logit attribution and the logit lens" in report
    assert p["attribution"]["check"] < 1e-3 and len(p["attribution"]["lens"]) == 3
    comp = p["composition"]
    assert comp["layers"] == [0, 1] and len(comp["scores"]["K"]) == 2
    assert not torch.tensor(comp["scores"]["K"][1]).any()  # layer 1 has no later reader
    assert a["reference"] == "another probe set"
    pt = a["patching"]
    assert len(pt["recovered"]) == 2 and len(pt["recovered"][0]) == 4
    args = ["probe", str(out), "--ablation", "--set", "probes.ablation_how=resample"]
    assert run_cli(args, monkeypatch, capsys)[0] == 0
    r = json.loads((out / "probes.json").read_text())["ablation"]
    assert r["how"] == "resample" and r["heads"] != a["heads"]  # other values, other effects
    assert "(resample ablation)" in (out / "report.md").read_text()
    assert pt["clean"] > pt["corrupted"]  # the repeat is easier when it repeats something
    assert (out / "plots" / "patching_heads.png").read_bytes()[:4] == PNG
    code, text, _ = run_cli(["probe", str(out)], monkeypatch, capsys)  # off unless asked
    assert code == 0 and "ablation" not in json.loads((out / "probes.json").read_text())
    code, _, err = run_cli(["probe", str(out), "--set", "model.d_model=8"], monkeypatch, capsys)
    assert code == 2 and "only probes.* settings" in err
    args = ["probe", str(out), "--set", "probes.num_sequences=4"]
    assert run_cli(args, monkeypatch, capsys)[0] == 0
    assert json.loads((out / "probes.json").read_text())["probe_set"]["sequences"] == 4


def test_probe_errors(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["probe", str(tmp_path)], monkeypatch, capsys)
    assert code == 2 and "not a trained run directory" in err


def test_unknown_study(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["study", "nope", "--out", str(tmp_path / "s")], monkeypatch, capsys)
    assert code == 2 and "unknown study" in err


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_length_generalisation_probe(tmp_path, monkeypatch, capsys, pos):
    raw = tiny_raw(model__pos=pos, train__max_steps=6)
    raw["data"] = {
        "task": "induction_heads",
        "vocab_size": 8,
        "seq_len": 16,
        "num_train": 64,
        "num_val": 16,
        "num_test": 16,
        "batch_size": 8,
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert run_cli(["train", str(cfg), "--out", str(out)], monkeypatch, capsys)[0] == 0
    code, _, err = run_cli(["probe", str(out), "--lengths", "16,64"], monkeypatch, capsys)
    assert code == 0, err
    lg = json.loads((out / "probes.json").read_text())["lengths"]
    assert lg["trained_length"] == 16 and [r["length"] for r in lg["rows"]] == [16, 64]
    assert 0 <= lg["rows"][0]["accuracy"] <= 1 and lg["rows"][0]["targets"] == 256
    if pos == "learned":
        assert lg["rows"][1]["skipped"] == "learned positions stop at 16"
    else:  # rotary angles exist at every position: the same weights run at 64
        assert 0 <= lg["rows"][1]["accuracy"] <= 1
    assert "### Length generalisation (trained at 16 tokens)" in (out / "report.md").read_text()
    code, _, err = run_cli(["probe", str(out), "--lengths", "1x"], monkeypatch, capsys)
    assert code == 2 and "comma-separated" in err


def test_padded_rows_probe_the_rows_own_tokens(tmp_path):
    """With padding scored (`data.score_pad`), the frequency buckets still rank the text's
    own tokens and count only its own targets: padding is neither ranked nor counted (it
    took the head bucket alone, and the k = 3 rows runs' buckets differed by the flag)."""
    import numpy as np

    from attnlab import data
    from attnlab.config import validate
    from attnlab.probes.frequency import frequency_buckets
    from attnlab.runs import probe, train

    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n\nab\nthe end of it all\n" * 60)
    raw = {
        "name": "rows",
        "data": {"task": "lm_text", "path": str(text), "tokenizer": "char", "seq_len": 24,
                 "layout": "rows", "score_pad": True, "batch_size": 8},
        "model": {"d_model": 16, "n_layers": 1, "mixer": {"n_heads": 2}},
        "train": {"max_steps": 2, "eval_every": 2, "progress": False},
    }  # fmt: skip
    cfg = validate(raw, "t")
    train(cfg, tmp_path / "run")
    freq = probe(tmp_path / "run")["loss_by_frequency"]
    ds = data.build(cfg.data)
    tr, val = ds.splits["train"], ds.splits["validation"]
    bucket = frequency_buckets(tr.targets[tr.real], ds.vocab_size)
    want = np.bincount(bucket[val.targets[val.real]], minlength=5)
    assert [b["targets"] for b in freq.values()] == want.tolist()
    assert sum(want) == int(val.real.sum()) < val.targets.size  # there is padding to leave out
