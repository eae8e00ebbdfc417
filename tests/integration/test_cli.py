"""The `attnlab` command end to end on a tiny task: train, report, compare, resume, errors."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import run_cli, tiny_file, tiny_raw


def test_train_report_compare(tmp_path, monkeypatch, capsys):
    a = tiny_file(tmp_path, "attn")
    b = tiny_file(tmp_path, "conv", model__mixer={"n_heads": 4, "conv_kernel": 3})
    for cfg, out in ((a, "ra"), (b, "rb")):
        code, text, _ = run_cli(
            ["train", str(cfg), "--out", str(tmp_path / out), "--set", "train.max_steps=8"],
            monkeypatch,
            capsys,
        )
        assert code == 0, text
        assert "val loss" in text and "report:" in text
    run = tmp_path / "ra"
    assert json.loads((run / "summary.json").read_text())["steps"] == 8
    report = (run / "report.md").read_text()
    assert "final val loss" in report and "plots/loss.png" in report
    assert (run / "plots" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    code, text, _ = run_cli(
        ["compare", str(tmp_path / "ra"), str(tmp_path / "rb"), "--out", str(tmp_path / "cmp")],
        monkeypatch,
        capsys,
    )
    assert code == 0
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| attn |" in table and "| conv |" in table
    for png in ("val_loss.png", "val_accuracy.png"):
        assert (tmp_path / "cmp" / png).read_bytes()[:4] == b"\x89PNG"


def test_stop_and_resume_from_the_command_line(tmp_path, monkeypatch, capsys):
    cfg = tiny_file(tmp_path)
    out = tmp_path / "run"
    code, text, _ = run_cli(
        ["train", str(cfg), "--out", str(out), "--stop-after", "5"], monkeypatch, capsys
    )
    assert code == 0 and "--resume" in text
    code, text, _ = run_cli(["train", "--resume", str(out)], monkeypatch, capsys)
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 12


def lm_file(tmp_path, data_path, name="lm"):
    raw = tiny_raw()
    raw["data"] = {
        "task": "lm_text",
        "path": str(data_path),
        "tokenizer": "char",
        "seq_len": 16,
        "batch_size": 4,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("resume_missing", "cannot resume"),
        ("compare_missing", "not a finished run directory"),
        ("data_missing", "data path not found"),
        ("not_utf8", "byte offset 5"),
        ("no_config", "give a CONFIG"),
    ],
)
def test_user_errors_exit_2(case, needle, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"hello\xe9 world" * 50)
    args = {
        "resume_missing": ["train", "--resume", str(tmp_path / "none")],
        "compare_missing": ["compare", str(tmp_path / "none")],
        "data_missing": [
            "train",
            str(lm_file(tmp_path, tmp_path / "nowhere")),
            "--out",
            str(tmp_path / "o"),
        ],
        "not_utf8": ["train", str(lm_file(tmp_path, bad, "bad")), "--out", str(tmp_path / "o")],
        "no_config": ["train"],
    }[case]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert needle in err and "Traceback" not in err


def test_version_and_configs(monkeypatch, capsys):
    import attnlab

    code, text, _ = run_cli(["--version"], monkeypatch, capsys)
    assert code == 0 and text.strip() == f"attnlab {attnlab.__version__}"
    code, text, _ = run_cli(["configs"], monkeypatch, capsys)
    assert code == 0
    lines = text.splitlines()
    assert lines[0].startswith("configs") and any(ln.startswith("sweeps") for ln in lines)
    entries = [ln.split(None, 1) for ln in lines if ln.startswith("  ")]
    names = {e[0] for e in entries}
    assert {"smeared_keys/conv_attn", "mamba/selective_copying", "selective_copying"} <= names
    assert all(len(e) == 2 and e[1].strip() for e in entries)  # every one described


def test_fixed_choices_are_checked_before_anything_runs(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["probe", str(tmp_path), "--weights", "last"], monkeypatch, capsys)
    assert code == 2 and "'last' is not one of" in err
    code, _, err = run_cli(["train", "x.yaml", "--precision", "fp8"], monkeypatch, capsys)
    assert code == 2 and "fp8" in err


def test_compare_never_overwrites_a_comparison(tmp_path, monkeypatch, capsys):
    cfg = tiny_file(tmp_path)
    run_cli(["train", str(cfg), "--out", str(tmp_path / "r")], monkeypatch, capsys)
    monkeypatch.chdir(tmp_path)
    first = run_cli(["compare", str(tmp_path / "r")], monkeypatch, capsys)
    assert first[0] == 0
    made = sorted((tmp_path / "runs").glob("compare-*"))
    assert len(made) == 1 and (made[0] / "compare.json").is_file()
    before = (made[0] / "compare.md").read_text()
    code, _, err = run_cli(
        ["compare", str(tmp_path / "r"), "--out", str(made[0])], monkeypatch, capsys
    )
    assert code == 2 and "already holds a comparison" in err
    assert (made[0] / "compare.md").read_text() == before


def test_library_training_leaves_the_allocator_alone(tiny_cfg, tmp_path, monkeypatch):
    """Only the `attnlab` command (or `train.keep_freed_memory: true`) changes glibc's
    allocator for the whole process."""
    from attnlab.runs import train
    from attnlab.train import memory

    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.delenv(memory.CLI_ENV, raising=False)
    train(tiny_cfg(train__max_steps=2), tmp_path / "lib")
    assert calls == []
    train(tiny_cfg(train__max_steps=2, train__keep_freed_memory=True), tmp_path / "asked")
    assert calls == [1]
    monkeypatch.setenv(memory.CLI_ENV, "1")
    assert memory.wanted(None) and not memory.wanted(False)
