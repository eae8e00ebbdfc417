"""Fast paths are config choices with the same results: chunked cross-entropy and
torch.compile (vocabulary padding: tests/unit/test_models.py; DDP: tests/e2e/test_train.py;
compiled training: tests/e2e/test_fast_paths.py)."""

from __future__ import annotations

import pytest
import torch

from attnlab.config import validate
from attnlab.errors import UserError
from attnlab.runs import train
from attnlab.train.losses import chunked_token_stats, token_stats
from tests.helpers import curve, tiny_raw

V, VP, D = 50, 64, 12


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(3, 7, D, generator=g, requires_grad=True)  # (B, T, D)
    w = (torch.randn(VP, D, generator=g) * 0.5).requires_grad_()  # (Vp, D)
    bias = torch.zeros(VP)
    bias[V:] = float("-inf")  # padded ids
    y = torch.randint(0, V, (3, 7), generator=g)
    mask = torch.rand(3, 7, generator=g) > 0.3
    return h, w, bias, y, mask


@pytest.mark.parametrize("chunk", [1, 4, 5, 21, 64])
@pytest.mark.parametrize("use_mask", [False, True])
def test_chunked_cross_entropy_equals_full_logits_with_gradients(chunk, use_mask):
    h, w, bias, y, mask = _problem()
    mask = mask if use_mask else None
    ref_loss, ref_n, ref_correct = token_stats(h @ w.T + bias, y, mask)
    ref_grads = torch.autograd.grad(ref_loss * 0.7, (h, w))
    loss, n, correct = chunked_token_stats(h, w, bias, y, mask, chunk)
    grads = torch.autograd.grad(loss * 0.7, (h, w))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    assert int(n) == int(ref_n) and int(correct) == int(ref_correct)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
    assert torch.isfinite(grads[1]).all() and (grads[1][V:] == 0).all()  # padded rows: 0


def test_chunked_cross_entropy_without_grad_and_without_bias():
    h, w, _, y, _ = _problem(1)
    with torch.no_grad():
        ref = token_stats(h @ w.T, y, None)
        got = chunked_token_stats(h, w, None, y, None, 6)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    assert int(got[2]) == int(ref[2])


def test_chunked_cross_entropy_under_bf16_autocast_is_close():
    h, w, bias, y, mask = _problem(2)
    ref = token_stats(h @ w.T + bias, y, mask)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = chunked_token_stats(h, w, bias, y, mask, 8)[0]
    got.backward()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=2e-2, atol=0)
    assert h.grad.dtype == h.dtype and w.grad.dtype == w.dtype


def test_training_with_chunked_loss_follows_the_same_curve(tmp_path):
    plain = train(validate(tiny_raw(), "tiny"), tmp_path / "plain")
    chunked = train(validate(tiny_raw(train__loss_chunk=5), "tiny"), tmp_path / "chunk")
    for r1, r2 in zip(curve(tmp_path / "plain"), curve(tmp_path / "chunk"), strict=True):
        assert r1.keys() == r2.keys()
        for k in ("loss", "accuracy"):
            if k in r1:
                assert r1[k] == pytest.approx(r2[k], rel=1e-4, abs=1e-6), (k, r1)
    assert chunked["test_loss"] == pytest.approx(plain["test_loss"], rel=1e-4)
    assert 0 <= chunked["data_share"] < 1 and chunked["compile_s"] is None


def test_loss_chunk_is_refused_for_a_classifier():
    raw = {
        "data": {"task": "classification", "num_train": 64},
        "model": {"arch": "classifier", "d_model": 16, "mixer": {"n_heads": 2}},
        "train": {"loss_chunk": 64},
    }
    with pytest.raises(UserError, match="loss_chunk"):
        validate(raw, "x")
