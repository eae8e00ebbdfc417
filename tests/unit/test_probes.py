"""Probes: capture, head scores, ICL positions, kernel offsets, copying."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab import models
from attnlab.config import validate
from attnlab.probes import capture, hook_points, pattern_score, repeated_sequences, target_masks
from attnlab.probes.heads import head_scores, ov_copying, uniform_pattern
from attnlab.probes.icl import icl_positions, icl_score
from attnlab.probes.static import kernel_profile
from tests.helpers import tiny_raw

V, T = 100, 32


@pytest.fixture
def probe_set():
    return repeated_sequences(V, 6, T, seed=3)


def _exact_pattern(tokens: torch.Tensor, kind: str) -> torch.Tensor:
    """(N, 1, T, T) pattern that puts all its mass on one target of `kind` (else on t)."""
    masks = target_masks(tokens)[kind]  # (N, T, S)
    N, T_ = tokens.shape
    pattern = torch.zeros(N, 1, T_, T_)
    for n in range(N):
        for t in range(T_):
            hits = masks[n, t].nonzero()
            pattern[n, 0, t, hits[0, 0] if len(hits) else t] = 1.0
    return pattern


@pytest.mark.parametrize("kind", ["previous_token", "duplicate_token", "induction"])
def test_score_is_one_on_exact_pattern_and_near_zero_on_uniform(probe_set, kind):
    masks = target_masks(probe_set.tokens)
    queries = probe_set.repeat_queries()
    score, n = pattern_score(_exact_pattern(probe_set.tokens, kind), masks[kind], queries)
    assert n == int(queries.sum())
    assert score.item() / n == pytest.approx(1.0)
    uniform, _ = pattern_score(uniform_pattern(*probe_set.tokens.shape), masks[kind], queries)
    assert uniform.item() / n < 0.1
    for other in {"previous_token", "duplicate_token", "induction"} - {kind}:
        s, m = pattern_score(_exact_pattern(probe_set.tokens, kind), masks[other], queries)
        assert s.item() / m < 0.05  # the three behaviours are distinct on the probe set


def test_probe_set_shape_and_distinct_tokens(probe_set):
    toks, p, s = probe_set.tokens, probe_set.prefix, probe_set.seg_len
    assert toks.shape == (6, T)
    assert ((s >= T // 4) & (s <= T // 2) & (p + 2 * s <= T)).all()
    assert (probe_set.repeat_queries().sum(1) == s).all()
    for row, pi, si in zip(toks, p.tolist(), s.tolist(), strict=True):
        assert torch.equal(row[pi : pi + si], row[pi + si : pi + 2 * si])
        outside = torch.cat([row[: pi + si], row[pi + 2 * si :]])
        assert len(outside.unique()) == len(outside)  # only the designed duplicates


@pytest.mark.parametrize(
    "mixer",
    [
        {"n_heads": 4},
        {"n_heads": 4, "conv_kernel": 3, "conv_where": "qkv"},
        {"n_heads": 4, "smear_keys": True},
    ],
)
@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_capture_keeps_outputs_and_removes_hooks(mixer, pos):
    cfg = validate(tiny_raw(model__mixer=mixer, model__pos=pos), "t")
    torch.manual_seed(0)
    model = models.build(cfg.model, 16).eval()
    x = torch.randint(0, 16, (3, 24))
    with torch.no_grad():
        plain = model(x)[..., :16]
        with capture(model) as cache:
            captured = model(x)[..., :16]
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=1e-5)
    assert cache["blocks.1.attn.hook_pattern"].shape == (3, 4, 24, 24)
    assert cache["blocks.0.attn.hook_z"].shape == (3, 24, 4, 8)
    rows = cache["blocks.0.attn.hook_pattern"].sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))
    assert torch.all(cache["blocks.0.attn.hook_pattern"].triu(1) == 0)  # causal
    if mixer.get("conv_kernel"):
        assert cache["blocks.0.attn.conv.kernel"].shape == (96, 3)
    if mixer.get("smear_keys"):
        assert cache["blocks.0.attn.smear_gate"].shape == (4,)
    assert not any(p.active for p in hook_points(model).values())


def test_capture_removes_hooks_after_an_error_and_rejects_unknown_names(tiny_cfg):
    model = models.build(tiny_cfg().model, 16)
    with pytest.raises(RuntimeError), capture(model):
        raise RuntimeError("boom")
    assert not any(p.active for p in hook_points(model).values())
    with pytest.raises(KeyError, match="no hook point"), capture(model, ["blocks.9.attn.x"]):
        pass
    with capture(model, ["blocks.1.attn.hook_pattern"]) as cache:
        model(torch.zeros(1, 5, dtype=torch.long))
    assert list(cache) == ["blocks.1.attn.hook_pattern"]


def test_kernel_profile_offsets_follow_the_convolution():
    """A kernel that reads the previous token is reported at offset -1 (no flip)."""
    cfg = validate(tiny_raw(model__mixer={"n_heads": 4, "conv_kernel": 4}), "t")
    attn = models.build(cfg.model, 16).blocks[0].mixer
    with torch.no_grad():
        attn.conv.conv.weight.zero_()
        attn.conv.conv.bias.zero_()
        attn.conv.conv.weight[:, 0, 2] = 1.0  # index K - 2
    impulse = torch.zeros(1, 6, 32)
    impulse[0, 2] = 1.0  # a token at t = 2
    out = attn.conv(impulse)[0, :, 0]
    assert out.nonzero().flatten().tolist() == [3]  # read by the next position: offset -1
    prof = kernel_profile(attn.conv.conv.weight[:, 0, :])
    assert prof["offsets"] == [-3, -2, -1, 0]
    assert prof["argmax_offset"] == -1
    assert prof["mean"] == [0.0, 0.0, 1.0, 0.0]
    assert prof["peak_share"][2] == 1.0


def test_icl_positions():
    assert icl_positions(512) == (50, 500)
    assert icl_positions(128) == (12, 125)
    assert icl_positions(1024) == (100, 1000)
    with pytest.raises(ValueError):
        icl_positions(2)


def _copy_model(sign: float):
    """One head, one-hot embeddings, attention on equal tokens, OV = sign * identity."""
    raw = tiny_raw(
        model__d_model=16,
        model__n_layers=1,
        model__mixer={"n_heads": 1},
        model__pos="none",
        model__norm="none",
    )
    model = models.build(validate(raw, "t").model, 16).eval()
    attn, eye = model.blocks[0].mixer, torch.eye(16)
    with torch.no_grad():
        model.embed.weight.zero_()
        model.embed.weight[:16] = eye
        attn.qkv.weight.copy_(torch.cat([8 * eye, 8 * eye, eye]))
        attn.out.weight.copy_(sign * eye)
        model.unembed.weight.zero_()
        model.unembed.weight[:16] = eye
    return model


def test_copying_scores_on_a_hand_built_copier():
    probe = repeated_sequences(16, 8, 24, seed=1)
    copier = head_scores(_copy_model(1.0), probe)
    assert copier["scores"]["copying"][0][0] == pytest.approx(1.0)
    assert ov_copying(_copy_model(1.0))[0][0] == pytest.approx(1.0)
    assert ov_copying(_copy_model(-1.0))[0][0] == pytest.approx(-1.0)
    anti = head_scores(_copy_model(-1.0), probe)
    assert anti["scores"]["copying"][0][0] < 0.2


def test_head_scores_and_icl_on_a_tiny_model(tiny_cfg):
    from attnlab import data

    cfg = tiny_cfg()
    ds = data.build(cfg.data)
    model = models.build(cfg.model, ds.vocab_size)
    res = head_scores(model, repeated_sequences(16, 4, 24, 0))
    assert res["layers"] == [0, 1] and res["heads"] == 4
    assert len(res["scores"]["induction"]) == 2 and len(res["scores"]["induction"][0]) == 4
    assert 0.0 <= res["max_induction"]["score"] <= 1.0
    icl = icl_score(model, ds.splits["validation"], 8)
    assert len(icl["loss_by_position"]) == 24
    assert icl["sequences"] == 32
    assert (icl["early_position"], icl["late_position"]) == icl_positions(24)


def test_head_scores_of_the_layers_asked_equal_those_of_a_full_run(tiny_cfg):
    torch.manual_seed(0)
    model = models.build(tiny_cfg().model, 16)
    probe = repeated_sequences(16, 6, 24, 0)
    full = head_scores(model, probe, batch_size=4)
    one = head_scores(model, probe, batch_size=5, layers=[1])  # other batches, one layer
    assert one["layers"] == [1]
    for name, rows in one["scores"].items():
        assert rows[0] == pytest.approx(full["scores"][name][1], abs=1e-6), name
    assert one["repeat_accuracy"] == pytest.approx(full["repeat_accuracy"])
    with pytest.raises(ValueError, match=r"probes\.layers"):
        head_scores(model, probe, layers=[5])


class _PositionConfidence(torch.nn.Module):
    """A stub LM whose logit for token 0 is a[t] at position t (0 elsewhere), whatever the
    input: on a stream of zeros its loss at t is log(1 + (V - 1) e^{-a[t]}), exactly."""

    def __init__(self, a: torch.Tensor, vocab: int):
        super().__init__()
        self.a, self.vocab, self.vocab_size = a, vocab, vocab
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x):
        logits = torch.zeros(*x.shape, self.vocab)
        logits[..., 0] = self.a[: x.shape[1]]
        return logits


def test_icl_score_has_the_known_value_and_sign():
    """Late-position loss minus early-position loss, averaged over the stated windows:
    negative for a model that gets better later in the context, positive for one that
    gets worse, and equal to the value worked out by hand."""
    from attnlab.data.splits import StreamSplit

    T, V = 128, 10
    split = StreamSplit(np.zeros(T * 6 + 1, dtype=np.int64), T)
    early, late = icl_positions(T)
    w = T // 64
    for a, sign in ((torch.linspace(0.0, 6.0, T), -1), (torch.linspace(6.0, 0.0, T), 1)):
        loss = torch.log1p((V - 1) * torch.exp(-a.double()))  # (T,) per position
        want = loss[late - w : late + w + 1].mean() - loss[early - w : early + w + 1].mean()
        got = icl_score(_PositionConfidence(a, V), split, batch_size=4)
        assert got["sequences"] == 6 and got["stderr"] == pytest.approx(0.0, abs=1e-9)
        assert got["score"] == pytest.approx(float(want), rel=1e-5)
        assert np.sign(got["score"]) == sign and abs(got["score"]) > 1.0


def test_icl_score_and_frequency_buckets_leave_padding_out():
    """On padded text rows (`data.layout: rows`) only rows whose windows hold their own
    tokens count for the ICL score, and no padding target lands in a frequency bucket,
    whether padding is scored or not (before: the rows runs' ICL scores were +4.03 with
    padding unscored and -1.32 with it scored, both read off the padding)."""
    from attnlab.data.splits import RowSplit
    from attnlab.probes.frequency import loss_by_frequency

    T, V, N = 128, 10, 6
    a = torch.linspace(0.0, 6.0, T)
    zeros = np.zeros((N, T), dtype=np.int64)
    real = np.ones((N, T), dtype=bool)
    real[::2, 40:] = False  # every other row ends at 40 tokens: padding after
    model = _PositionConfidence(a, V)
    for mask in (real, np.ones_like(real)):  # padding left out of the loss, or scored
        split = RowSplit(zeros, zeros, mask, real)
        got = icl_score(model, split, batch_size=4)
        full = icl_score(model, RowSplit(zeros[1::2], zeros[1::2], mask[1::2]), batch_size=4)
        assert got["sequences"] == N // 2 and got["score"] == pytest.approx(full["score"])
        assert np.isnan(got["loss_by_position"]).sum() == 0  # the full rows cover every t
        buckets = loss_by_frequency(model, split, np.zeros(100, np.int64), 4, None)
        assert sum(b["targets"] for b in buckets.values()) == int(real.sum())
    short = RowSplit(zeros, zeros, real, np.broadcast_to(real[0], real.shape).copy())
    none = icl_score(model, short, batch_size=4)
    assert none["sequences"] == 0 and np.isnan(none["score"])


def test_pattern_stats_of_known_patterns():
    from attnlab.probes.patterns import pattern_stats, uniform_stats

    T = 6
    uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]  # (T, T)
    sink = np.zeros((T, T))
    sink[:, 0] = 1.0
    prev = np.zeros((T, T))
    prev[0, 0] = 1.0
    prev[np.arange(1, T), np.arange(T - 1)] = 1.0
    s = pattern_stats(np.stack([uniform, sink, prev]))  # (3, T, T)
    want = uniform_stats(T)
    assert s["entropy"][0] == pytest.approx(1.0)
    assert s["sink"][0] == pytest.approx(want["sink"])
    assert s["entropy"][1] == pytest.approx(0.0) and s["sink"][1] == pytest.approx(1.0)
    assert s["previous"][2] == pytest.approx(1.0) and s["diagonal"][2] == pytest.approx(0.0)


def test_frequency_buckets_cut_at_cumulative_shares():
    from attnlab.probes.frequency import frequency_buckets

    tokens = np.array([0] * 50 + [1] * 40 + [2] * 9 + [3] * 1)
    assert frequency_buckets(tokens, 5).tolist() == [0, 1, 2, 3, 4]  # 4: unseen


def test_induction_forms_at_the_first_probe_past_the_threshold():
    from attnlab.probes.ablation import INDUCTION_HEAD
    from attnlab.report.probe_section import formed_at

    recs = [
        {"split": "train", "step": 250},
        {"split": "probe", "step": 250, "max_induction": 0.01},
        {"split": "probe", "step": 500, "max_induction": INDUCTION_HEAD},
        {"split": "probe", "step": 750, "max_induction": 0.6},
    ]
    assert formed_at(recs) == 500
    assert formed_at(recs[:2]) is None


def test_probe_tokens_from_a_texts_most_frequent():
    import numpy as np

    from attnlab.config import validate
    from attnlab.probes.run import probe_set_for
    from attnlab.probes.sequences import repeated_sequences
    from tests.helpers import tiny_raw

    pool = np.array([3, 5, 7, 9])
    ps = repeated_sequences(100, 8, 16, seed=0, pool=pool)
    assert set(ps.tokens.unique().tolist()) <= set(pool.tolist())
    stream = np.array([1] * 50 + [2] * 40 + [3] * 30 + [4] + [5] * 20)
    cfg = validate(tiny_raw(probes__tokens="frequent", probes__pool=3), "t")
    ps = probe_set_for(cfg, 16, stream)
    assert set(ps.tokens.unique().tolist()) == {1, 2, 3}  # the 3 most frequent
    everything = probe_set_for(validate(tiny_raw(), "t"), 16, stream)
    assert len(everything.tokens.unique()) > 3  # `all`: every id


def test_head_probe_memory_is_bounded_and_the_scores_do_not_change(monkeypatch):
    """Long sequences are planned fewer sequences, then one layer, at a time; a plan
    forced to one layer and one sequence on a small model gives the same scores."""
    import torch

    from attnlab.config import validate
    from attnlab.models import build
    from attnlab.probes import heads
    from attnlab.probes.sequences import repeated_sequences
    from tests.helpers import tiny_raw

    raw = tiny_raw()
    raw["model"]["max_seq_len"] = 4096
    torch.manual_seed(0)
    model = build(validate(raw, "t").model, 16).eval()
    # 4 heads x 4,096² floats = 256 MiB a layer: both layers, 2 sequences a forward
    assert heads.probe_plan(model, [0, 1], 4096, 16) == (2, [[0, 1]])
    # at 8,192 one layer's pattern passes 1 GiB: one layer, one sequence at a time
    assert heads.probe_plan(model, [0, 1], 8192, 16) == (1, [[0], [1]])
    assert heads.probe_plan(model, [0, 1], 64, 16) == (16, [[0, 1]])
    probe = repeated_sequences(16, 8, 24, seed=0)
    whole = heads.head_scores(model, probe, batch_size=4)
    monkeypatch.setattr(heads, "PROBE_MEMORY", 4 * 24 * 24 * 4)  # one layer, one sequence
    assert heads.probe_plan(model, [0, 1], 24, 4) == (1, [[0], [1]])
    split = heads.head_scores(model, probe, batch_size=4)
    for name in ("previous_token", "induction", "copying"):
        torch.testing.assert_close(
            torch.tensor(split["scores"][name]), torch.tensor(whole["scores"][name])
        )
    assert split["repeat_accuracy"] == whole["repeat_accuracy"]
