"""The slow tier of tests/integration/test_translation_run.py: end-to-end runs of minutes or
several processes, or tests of more than a few seconds."""

from __future__ import annotations

import pytest

from attnlab.runs import train


@pytest.mark.slow
def test_quick_base_model_learns_pig_latin(tmp_path):
    """Acceptance: the packaged quick base model, held-out words, >= 0.90 word accuracy."""
    from attnlab.cli import config_path
    from attnlab.config import load_config

    cfg = load_config(config_path("piglatin/base_quick"), ["train.progress=false"])
    summary = train(cfg, tmp_path / "run")
    assert summary["test_word_accuracy"] >= 0.90
    assert summary["translation"]["test"]["words"] == 2000
