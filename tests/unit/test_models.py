"""Models: causality of every mixer option, the leak check catching leaks, fast = reference."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.config import ModelConfig
from attnlab.models import LeakageError, build, check_causal
from attnlab.models.attention import Attention
from attnlab.models.conv import CausalDepthwiseConv

V, T = 50, 20
MIXER_OPTIONS = [
    {},
    {"conv_kernel": 5, "conv_where": "input"},
    {"conv_kernel": 3, "conv_where": "qkv"},
    {"conv_kernel": 4, "conv_where": "k"},
    {"smear_keys": True},
    {"conv_kernel": 1, "smear_keys": True},
]
POSITIONS = ["none", "learned", "sinusoidal", "rope"]


def small(mixer: dict, **over) -> nn.Module:
    """A 2-layer d32 model; its positions (and the leak check's full length) T, as a run
    resolves them from the data."""
    over = {"max_seq_len": T, **over}
    cfg = ModelConfig(d_model=32, n_layers=2, mixer={"n_heads": 4, **mixer}, **over)
    torch.manual_seed(0)
    return build(cfg, V)


@pytest.mark.parametrize(("mixer", "pos"), list(itertools.product(MIXER_OPTIONS, POSITIONS)))
def test_every_option_is_causal(mixer, pos):
    model = small(mixer, pos=pos, mlp=True, norm="rmsnorm", max_seq_len=T, dropout=0.2)
    report = check_causal(model, V, T)
    assert report["max_change"] <= 1e-4 and report["positions"] == T
    assert report["pairs"] == T * (T - 1) // 2 and report["perturbed"]


class SymmetricConv(nn.Module):
    """A deliberately leaking mixer: depth-wise conv padded on both sides."""

    def __init__(self, d: int, k: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(d, d, k, groups=d, padding=k // 2)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class Peek(nn.Module):
    """Position t reads token s > t, nothing else moves (in train mode only, if asked)."""

    def __init__(self, t: int, s: int, train_only: bool = False):
        super().__init__()
        self.t, self.s, self.train_only = t, s, train_only

    def forward(self, x):
        out = torch.zeros_like(x)
        if self.training or not self.train_only:
            out[:, self.t] = x[:, self.s]
        return out


def test_leak_check_catches_two_sided_conv():
    model = small({})
    model.blocks[1].mixer = SymmetricConv(32)
    with pytest.raises(LeakageError, match="sees the future"):
        check_causal(model, V, T)


def test_leak_check_catches_attention_without_mask():
    model = small({})
    model.blocks[0].mixer.causal = False
    with pytest.raises(LeakageError):
        check_causal(model, V, T)


@pytest.mark.parametrize(("t", "s"), [(0, 1), (4, 11), (9, T - 1), (T - 2, T - 1)])
def test_leak_check_names_a_single_leaking_pair(t, s):
    """One leak at one position pair anywhere: the check finds it and names it (the old
    check, 4 positions, missed most of these)."""
    model = small({})
    model.blocks[0].mixer = Peek(t, s)
    with pytest.raises(LeakageError, match=rf"position {t} .* only token {s} changed \(eval"):
        check_causal(model, V, T)


def test_leak_check_catches_a_leak_in_train_mode_only():
    model = small({}, dropout=0.1)
    model.blocks[1].mixer = Peek(3, 7, train_only=True)
    with pytest.raises(LeakageError, match=r"position 3 .* token 7 changed \(train mode"):
        check_causal(model, V, T)


def test_leak_check_catches_a_leak_behind_a_zero_parameter():
    """A gate that starts at 0 hides the leak from the model as built: the perturbed copy
    shows it."""

    class GatedPeek(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            out = torch.zeros_like(x)
            out[:, 2] = self.gate * x[:, 5]
            return out

    model = small({})
    model.blocks[0].mixer = GatedPeek()
    assert check_causal(model, V, T, perturb=False)["max_change"] == 0
    with pytest.raises(LeakageError, match=r"position 2 .* token 5 .*perturbed copy"):
        check_causal(model, V, T)


def test_leak_check_reads_padded_columns():
    """A future signal in a padded column (cut off by logits[..., :V]) still moves every
    log-probability through the softmax's normaliser."""

    class PaddedLeak(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = small({})

        def forward(self, x):
            logits = self.inner(x).clone()  # (B, T, 64), columns >= V padded with -inf
            logits[:, :-1, V] = x[:, 1:].float()  # position t's padded column: token t + 1
            return logits

    model = PaddedLeak()
    with pytest.raises(LeakageError, match="sees the future"):
        check_causal(model, V, T)


def test_leak_check_leaves_the_rng_and_mode_alone():
    model = small({}, dropout=0.3)
    model.train()
    state = torch.get_rng_state()
    check_causal(model, V, T)
    assert model.training and torch.equal(torch.get_rng_state(), state)


def test_leak_check_length_caps_the_positions():
    report = check_causal(small({}), V, T, length=8)
    assert report["positions"] == 8 and report["of_seq_len"] == T and report["pairs"] == 28


@pytest.mark.parametrize("mixer", MIXER_OPTIONS)
@pytest.mark.parametrize("rope", [False, True])
def test_attention_fast_path_matches_reference(mixer, rope):
    """SDPA path vs explicit softmax path: outputs and gradients, float64, tol 1e-10."""
    torch.manual_seed(1)
    attn = Attention(16, n_heads=4, rope=rope, max_seq_len=T, **mixer).double()
    if attn.smear_alpha is not None:
        nn.init.normal_(attn.smear_alpha)
    x = torch.randn(3, T, 16, dtype=torch.float64, requires_grad=True)
    fast = attn(x)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), x)
    ref, pattern = attn.forward_ref(x)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-10, atol=1e-10)
    assert pattern.shape == (3, 4, T, T)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(3, 4, T, dtype=torch.float64))
    assert pattern.triu(1).abs().max() == 0  # causal: no weight on later keys


