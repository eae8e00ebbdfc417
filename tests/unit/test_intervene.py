"""Interventions: `intervene` edits hook points, `ablate` equals zeroing a head's slice of
the output projection, mean ablation uses the reference batch's mean, the model is
restored exactly (also after an exception), and activation patching recovers what it
patches."""

from __future__ import annotations

import pytest
import torch

from attnlab.config import validate
from attnlab.models import build
from attnlab.probes import (
    ablate,
    capture,
    head_patching,
    hook_points,
    intervene,
    patch,
    resid_patching,
)
from tests.helpers import tiny_raw


def _decoder(**mixer):
    raw = tiny_raw()
    raw["model"].update(
        {"d_model": 32, "n_layers": 2, "mixer": {"n_heads": 4, **mixer}, "mlp": True}
    )
    raw["model"]["max_seq_len"] = 24
    torch.manual_seed(0)
    return build(validate(raw, "t").model, 16).eval()


def _seq2seq():
    raw = tiny_raw()
    raw["model"].update({"arch": "seq2seq", "d_model": 32, "n_layers": 1, "mlp": True})
    raw["model"]["mixer"] = {"n_heads": 4}
    raw["model"]["max_seq_len"] = 24
    raw["data"] = {"task": "piglatin", "words": "web2", "num_val": 8, "num_test": 8}
    torch.manual_seed(0)
    return build(validate(raw, "t").model, 16).eval()


def _tokens(seed=1, b=3, t=12):
    return torch.randint(1, 16, (b, t), generator=torch.Generator().manual_seed(seed))


def _no_hooks(model) -> bool:
    return not any(p._forward_hooks for p in hook_points(model).values())


@pytest.mark.parametrize("mixer", [{}, {"conv_kernel": 3}, {"smear_keys": True}])
def test_zero_ablation_is_zeroing_the_heads_output_columns(mixer):
    model, x = _decoder(**mixer), _tokens()
    with torch.no_grad(), ablate(model, {1: [2], 0: [0, 3]}):
        ablated = model(x)
    E = model.cfg.d_model // 4
    cut = _decoder(**mixer)
    with torch.no_grad():
        cut.blocks[1].mixer.out.weight[:, 2 * E : 3 * E] = 0
        for h in (0, 3):
            cut.blocks[0].mixer.out.weight[:, h * E : (h + 1) * E] = 0
        want = cut(x)
    assert torch.allclose(ablated, want, atol=1e-5)
    assert not torch.allclose(ablated, model(x), atol=1e-3)  # it did something


def test_mean_ablation_uses_the_reference_mean():
    model, x, ref = _decoder(), _tokens(1), _tokens(2, b=5)
    with capture(model, ["blocks.0.attn.hook_z"]) as cache:
        model(ref)
    mean = cache["blocks.0.attn.hook_z"].mean(dim=(0, 1))[1]  # (E,)
    seen = {}
    with torch.no_grad(), ablate(model, {0: [1]}, how="mean", reference=(ref,)):
        with capture(model, ["blocks.0.attn.hook_z"]) as after:
            model(x)
        seen["z"] = after["blocks.0.attn.hook_z"]
    assert torch.allclose(seen["z"][:, :, 1], mean.expand(3, 12, -1), atol=1e-6)
    with pytest.raises(ValueError, match="reference batch"), ablate(model, {0: [1]}, how="mean"):
        pass


def test_per_position_mean_and_resample_ablation_use_the_reference():
    """mean_pos: each position gets the reference's mean at that position; resample: row b
    gets reference row b mod R's own output, position by position."""
    model, x, ref = _decoder(), _tokens(1), _tokens(2, b=2, t=16)
    name = "blocks.0.attn.hook_z"
    with capture(model, [name]) as cache:
        model(ref)
    z_ref = cache[name][:, :12, 1]  # (2, 12, E): head 1 over the first 12 positions
    for how, want in (
        ("mean_pos", z_ref.mean(0).expand(3, -1, -1)),
        ("resample", z_ref[[0, 1, 0]]),
    ):
        edit = ablate(model, {0: [1]}, how=how, reference=(ref,))
        with torch.no_grad(), edit, capture(model, [name]) as after:
            model(x)
        assert torch.allclose(after[name][:, :, 1], want, atol=1e-6), how
        assert torch.equal(after[name][:, :, 0], capture_z(model, x)[:, :, 0])  # others kept
    short = (_tokens(2, b=2, t=8),)
    edit = ablate(model, {0: [1]}, how="mean_pos", reference=short)
    with pytest.raises(ValueError, match="8 positions < 12"), torch.no_grad(), edit:
        model(x)
    with pytest.raises(ValueError, match="choose one of"), ablate(model, {0: [1]}, how="max"):
        pass


