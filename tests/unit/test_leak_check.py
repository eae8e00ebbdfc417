"""Hidden leaks: each model here sees the future in a way the leak check before issue 30
passed (a reference row in the variants' own batch, 32 of 64 positions, float32 eager
only, the SDPA path only); each must now be caught, and named."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnlab.config import ModelConfig
from attnlab.models import LeakageError, build, check_causal

V, T = 50, 20


def small(max_seq_len: int = T, **over) -> nn.Module:
    cfg = ModelConfig(d_model=32, n_layers=2, mixer={"n_heads": 4}, max_seq_len=max_seq_len, **over)
    torch.manual_seed(0)
    return build(cfg, V)


class TimeBatchNorm(nn.Module):
    """BatchNorm over (batch, time) of (B, T, D): in train mode every position reads the
    statistics of every position of every row."""

    def __init__(self, d: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(d)

    def forward(self, x):
        return self.bn(x.transpose(1, 2)).transpose(1, 2)  # (B, T, D)


class PeekWhen(nn.Module):
    """A mixer that adds position t + 1's input to position t where `when(t)` holds."""

    def __init__(self, when):
        super().__init__()
        self.when = when

    def forward(self, x):  # (B, T, D) → (B, T, D)
        out = torch.zeros_like(x)
        for t in range(x.shape[1] - 1):
            if self.when(t):
                out[:, t] = x[:, t + 1]
        return out


def test_a_batch_coupled_leak_is_caught():
    """BatchNorm over (batch, time) in train mode: a reference row in the variants' own
    batch moves with them; the reference batch of unchanged copies does not."""
    model = small()
    model.drop = TimeBatchNorm(32)
    with pytest.raises(LeakageError, match=r"train mode.*(batch couples|sees the future)"):
        check_causal(model, V, T, full=False)
    with pytest.raises(LeakageError, match="train mode"):  # the gradient half alone, too
        check_causal(model, V, T, length=2)


def test_the_check_restores_batchnorm_statistics():
    model = small()
    model.drop = TimeBatchNorm(32)
    before = model.drop.bn.running_mean.clone()
    with pytest.raises(LeakageError):
        check_causal(model, V, T)
    assert torch.equal(model.drop.bn.running_mean, before)


def test_a_leak_beyond_the_changed_token_length_is_caught():
    """A leak at t >= 40 only, with the changed-token check at 32 of 64 positions: the
    gradient half covers the model's whole max_seq_len."""
    model = small(max_seq_len=64)
    model.blocks[1].mixer = PeekWhen(lambda t: t >= 40)
    check_causal(model, V, 64, length=32, full=False)  # the old check's view: passes
    with pytest.raises(LeakageError, match=r"up to position 40 .* token 41"):
        check_causal(model, V, 64, length=32)


def test_the_full_check_covers_max_seq_len_every_pair():
    report = check_causal(small(max_seq_len=48), V, 16)
    assert report["positions"] == 16 and report["full"]["positions"] == 48
    assert report["full"]["pairs"] == 48 * 47 // 2
    assert report["full"]["max_relative_gradient"] <= 1e-6


class AutocastPeek(PeekWhen):
    """Leaks only under autocast (a bf16-only kernel bug)."""

    def __init__(self):
        super().__init__(lambda t: torch.is_autocast_enabled("cpu"))


def test_a_leak_under_the_runs_precision_only_is_caught():
    model = small()
    model.blocks[0].mixer = AutocastPeek()
    check_causal(model, V, T)  # float32: nothing to see

    def bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    with pytest.raises(LeakageError, match="under the run's precision"):
        check_causal(model, V, T, autocast=bf16)


class CompiledPeek(PeekWhen):
    """Leaks only in the compiled graph."""

    def __init__(self):
        super().__init__(lambda t: torch.compiler.is_compiling())


def test_a_leak_in_the_compiled_graph_only_is_caught():
    model = small()
    model.blocks[0].mixer = CompiledPeek()
    check_causal(model, V, T)  # eager: nothing to see
    compiled = torch.compile(model, backend="eager")
    with pytest.raises(LeakageError, match="compiled"):
        check_causal(model, V, T, compiled=compiled)


def test_a_leak_in_the_explicit_attention_path_only_is_caught():
    """Probes take the explicit softmax path; a mask bug there alone must show."""
    model = small()
    attn = model.blocks[0].mixer

    def unmasked(q, k, key_mask=None):  # (B, H, T, E) x 2 → (B, H, T, T), no causal mask
        return (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)

    attn.pattern = unmasked
    with pytest.raises(LeakageError, match="explicit attention path"):
        check_causal(model, V, T)


class PadReader(nn.Module):
    """Reads raw ids: position t's logits move when tokens t + 1 and t + 2 are padding
    (id 0): it finds where a row's padding starts."""

    def __init__(self):
        super().__init__()
        self.inner = small()

    def forward(self, x):
        logits = self.inner(x).clone()  # (B, T, Vp)
        logits[:, :-2, 1] += 5.0 * ((x[:, 1:-1] == 0) & (x[:, 2:] == 0)).float()
        return logits


def test_a_leak_on_padding_only_is_caught():
    model = PadReader()
    with pytest.raises(LeakageError, match="padded sequence"):
        check_causal(model, V, T)


def test_a_causal_model_passes_every_setting():
    model = small(dropout=0.1)
    compiled = torch.compile(model, backend="eager")

    def bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    report = check_causal(model, V, T, autocast=bf16, compiled=compiled)
    assert report["settings"] == [
        "as built",
        "under the run's precision",
        "explicit attention path",
        "padded sequence",
        "compiled",
    ]
    assert report["max_change"] <= 1e-4 and report["full"]["max_relative_gradient"] <= 1e-6
