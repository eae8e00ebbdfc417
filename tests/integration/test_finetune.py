"""`model.init_from`: a classifier fine-tuned from a language model attnlab trained — the
stack's weights and tokenizer carry over, padding changes nothing, bad sources fail."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from attnlab import data
from attnlab.config import validate
from attnlab.data.classification import ClassificationSplit
from attnlab.errors import ConfigError, UserError
from attnlab.models import LMClassifier
from attnlab.models import build as build_model
from attnlab.probes.run import load_trained
from attnlab.runs import train
from attnlab.tasks import task_for
from attnlab.train.checkpoint import init_from_run
from attnlab.train.run import resolve
from tests.helpers import tiny_raw

LM = {
    "name": "lm",
    "data": {"task": "lm_text", "tokenizer": "char", "seq_len": 32, "batch_size": 8},
    "model": {"d_model": 32, "n_layers": 2, "mixer": {"n_heads": 4}, "mlp": True},
    "train": {
        "max_steps": 8,
        "epochs": None,
        "eval_every": 4,
        "eval_batches": 2,
        "final_eval_batches": 2,
        "progress": False,
    },
}


def _classifier(lm_dir, **model) -> dict:
    return {
        "name": "ft",
        "data": {
            "task": "classification",
            "num_train": 64,
            "num_val": 16,
            "num_test": 16,
            "seq_len": 32,
            "batch_size": 16,
        },
        "model": {"arch": "classifier", "init_from": str(lm_dir), "pool": "last", **model},
        "train": {"epochs": 1, "eval_per_epoch": True, "progress": False, "eval_batches": 2},
    }


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny character language model trained on a WikiText-like corpus."""
    root = tmp_path_factory.mktemp("lm")
    corpus = root / "corpus"
    corpus.mkdir()
    text = " ".join(["the film was good but the plot was not"] * 60) + "\n"
    for name in ("wiki.train.raw", "wiki.valid.raw", "wiki.test.raw"):
        (corpus / name).write_text(text, encoding="utf-8")
    raw = json.loads(json.dumps(LM))
    raw["data"]["path"] = str(corpus)
    train(validate(raw, "lm"), root / "run")
    return root / "run"


def test_fine_tuned_classifier_starts_from_the_language_model(lm_dir, tmp_path):
    out = tmp_path / "ft"
    cfg = validate(_classifier(lm_dir), "ft")
    assert cfg.data.tokenizer == "run" and cfg.data.tokenizer_path == str(lm_dir)
    summary = train(cfg, out)
    assert 0.0 <= summary["classification"]["best_val_accuracy"] <= 1.0
    saved, model, _ = load_trained(out, "final")
    assert isinstance(model, LMClassifier)
    assert saved.model.d_model == 32 and saved.model.mlp and saved.model.init_from == str(lm_dir)
    assert (out / "tokenizer.json").read_text() == (lm_dir / "tokenizer.json").read_text()
    # a fresh start holds the language model's weights exactly (all but its unembedding)
    fresh = build_model(saved.model)
    init_from_run(fresh, lm_dir)
    lm = load_file(str(lm_dir / "model.safetensors"))
    body = fresh.lm.state_dict()
    assert set(body) == set(lm) - {"unembed.weight"}
    assert all(torch.equal(body[k], lm[k]) for k in body)
    # and training moved them
    assert not torch.equal(model.lm.embed.weight, fresh.lm.embed.weight)


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_padding_changes_no_prediction(lm_dir, pool):
    cfg = validate(_classifier(lm_dir, pool=pool), "ft")
    ds = data.build(cfg.data)
    resolved = resolve(cfg, ds, task_for(cfg).model_fields(cfg, ds))
    model = build_model(resolved.model).eval()
    pad = model.pad_id
    assert pad == ds.vocab_size  # one past the tokenizer's ids
    short = torch.tensor([[3, 4, 5, 6]])
    padded = torch.tensor([[3, 4, 5, 6, pad, pad, pad]])
    assert torch.allclose(model(short), model(padded), atol=1e-6)
    split = ClassificationSplit(["the", "the film"], [0, 1], ds.tokenizer, 8, pad)
    assert split.rows[0, 3:].tolist() == [pad] * 5  # the data pads with the model's id
    batch = split.get([0, 1])
    assert torch.allclose(model(batch.x)[0], model(batch.x[:1, :3])[0], atol=1e-6)


def test_bad_sources_are_refused(lm_dir, tmp_path):
    with pytest.raises(ConfigError, match="pool: mean or last"):
        validate(_classifier(lm_dir, pool="first"), "ft")
    raw = tiny_raw()
    raw["model"]["init_from"] = str(lm_dir)
    with pytest.raises(ConfigError, match="for arch: classifier"):
        validate(raw, "x")
    long = _classifier(lm_dir)
    long["data"]["seq_len"] = 64
    with pytest.raises(UserError, match="reads at most 32 tokens"):
        train(validate(long, "ft"), tmp_path / "c")
    with pytest.raises(UserError, match="not an attnlab run"):
        train(validate(_classifier(tmp_path / "nowhere"), "ft"), tmp_path / "a")
    # a run that is not a decoder-only language model
    cls_dir = tmp_path / "cls"
    raw = _classifier(lm_dir)
    train(validate(raw, "ft"), cls_dir)
    with pytest.raises(UserError, match="decoder-only"):
        train(validate(_classifier(cls_dir), "ft"), tmp_path / "b")