def capture_z(model, x):
    """Layer 0's head outputs on x, unablated."""
    with capture(model, ["blocks.0.attn.hook_z"]) as cache:
        model(x)
    return cache["blocks.0.attn.hook_z"]


def test_the_model_is_restored_even_after_an_exception():
    model, x = _decoder(), _tokens()
    before = model(x)
    with pytest.raises(RuntimeError, match="boom"), ablate(model, {0: [0, 1, 2, 3]}):
        raise RuntimeError("boom")
    assert _no_hooks(model) and torch.equal(model(x), before)
    with intervene(model, {"blocks.1.hook_resid_post": lambda r: None}):
        kept = model(x)  # None keeps the activation: the explicit path, same numbers
    assert torch.allclose(kept, before, atol=1e-5) and _no_hooks(model)
    bad = {"blocks.9.hook_resid_post": lambda r: r}
    with pytest.raises(KeyError, match="no hook point"), intervene(model, bad):
        pass


def test_cross_attention_heads_ablate_in_an_encoder_decoder():
    model = _seq2seq()
    tgt, src = _tokens(3, t=8), _tokens(4, t=10)
    with torch.no_grad(), ablate(model, {"decoder.0.cross": [1]}):
        ablated = model(tgt, src)
    E = model.cfg.d_model // 4
    with torch.no_grad():
        model.decoder[0].cross.out.weight[:, E : 2 * E] = 0
        want = model(tgt, src)
    assert torch.allclose(ablated, want, atol=1e-5)


def test_head_patching_patches_each_head_itself():
    """Only layer 1's head 2 writes anything (every other head's output projection is
    zero): patching it moves the metric, as patching its slice by hand does, and patching
    any other head does nothing. A head_patching that patched head 0 for every head
    fails here."""
    model = _decoder()
    E = model.cfg.d_model // 4
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            w = block.mixer.out.weight  # (D, D), columns (h e)
            keep = w[:, 2 * E : 3 * E].clone()
            w.zero_()
            if i == 1:
                w[:, 2 * E : 3 * E] = keep
    clean, corrupted = _tokens(5), _tokens(6)

    def metric(logits):
        return float(logits[:, -1].log_softmax(-1)[:, 3].mean())

    grid, base = head_patching(model, (clean,), (corrupted,), metric)
    assert abs(base.clean - base.corrupted) > 1e-3  # a gap to recover
    by_hand = patch(
        model, (clean,), (corrupted,), "blocks.1.attn.hook_z", metric, (..., 2, slice(None))
    )
    assert abs(by_hand.recovered) > 1e-3
    want = torch.zeros(2, 4)
    want[1, 2] = by_hand.recovered
    torch.testing.assert_close(grid, want, atol=1e-5, rtol=0)


def test_patching_recovers_what_it_patches():
    model = _decoder()
    clean, corrupted = _tokens(5), _tokens(6)

    def metric(logits):
        return float(logits[:, -1].log_softmax(-1)[:, 3].mean())

    whole = patch(model, (clean,), (corrupted,), "blocks.0.hook_resid_pre", metric)
    assert whole.patched == pytest.approx(whole.clean, abs=1e-5)
    assert whole.recovered == pytest.approx(1.0, abs=1e-4)
    # the last block's output at an earlier position cannot move the last position
    early = patch(
        model, (clean,), (corrupted,), "blocks.1.hook_resid_post", metric, (slice(None), 0)
    )
    assert early.patched == pytest.approx(early.corrupted, abs=1e-6)
    grid, base = head_patching(model, (clean,), (corrupted,), metric)
    assert grid.shape == (2, 4) and torch.isfinite(grid).all()
    assert base.clean == pytest.approx(whole.clean)
    resid = resid_patching(model, (clean,), (corrupted,), metric)
    assert resid.shape == (2, 12)
    assert resid[0, -1] != 0 and resid[0, 0] != 0  # the last position reads both
    assert _no_hooks(model)
