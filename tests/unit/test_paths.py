"""Path ablation, path patching and pattern-preserving ablation: the split q/k/v inputs
change nothing until edited, the paths of one head add up to its whole ablation, an edit
into one input reaches that input only, and pattern preservation is the value-and-direct
path."""

from __future__ import annotations

import pytest
import torch

from attnlab.probes import ablate, capture, patch
from attnlab.probes.ablation import circuit, induction_patching, lacks_induction
from attnlab.probes.paths import (
    frozen_patterns,
    path_ablate,
    path_patch,
    pattern_preserving,
    receiver_point,
)
from attnlab.probes.sequences import repeated_sequences
from attnlab.report.circuit_section import sweep_circuit_section
from tests.unit.test_intervene import _decoder, _no_hooks, _tokens

MIXERS = [{}, {"conv_kernel": 3}, {"smear_keys": True}, {"conv_kernel": 3, "conv_where": "qkv"}]
EVERY_PATH = [("q", 1), ("k", 1), ("v", 1), ("logits", None)]


def _attention_only(**mixer):
    model = _decoder(**mixer)
    for b in model.blocks:  # attention only: a layer-0 head reaches layer 1 and the logits
        b.mlp = b.norm2 = None
        with torch.no_grad():
            b.mixer.qkv.weight.mul_(4)  # sharper patterns than at initialisation
    return model


@pytest.mark.parametrize("mixer", MIXERS)
def test_split_inputs_equal_the_plain_forward(mixer):
    model, x = _decoder(**mixer), _tokens()
    with torch.no_grad():
        plain = model(x)
        attn, h = model.blocks[1].mixer, model.blocks[1].norm1(torch.randn(3, 12, 32))
        assert torch.allclose(attn.forward_split(h, h, h), attn(h), atol=1e-6)
        with capture(model, ["blocks.1.hook_k_input"]) as cache:
            listened = model(x)
    assert torch.equal(plain, listened)
    assert cache["blocks.1.hook_k_input"].shape == (3, 12, 32)


@pytest.mark.parametrize("how", ["zero", "mean_pos", "resample"])
@pytest.mark.parametrize("mixer", MIXERS)
def test_every_path_together_is_the_whole_ablation(mixer, how):
    model, x, ref = _attention_only(**mixer), _tokens(), (_tokens(seed=2),)
    with torch.no_grad():
        with ablate(model, {0: [1, 2]}, how, ref):
            whole = model(x)
        with path_ablate(model, 0, [1, 2], EVERY_PATH, how, ref):
            paths = model(x)
        with path_ablate(model, 0, [1, 2], EVERY_PATH[:3], how, ref):
            no_direct = model(x)
    assert torch.allclose(whole, paths, atol=1e-5)
    assert not torch.allclose(whole, no_direct, atol=1e-3)  # the direct path counts
    assert _no_hooks(model)


def test_an_edit_reaches_only_its_input():
    model, x, ref = _attention_only(), _tokens(), (_tokens(seed=2),)
    names = ["blocks.1.attn.hook_pattern", "blocks.1.attn.hook_z"]
    with torch.no_grad():
        with capture(model, names) as clean:
            model(x)
        runs = {}
        for what in ("q", "k", "v"):
            with (
                path_ablate(model, 0, [0], [(what, 1)], "resample", ref),
                capture(model, names) as c,
            ):
                model(x)
            runs[what] = dict(c)
    # values do not move the pattern; queries and keys do
    assert torch.allclose(runs["v"][names[0]], clean[names[0]], atol=1e-6)
    assert not torch.allclose(runs["v"][names[1]], clean[names[1]], atol=1e-4)
    for what in ("q", "k"):
        assert not torch.allclose(runs[what][names[0]], clean[names[0]], atol=1e-4)
    # a query edit leaves every row's first key alone: position 0's pattern is [1]
    assert not torch.allclose(runs["q"][names[0]], runs["k"][names[0]], atol=1e-4)


def test_pattern_preserving_is_the_value_and_direct_paths():
    model, x, ref = _attention_only(), _tokens(), (_tokens(seed=2),)
    with torch.no_grad():
        with (
            pattern_preserving(model, (x,), {0: [3]}, "mean_pos", ref),
            capture(model, ["blocks.1.attn.hook_pattern"]) as held,
        ):
            preserved = model(x)
        with path_ablate(model, 0, [3], [("v", 1), ("logits", None)], "mean_pos", ref):
            paths = model(x)
        with capture(model, ["blocks.1.attn.hook_pattern"]) as clean:
            model(x)
        with ablate(model, {0: [3]}, "mean_pos", ref):
            whole = model(x)
    assert torch.allclose(preserved, paths, atol=1e-5)
    assert torch.allclose(held["blocks.1.attn.hook_pattern"], clean["blocks.1.attn.hook_pattern"])
    assert not torch.allclose(preserved, whole, atol=1e-4)
    with (
        pytest.raises(ValueError, match="frozen on"),
        torch.no_grad(),
        frozen_patterns(model, (x,)),
    ):
        model(x[:, :5])


