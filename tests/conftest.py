"""Shared fixtures: an isolated token cache, tiny configs, and the optional shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attnlab.config import validate

SHARED_DATA = Path(
    os.environ.get("ATTNLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
GPT2_DIR = SHARED_DATA / "gpt2-tokenizer"
WIKI_RAW = SHARED_DATA / "wikitext-2-raw-v1"
WIKI_TOK = SHARED_DATA / "wikitext-2-v1-tokenized"

needs_gpt2 = pytest.mark.skipif(not GPT2_DIR.is_dir(), reason="shared GPT-2 tokenizer absent")
needs_wiki = pytest.mark.skipif(not WIKI_TOK.is_dir(), reason="shared WikiText copy absent")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own token cache, so no test sees another's files."""
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path_factory.mktemp("cache")))


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
        raw[section][field] = value
    return raw


@pytest.fixture
def tiny_cfg():
    """Build a tiny validated config; keyword `section__field=value` overrides."""
    return lambda **over: validate(tiny_raw(**over), "tiny")


@pytest.fixture
def text_dir(tmp_path) -> Path:
    """A local corpus laid out like WikiText (train / valid / test files)."""
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "the",
        "mat",
        "and",
        "the",
        "dog",
        "ran",
        "to",
        "the",
        "park",
        "while",
        "birds",
        "sang",
    ]
    files = (("wiki.train.raw", 4000, 7), ("wiki.valid.raw", 600, 5), ("wiki.test.raw", 600, 3))
    for name, n, stride in files:
        text = " ".join(words[(i * stride) % len(words)] for i in range(n)) + "\n"
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path