def test_conv_matches_reference_and_is_causal():
    torch.manual_seed(2)
    conv = CausalDepthwiseConv(6, 4).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(conv(x), conv.forward_ref(x), rtol=1e-12, atol=1e-12)
    gw_fast = torch.autograd.grad(conv(x).sum(), conv.conv.weight)[0]
    gw_ref = torch.autograd.grad(conv.forward_ref(x).sum(), conv.conv.weight)[0]
    torch.testing.assert_close(gw_fast, gw_ref)
    y = conv(x)
    x2 = x.detach().clone()
    x2[:, 5:] += 1
    torch.testing.assert_close(conv(x2)[:, :5], y[:, :5])


def test_smear_gate_mixes_current_and_previous_key():
    attn = Attention(8, n_heads=2, smear_keys=True)
    with torch.no_grad():
        attn.smear_alpha.fill_(30.0)  # σ ≈ 1: the key at j only
    k = torch.randn(1, 2, 5, 4)
    torch.testing.assert_close(attn.smear(k), k, atol=1e-4, rtol=0)
    with torch.no_grad():
        attn.smear_alpha.fill_(-30.0)  # σ ≈ 0: the key at j - 1, zero at j = 0
    shifted = torch.cat([torch.zeros_like(k[:, :, :1]), k[:, :, :-1]], dim=2)
    torch.testing.assert_close(attn.smear(k), shifted, atol=1e-4, rtol=0)


def test_padded_vocabulary_never_wins_or_costs():
    model = small({}, pad_vocab_multiple=64)
    assert model.padded_vocab == 64 and model.vocab_size == V
    logits = model(torch.randint(0, V, (2, T)))
    assert logits.shape == (2, T, 64)
    assert torch.isneginf(logits[..., V:]).all() and torch.isfinite(logits[..., :V]).all()
    y = torch.randint(0, V, (2 * T,))
    padded = F.cross_entropy(logits.reshape(-1, 64), y)
    torch.testing.assert_close(padded, F.cross_entropy(logits[..., :V].reshape(-1, V), y))


def test_tied_embeddings_share_one_tensor():
    untied, tied = small({}), small({}, tie_embeddings=True)
    assert tied.unembed.weight is tied.embed.weight
    assert untied.num_params() - tied.num_params() == 64 * 32


def test_param_counts_of_the_two_architectures():
    """Attn-Attn: 4 x 4D^2 attention weights; Conv-Attn: one layer plus a D x k conv."""
    d, vp = 64, 64
    aa = build(ModelConfig(d_model=d, n_layers=4, mixer={"n_heads": 8}, pos="none"), V)
    ca = build(
        ModelConfig(d_model=d, n_layers=1, mixer={"n_heads": 8, "conv_kernel": 5}, pos="none"), V
    )
    embed = 2 * vp * d + 2 * d  # embed, unembed, final norm
    assert aa.num_params() == embed + 4 * (4 * d * d + 2 * d)
    assert ca.num_params() == embed + (4 * d * d + 2 * d) + (5 * d + d)


def test_a_centred_conv_is_rejected_naming_its_future_offsets():
    """`conv_padding: same` (write-up 001's centred Conv1d) reads t+1 and t+2 at k = 5."""
    mixer = {"name": "attention", "n_heads": 2, "conv_kernel": 5, "conv_padding": "same"}
    cfg = ModelConfig(d_model=16, n_layers=1, mixer=mixer, vocab_size=20, max_seq_len=12)
    torch.manual_seed(0)
    model = build(cfg)
    with pytest.raises(LeakageError, match=r"blocks\.0\.mixer\.conv reads offsets \+1, \+2"):
        check_causal(model, 20, 12)


def test_the_centred_conv_matches_its_reference_and_a_centred_conv1d():
    torch.manual_seed(0)
    conv = CausalDepthwiseConv(3, 5, padding="same").double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)  # (B, T, C)
    ref = torch.nn.functional.conv1d(
        x.transpose(1, 2), conv.conv.weight, conv.conv.bias, padding=2, groups=3
    ).transpose(1, 2)
    torch.testing.assert_close(conv(x), ref)
    torch.testing.assert_close(conv.forward_ref(x), ref)
    assert conv.offsets == [-2, -1, 0, 1, 2] and conv.future_offsets == [1, 2]
