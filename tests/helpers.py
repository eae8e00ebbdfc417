"""Helpers the test modules share: tiny configs, the CLI runner, metric curves and the
optional shared data (tests import these; no test module imports another)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from attnlab.cli import main
from attnlab.run_dir import read_metrics

ROOT = Path(__file__).resolve().parents[1]  # the repository
SHARED_DATA = Path(
    os.environ.get("ATTNLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
GPT2_DIR = SHARED_DATA / "gpt2-tokenizer"
WIKI_RAW = SHARED_DATA / "wikitext-2-raw-v1"
WIKI_TOK = SHARED_DATA / "wikitext-2-v1-tokenized"

needs_gpt2 = pytest.mark.skipif(not GPT2_DIR.is_dir(), reason="shared GPT-2 tokenizer absent")
needs_wiki = pytest.mark.skipif(not WIKI_TOK.is_dir(), reason="shared WikiText copy absent")


def tracked() -> set[str]:
    """The repository's committed (or staged) files, as paths relative to its root (the
    test skips outside a git checkout)."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return {p for p in out.split("\0") if p}


def tiny_raw(**over) -> dict:
    """A raw config of a 2-layer model on a small repeat_tokens task (trains in seconds)."""
    raw = {
        "name": "tiny",
        "data": {
            "task": "repeat_tokens",
            "vocab_size": 16,
            "seq_len": 24,
            "segment_len": 8,
            "min_segment_len": 3,
            "batch_size": 8,
            "num_train": 256,
            "num_val": 32,
            "num_test": 32,
        },
        "model": {"d_model": 32, "n_layers": 2, "mixer": {"n_heads": 4}},
        "train": {
            "max_steps": 12,
            "lr": 3e-3,
            "warmup_steps": 2,
            "eval_every": 4,
            "log_every": 2,
            "progress": False,
            "eval_batches": 2,
        },
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        raw.setdefault(section, {})[field] = value
    return raw


def run_cli(args, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run `attnlab ARGS` in this process: (exit status, stdout, stderr)."""
    monkeypatch.setattr("sys.argv", ["attnlab", *args])
    monkeypatch.setenv("ATTNLAB_CLI", "0")  # main() marks the process; undone after the test
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def tiny_file(tmp_path, name="tiny", **over):
    """`tiny_raw` written as a YAML file under tmp_path."""
    raw = tiny_raw(**over)
    raw["name"] = name
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def grid_spec(tmp_path, configs: dict[str, dict], **fields) -> Path:
    """A sweep spec over raw configs (name → raw config, each written as NAME.yaml)."""
    paths = []
    for name, raw in configs.items():
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump({**raw, "name": name}))
    spec = {"name": "t", "grid": {"config": [str(p) for p in paths]}, **fields}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


DROP = ("tokens_per_s", "data_share")


def curve(run_dir) -> list[dict]:
    """metrics.jsonl without the timing fields (which legitimately differ between runs)."""
    return [
        {k: v for k, v in r.items() if k not in DROP}
        for r in read_metrics(run_dir / "metrics.jsonl")
    ]


TEXT = (
    "The quick brown fox jumps over the lazy dog; it is conditioning, not strengthening. "
    "Pleasure-grounds and good-humoured thoughtfulness don't cost much across the river. "
) + " ".join(f"w{c}ord{d}" for c in "abcdefghij" for d in "klmnoprstu")


def pig_raw(tmp_path, arch="seq2seq", **data_over) -> dict:
    """A raw Pig Latin config on the words of a small local text."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT.replace("0", ""), encoding="utf-8")
    model = {"arch": arch, "d_model": 16, "n_layers": 1, "mixer": {"n_heads": 2}, "mlp": True}
    if arch == "decoder":
        model.pop("arch")
    return {
        "name": "pig",
        "data": {
            "task": "piglatin",
            "path": str(corpus),
            "num_val": 6,
            "num_test": 6,
            "batch_size": 8,
            **data_over,
        },
        "model": model,
        "train": {"max_steps": 4, "eval_every": 2, "progress": False, "lr": 3e-3},
    }
