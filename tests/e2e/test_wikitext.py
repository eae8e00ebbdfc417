"""Integration on the real WikiText-2 copy in ../shared (skipped when it is absent)."""

from __future__ import annotations

import pytest

from attnlab.cli import config_path
from attnlab.config import load_config
from attnlab.runs import train
from tests.helpers import GPT2_DIR, WIKI_TOK, needs_gpt2, needs_wiki

OFFLINE = [f"data.path={WIKI_TOK}", f"data.tokenizer_path={GPT2_DIR}", "train.progress=false"]


@needs_wiki
@needs_gpt2
def test_quick_config_trains_on_wikitext_with_plausible_numbers(tmp_path):
    """A few steps of the quick Conv-Attn on real text: finite, better than uniform, < 0.5."""
    cfg = load_config(
        config_path("smeared_keys/conv_attn_quick.yaml"),
        [
            *OFFLINE,
            "train.max_steps=12",
            "train.eval_every=6",
            "train.eval_batches=2",
            "train.final_eval_batches=4",
            "model.d_model=64",
        ],
    )
    s = train(cfg, tmp_path / "run")
    assert s["data"]["vocab_size"] == 50257
    assert s["data"]["train_scored_targets"] > 2_000_000  # the whole train split
    assert s["final_val_loss"] < 10.8  # ln(50257) = 10.82: better than uniform
    assert 0.0 < s["final_val_accuracy"] < 0.5


@pytest.mark.slow
@needs_wiki
@needs_gpt2
@pytest.mark.parametrize("name", ["attn_attn_quick", "conv_attn_quick"])
def test_full_quick_configs_on_wikitext(name, tmp_path):
    """Acceptance: the quick configs as shipped (150 steps), plausible figures."""
    cfg = load_config(config_path(f"smeared_keys/{name}.yaml"), OFFLINE)
    s = train(cfg, tmp_path / name)
    assert s["final_val_loss"] < 7.0  # perplexity < 1100 after 150 steps
    assert 0.1 < s["final_val_accuracy"] < 0.5
