"""Cached decoding: the same logits (to float32 precision) and the same tokens as full
recomputation, for every mixer option of the stack and the encoder-decoder, on ragged
prompt batches, greedy and beam search."""

from __future__ import annotations

import pytest
import torch

from attnlab.config import validate
from attnlab.models import build
from attnlab.models.generate import beam_search, greedy
from tests.helpers import tiny_raw

V = 24
ATTENTION = [
    {},
    {"conv_kernel": 3, "conv_where": "input"},
    {"conv_kernel": 4, "conv_where": "qkv"},
    {"conv_kernel": 3, "conv_where": "k"},
    {"smear_keys": True},
    {"smear_keys": True, "conv_kernel": 3},
]
CASES = [
    *[({"mixer": {"n_heads": 4, **m}}, f"attention {m}") for m in ATTENTION],
    *[({"pos": p}, f"pos {p}") for p in ("none", "sinusoidal", "rope")],
    ({"pos": "rope", "mixer": {"n_heads": 4, "smear_keys": True}}, "rope + smear"),
    ({"mlp": True, "norm": "rmsnorm", "tie_embeddings": True}, "mlp, rmsnorm, tied"),
    *[
        ({"pos": "none", "mixer": {"name": "mamba", "d_state": 4, **m}}, f"mamba {m}")
        for m in (
            {"discretization": "zoh_approx"},
            {"discretization": "zoh"},
            {"discretization": "bilinear", "dt_max": 3.0},
            {"dt": "constant"},
            {"dt": "positional", "dt_scale": True},
            {"selective": False},
            {"selective": False, "discretization": "bilinear"},
        )
    ],
]


def _model(over: dict):
    raw = tiny_raw()
    raw["model"].update({"d_model": 32, "n_layers": 2, "max_seq_len": 40, **over})
    torch.manual_seed(0)
    model = build(validate(raw, "t").model, V)
    with torch.no_grad():  # a trained-looking model: logits far from uniform
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _prompts():
    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([5, 1, 8, 3])
    prompt = torch.randint(1, V, (4, 8), generator=g)
    prompt[torch.arange(8)[None, :] >= lengths[:, None]] = 0  # right-padded
    return prompt, lengths


@pytest.mark.parametrize(("over", "what"), CASES, ids=[w for _, w in CASES])
def test_cached_logits_equal_full_recomputation(over, what):
    model = _model(over)
    x = torch.randint(1, V, (3, 20), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full = model(x)  # (N, T, Vp)
        state = [{} for _ in model.blocks]
        steps = torch.stack([model.step(x[:, t], state, t) for t in range(x.shape[1])], 1)
    finite = torch.isfinite(full)
    assert torch.equal(finite, torch.isfinite(steps))
    torch.testing.assert_close(steps[finite], full[finite], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("over", "what"), CASES, ids=[w for _, w in CASES])
def test_cached_decoding_gives_the_same_tokens(over, what):
    model, (prompt, lengths) = _model(over), _prompts()
    for decode, kw in ((greedy, {}), (beam_search, {"width": 3})):
        cached = decode(model, prompt, lengths, 12, eos=2, cache=True, **kw)
        full = decode(model, prompt, lengths, 12, eos=2, cache=False, **kw)
        assert torch.equal(cached, full), (decode.__name__, cached, full)
        assert cached.shape == (4, 12)


def test_encoder_decoder_cached_decoding():
    raw = tiny_raw()
    raw["model"].update(
        {"arch": "seq2seq", "d_model": 32, "n_layers": 2, "mlp": True, "max_seq_len": 40}
    )
    raw["data"] = {"task": "piglatin", "words": "web2"}
    torch.manual_seed(0)
    model = build(validate(raw, "t").model, V).eval()
    g = torch.Generator().manual_seed(4)
    src = torch.randint(1, V, (3, 9), generator=g)
    src[1, 5:] = 0  # padded source
    start = torch.ones(3, 1, dtype=torch.long)  # [SOS]
    ones = torch.ones(3, dtype=torch.long)
    for decode, kw in ((greedy, {}), (beam_search, {"width": 4})):
        cached = decode(model, start, ones, 10, eos=2, src=src, cache=True, **kw)
        full = decode(model, start, ones, 10, eos=2, src=src, cache=False, **kw)
        assert torch.equal(cached, full)
    tgt = torch.randint(1, V, (3, 7), generator=g)
    with torch.no_grad():
        memory, mask = model.encode(src)
        full = model.decode(tgt, memory, mask)
        state = [{} for _ in model.decoder]
        steps = torch.stack([model.step(tgt[:, t], state, t, memory, mask) for t in range(7)], 1)
    finite = torch.isfinite(full)
    torch.testing.assert_close(steps[finite], full[finite], rtol=1e-4, atol=1e-5)


def test_a_centred_conv_cannot_decode_step_by_step():
    model = _model({"mixer": {"n_heads": 4, "conv_kernel": 3, "conv_padding": "same"}})
    prompt, lengths = _prompts()
    with pytest.raises(ValueError, match="centred conv reads the future"):
        greedy(model, prompt, lengths, 4, eos=2)