def test_path_patching_every_path_is_the_head_patch():
    model, clean, corrupted = _attention_only(), _tokens(seed=3), _tokens(seed=4)

    def metric(logits):
        return float(logits[:, -1].log_softmax(-1)[:, 3].mean())

    head = patch(
        model, (clean,), (corrupted,), "blocks.0.attn.hook_z", metric, (slice(None), slice(None), 2)
    )
    paths = path_patch(model, (clean,), (corrupted,), 0, [2], EVERY_PATH, metric)
    assert paths.patched == pytest.approx(head.patched, abs=1e-5)
    only_k = path_patch(model, (clean,), (corrupted,), 0, [2], [("k", 1)], metric)
    assert only_k.patched != pytest.approx(head.patched, abs=1e-4)


def test_receivers_must_come_later():
    model = _attention_only()
    with pytest.raises(ValueError, match="after the sender"):
        receiver_point(model, 1, ("k", 1))
    with pytest.raises(ValueError, match="choose one of"):
        receiver_point(model, 0, ("o", 1))
    assert receiver_point(model, 1, ("logits", None)) == "blocks.1.hook_resid_post"


def test_circuit_reads_the_named_heads_and_agrees_with_head_patching():
    model = _attention_only()
    probe = repeated_sequences(16, 20, 12, seed=0)
    ref = repeated_sequences(16, 20, 12, seed=1)
    H = 4
    scores = {  # head 0.2 named a previous-token head, head 1.1 an induction head
        "layers": [0, 1],
        "heads": H,
        "scores": {
            "previous_token": [[0.0, 0.0, 0.9, 0.0], [0.0] * H],
            "induction": [[0.0] * H, [0.0, 0.8, 0.0, 0.0]],
        },
    }
    with torch.no_grad():
        c = circuit(model, probe, scores, 8, ref)
        grid = induction_patching(model, probe, [0, 1])
    assert c["sender"] == {"layer": 0, "heads": [2]} and c["receivers"] == {"1": [1]}
    assert c["patching"]["all"] == pytest.approx(grid["recovered"][0][2], abs=1e-4)
    row = c["ablation"]["mean_pos"]
    assert set(row) == {"all", "q", "k", "v", "logits", "pattern_preserving"}
    assert len({round(r["repeat_loss"], 6) for r in row.values()}) > 2  # paths differ
    assert set(c["composition"]) == {"Q", "K", "V", "baseline", "exact"}
    assert not grid["control"] and lacks_induction(_decoder_1layer())
    scores["scores"]["induction"][1] = [0.0] * H
    assert "skipped" in circuit(model, probe, scores, 8, ref)


def _decoder_1layer():
    model = _attention_only()
    model.blocks = model.blocks[:1]
    return model


def _run(recovered, control, circuit_=None, base=0.8):
    ablation = {
        "baseline": {"repeat_accuracy": base},
        "patching": {"layers": [0], "recovered": recovered, "control": control},
    }
    if circuit_ is not None:
        ablation["circuit"] = circuit_
    return {"probes": {"ablation": ablation}}


def test_sweep_section_names_the_path_and_the_floor():
    acc = {"all": 0.05, "q": 0.7, "k": 0.06, "v": 0.8, "logits": 0.8, "pattern_preserving": 0.8}

    def circ(shift):
        row = {k: {"repeat_accuracy": v + shift} for k, v in acc.items()}
        return {
            "ablations": ["mean_pos"],
            "ablation": {"mean_pos": row},
            "patching_attention": {k: 0.5 for k in acc},
            "composition": {"Q": 0.05, "K": 0.3, "V": 0.04, "baseline": 0.13},
        }

    groups = {
        "one": [_run([[0.30, 0.35]], True), _run([[0.33, 0.2]], True), _run([[0.4]], True)],
        "two": [_run([[0.2], [0.8]], False, circ(s / 100)) for s in range(3)],
        "weak": [_run([[0.36]], False), _run([[0.30]], False), _run([[0.41]], False)],
    }
    text = sweep_circuit_section(groups, list(groups))
    assert "per seed: k, k, k" in text
    lines = {
        line.split(" | ")[0].strip("| "): line
        for line in text.splitlines()
        if line.startswith("| ")
    }
    assert lines["one"].endswith("the floor |")
    assert lines["two"].endswith("yes |") and lines["weak"].endswith("no |")
