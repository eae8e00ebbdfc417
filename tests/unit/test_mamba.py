"""The Mamba mixer: equal to its per-step reference loop (outputs and gradients), causal,
initialised as documented, configured with clear errors, and equal to mambapy's block."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from attnlab import models
from attnlab.config.schema import RunConfig
from attnlab.models.mamba import Mamba
from attnlab.probes.capture import capture

DISCRETIZATIONS = ["zoh_approx", "zoh", "bilinear"]
CASES = [
    *itertools.product(
        DISCRETIZATIONS,
        ["sequential", "parallel", "log"],
        ["learned", "constant", "positional"],
        [True],
    ),
    *itertools.product(DISCRETIZATIONS, ["parallel"], ["learned", "constant"], [False]),
]


@pytest.mark.parametrize(("disc", "method", "dt", "selective"), CASES)
def test_mixer_equals_reference_loop(disc, method, dt, selective):
    torch.manual_seed(0)
    # dt_max 3 and A up to -4: ΔA < -2 happens, so bilinear Ā < 0 is covered
    m = Mamba(
        16,
        d_state=4,
        d_conv=3,
        discretization=disc,
        scan=method,
        dt=dt,
        dt_max=3.0,
        selective=selective,
    )
    m = m.double()
    u = torch.randn(2, 11, 16, dtype=torch.float64, requires_grad=True)
    y, y_ref = m(u), m.forward_ref(u)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    w = torch.randn_like(y)
    params = [u, *(p for p in m.parameters() if p.requires_grad)]
    got = torch.autograd.grad((y * w).sum(), params)
    want = torch.autograd.grad((y_ref * w).sum(), params)
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10)


@pytest.mark.parametrize("disc", DISCRETIZATIONS)
def test_time_invariant_mixer_is_a_causal_convolution(disc):
    """selective: false. The SSM's output is the SSM input convolved with the kernel
    K[e, l] = Σ_n C Ā^l B̄ that the parameters imply (computed here from the formulas, in
    float64), plus D x; input-dependent B, C or Δ would break this."""
    torch.manual_seed(0)
    m = Mamba(8, d_state=4, discretization=disc, selective=False, dt_max=3.0).double()
    with torch.no_grad():
        m.A_log.add_(0.3 * torch.randn_like(m.A_log))
        m.B_lti.add_(0.5 * torch.randn_like(m.B_lti))
    u = torch.randn(2, 30, 8, dtype=torch.float64)
    with capture(m, ["hook_ssm_in", "hook_ssm_out"]) as cache:
        m(u)
    x, y = cache["hook_ssm_in"], cache["hook_ssm_out"]  # (B, T, E)
    dt = F.softplus(m.dt_bias.detach())[:, None]  # (E, 1)
    A, B, C = -m.A_log.detach().exp(), m.B_lti.detach(), m.C_lti.detach()  # (E, N)
    if disc == "bilinear":
        a_bar, b_bar = (1 + dt * A / 2) / (1 - dt * A / 2), dt * B / (1 - dt * A / 2)
    else:
        a_bar = (dt * A).exp()
        b_bar = (a_bar - 1) / A * B if disc == "zoh" else dt * B
    T = x.shape[1]
    K = torch.stack([(C * a_bar**lag * b_bar).sum(-1) for lag in range(T)], -1)  # (E, T)
    want = torch.zeros_like(x)
    for t in range(T):
        for s in range(t + 1):
            want[:, t] += K[:, t - s] * x[:, s]
    want += m.D.detach() * x
    torch.testing.assert_close(y, want, rtol=0, atol=1e-10)
    assert m.x_proj is None and m.dt_proj is None  # nothing reads the input to set B, C, Δ


def test_constant_delta_still_selects():
    """The contrast: the SSM of `selective: false` is linear in its input (a convolution);
    with input-dependent B and C it is not, even when Δ is a constant (`dt: constant`,
    which is therefore no time-invariant ablation)."""
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    for dt, selective, linear in (("constant", True, False), ("learned", False, True)):
        torch.manual_seed(0)
        m = Mamba(8, d_state=4, dt=dt, selective=selective).double()
        ssm = m._selective if selective else m._lti
        with torch.no_grad():
            y1, y2 = ssm(x, 2, 12), ssm(2 * x, 2, 12)
        gap = float((y2 - 2 * y1).abs().max() / y1.abs().max())
        assert (gap < 1e-12) == linear, (dt, selective, gap)


def test_weight_decay_skips_a_log_and_d():
    from attnlab.config.schema import TrainConfig
    from attnlab.train.optim import make_optimizer

    for selective in (True, False):
        model = models.build(_cfg(d_state=4, selective=selective).model, 32)
        opt = make_optimizer(model, TrainConfig(weight_decay=0.1))
        decayed = {id(p) for p in opt.param_groups[0]["params"]}
        assert opt.param_groups[0]["weight_decay"] == 0.1
        assert opt.param_groups[1]["weight_decay"] == 0.0
        names = {n for n, p in model.named_parameters() if id(p) in decayed}
        assert not any(n.endswith(("A_log", ".D", "dt_bias", "B_lti")) for n in names), names
        assert "blocks.0.mixer.in_proj.weight" in names and "embed.weight" in names
        if not selective:
            assert "blocks.0.mixer.C_lti" in names  # S4D decays C, not A, B, Δ


def test_head_scores_of_a_mamba_model_come_from_its_hidden_attention():
    """Mamba layers are scored from α's shares of influence, one channel at a time (the
    copying scores need an attention head: none); the uniform baseline is a mean."""
    from attnlab.probes.heads import head_scores
    from attnlab.probes.sequences import repeated_sequences

    model = models.build(_cfg(d_state=4).model, 32)
    E = model.blocks[0].mixer.d_inner
    probe = repeated_sequences(32, 16, 48, seed=0)
    res = head_scores(model, probe, batch_size=8)
    assert res["layers"] == [0, 1] and res["heads"] == E
    assert res["units"] == {"0": "channel", "1": "channel"}
    for name in ("previous_token", "duplicate_token", "induction"):
        assert res["scored_queries"][name] > 0
        assert 0 < res["uniform"][name] < 0.2, (name, res["uniform"][name])
        scores = torch.tensor(res["scores"][name])  # (L, E)
        assert scores.shape == (2, E) and ((scores >= 0) & (scores <= 1)).all()
    assert all(math.isnan(v) for row in res["scores"]["copying"] for v in row)
    assert res["max_induction"]["score"] is not None
    assert 0 <= res["repeat_accuracy"] <= 1 and model.training


def test_as_heads_reads_alpha_channel_by_channel():
    """A Mamba α whose channel 0 is the identity and whose others look one step back
    gives exactly those heads, one per channel: an `as_heads` that ignored α (a uniform
    pattern), averaged channels or mixed them up fails here."""
    from attnlab.probes.heads import as_heads, layer_heads

    model = models.build(_cfg(d_state=4).model, 32)
    mixer = model.blocks[0].mixer
    E, T = mixer.d_inner, 6
    assert layer_heads(mixer) == E
    eye, back = torch.eye(T), torch.diag(torch.ones(T - 1), -1)
    back[0, 0] = 1.0  # position 0 has no past: itself
    alpha = 0.5 * back.expand(2, E, T, T).clone()  # (B, E, T, S)
    alpha[:, 0] = -3.0 * eye  # channel 0: the identity (signed: |α| counts)
    heads = as_heads(alpha, mixer)  # (B, E, T, S)
    assert heads.shape == (2, E, T, T)
    torch.testing.assert_close(heads[:, 0], eye.expand(2, T, T))
    torch.testing.assert_close(heads[:, 1:], back.expand(2, E - 1, T, T))


def test_channel_ablation_acts_on_the_scored_channel():
    """Ablating a Mamba channel zeroes that channel of `hook_ssm_out` and nothing else,
    and the ablation table scores Mamba layers channel by channel."""
    from attnlab.probes import ablate, capture
    from attnlab.probes.ablation import MAMBA_ABLATED_CHANNELS, ablation_table
    from attnlab.probes.heads import head_scores
    from attnlab.probes.sequences import repeated_sequences

    model = models.build(_cfg(d_state=4).model, 32).eval()
    x = torch.randint(0, 32, (2, 10), generator=torch.Generator().manual_seed(0))
    name = "blocks.1.mamba.hook_ssm_out"
    with torch.no_grad(), capture(model, [name]) as clean:
        model(x)
    with torch.no_grad(), ablate(model, {1: [3]}), capture(model, [name]) as cut:
        model(x)
    assert (cut[name][..., 3] == 0).all()
    others = [e for e in range(cut[name].shape[-1]) if e != 3]
    torch.testing.assert_close(cut[name][..., others], clean[name][..., others])
    probe = repeated_sequences(32, 8, 24, seed=0)
    scores = head_scores(model, probe, batch_size=8)
    table = ablation_table(
        model, probe, scores, 8, "mean_pos", repeated_sequences(32, 8, 24, seed=1)
    )
    per_layer = {r["layer"] for r in table["heads"]}
    assert per_layer == {0, 1} and len(table["heads"]) <= 2 * 2 * MAMBA_ABLATED_CHANNELS
    assert any("top" in g["what"] and "induction channels" in g["what"] for g in table["groups"])
    assert table["circuit"] == {"skipped": table["circuit"]["skipped"]}
    assert table["patching"]["layers"] == []


def test_bilinear_a_bar_goes_negative_and_all_scans_agree():
    torch.manual_seed(1)
    outs = {}
    for method in ("sequential", "parallel", "log"):
        torch.manual_seed(1)
        m = Mamba(8, d_state=8, discretization="bilinear", scan=method, dt_min=1.0, dt_max=3.0)
        u = torch.randn(2, 20, 8, dtype=torch.float64)
        m = m.double()
        with capture(m, ["hook_a_bar"]) as cache:  # the scan runs (no hidden attention)
            outs[method] = m(u)
        assert (cache["hook_a_bar"] < 0).any()
    torch.testing.assert_close(outs["parallel"], outs["sequential"], rtol=0, atol=1e-12)
    torch.testing.assert_close(outs["log"], outs["sequential"], rtol=0, atol=1e-10)


def _cfg(**mixer) -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {"task": "repeat_tokens", "vocab_size": 32, "seq_len": 48},
            "model": {
                "d_model": 16,
                "n_layers": 2,
                "pos": "none",
                "max_seq_len": 48,
                "mixer": {"name": "mamba", **mixer},
            },
        }
    )


@pytest.mark.parametrize(
    ("method", "selective", "dt"),
    [
        ("sequential", True, "learned"),
        ("parallel", True, "learned"),
        ("log", True, "learned"),
        ("parallel", False, "learned"),
        ("parallel", True, "positional"),
    ],
)
def test_mamba_stack_is_causal(method, selective, dt):
    cfg = _cfg(scan=method, d_state=4, selective=selective, dt=dt)
    model = models.build(cfg.model, 32)
    report = models.check_causal(model, 32, 48)
    assert report["max_change"] <= 1e-5 and report["positions"] == 48


def test_init_survives_the_stack_init():
    model = models.build(_cfg(d_state=4).model, 32)
    mixer = model.blocks[0].mixer
    torch.testing.assert_close(mixer.A_log[0], torch.log(torch.arange(1.0, 5.0)))
    assert torch.all(mixer.D == 1)
    dt = F.softplus(mixer.dt_proj.bias)  # the initial Δ at zero input
    assert dt.min() >= 1e-4 - 1e-9 and dt.max() <= 0.1 + 1e-6
    flat = models.build(_cfg(a_init="neg_identity", dt="constant").model, 32).blocks[0].mixer
    assert torch.all(flat.A_log == 0) and flat.dt_proj is None
    assert "dt_const" in flat.state_dict()  # a constant Δ is saved with the weights
    assert mixer.state_size(100) == mixer.d_inner * (mixer.d_state + mixer.d_conv - 1)


def test_dt_scale_divides_delta_by_sqrt_d_model():
    torch.manual_seed(0)
    a, b = Mamba(16, dt="constant"), Mamba(16, dt="constant", dt_scale=True)
    b.load_state_dict(a.state_dict())
    u = torch.randn(1, 5, 16)
    with capture(a) as ca, capture(b) as cb:
        a(u), b(u)
    torch.testing.assert_close(cb["hook_dt"] * math.sqrt(16), ca["hook_dt"])


def test_probe_names_in_a_stack():
    model = models.build(_cfg(d_state=4).model, 32)
    with capture(model) as cache:
        model(torch.randint(0, 32, (3, 10)))
    assert cache["blocks.1.mamba.hook_dt"].shape == (3, 10, 32)
    assert cache["blocks.1.mamba.hook_a_bar"].shape == (3, 10, 32, 4)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ({"pos": "rope", "mixer": {"name": "mamba"}}, "rotary"),
        ({"arch": "seq2seq", "mixer": {"name": "mamba"}}, "seq2seq"),
        ({"mixer": {"name": "mamba", "dt_min": 0.5, "dt_max": 0.1}}, "dt_min"),
        ({"mixer": {"name": "mamba", "scan": "fast"}}, "scan"),
        ({"mixer": {"name": "mamba", "n_heads": 4}}, "n_heads"),
    ],
)
def test_config_errors(model, match):
    with pytest.raises(ValueError, match=match):
        RunConfig.model_validate({"data": {"task": "repeat_tokens"}, "model": model})


def test_block_equals_mambapy():
    """Integration: mambapy's MambaBlock with our weights gives our outputs (zoh_approx)."""
    import mambapy.mamba as mp  # the test extra installs it: a missing reference fails

    torch.manual_seed(0)
    ours = Mamba(16, d_state=8, d_conv=4, dt_rank=3)
    theirs = mp.MambaBlock(mp.MambaConfig(d_model=16, n_layers=1, d_state=8, dt_rank=3))
    sd = ours.state_dict()
    theirs.load_state_dict(
        {
            "in_proj.weight": sd["in_proj.weight"],
            "conv1d.weight": sd["conv.conv.weight"],
            "conv1d.bias": sd["conv.conv.bias"],
            "x_proj.weight": sd["x_proj.weight"],
            "dt_proj.weight": sd["dt_proj.weight"],
            "dt_proj.bias": sd["dt_proj.bias"],
            "A_log": sd["A_log"],
            "D": sd["D"],
            "out_proj.weight": sd["out.weight"],
        }
    )
    u = torch.randn(2, 32, 16)
    torch.testing.assert_close(ours(u), theirs(u), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("disc", ["zoh_approx", "zoh", "bilinear"])
def test_mamba_trains_under_bf16_autocast(disc):
    """The scan runs in float32 inside autocast, so forward and backward agree in dtype."""
    torch.manual_seed(0)
    m = Mamba(16, d_state=4, discretization=disc)
    u = torch.randn(2, 9, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(u)
    y.float().square().mean().backward()
    ref = m(u)
    assert torch.isfinite(m.A_log.grad).all() and m.A_log.grad.dtype == torch.float32
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)


def test_positional_delta_and_frozen_a():
    """dt: positional gives every input the same Δ at a position (learned per position);
    a_trained: false leaves A at its start while the rest trains."""
    torch.manual_seed(0)
    m = Mamba(8, d_state=4, dt="positional", a_init="neg_identity", a_trained=False)
    assert not m.A_log.requires_grad and m.dt_pos.shape == (1024, 16)
    with capture(m, ["hook_dt"]) as cache:
        m(torch.randn(3, 6, 8))
    dt = cache["hook_dt"]  # (B, T, E)
    torch.testing.assert_close(dt[0], dt[2])  # the same for every input
    m.dt_pos.data[2] += 1.0
    with capture(m, ["hook_dt"]) as cache:
        m(torch.randn(1, 6, 8))
    assert not torch.allclose(cache["hook_dt"][0, 2], dt[0, 2])  # per position
    with pytest.raises(ValueError, match="needs selective"):
        Mamba(8, dt="positional", selective=False)


@pytest.mark.parametrize(("disc", "dt", "selective"), sorted({(d, m, s) for d, _, m, s in CASES}))
def test_hidden_attention_reproduces_the_scan(disc, dt, selective):
    """Ali et al. 2024: y_t = Σ_s α_{t,s} x_s + D x_t with α = C_t (Π Ā) B̄_s, to float64
    precision, for every discretisation (bilinear Ā < 0 included), Δ mode and the LTI
    mixer; and a forward that listens at `hook_pattern` computes the same output."""
    torch.manual_seed(1)
    m = Mamba(16, d_state=4, d_conv=3, discretization=disc, dt=dt, dt_max=3.0, selective=selective)
    m = m.double()
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    with capture(m, ["hook_ssm_in", "hook_ssm_out", "hook_a_bar"]) as cache:
        fast = m(u)
    x, y = cache["hook_ssm_in"], cache["hook_ssm_out"]  # (B, T, E) each
    if disc == "bilinear" and selective:
        assert (cache["hook_a_bar"] < 0).any()  # ΔA < -2 somewhere: Ā < 0 is covered
    alpha = m.hidden_attention(x)  # (B, E, T, S)
    assert alpha.shape == (2, 32, 9, 9)
    assert torch.equal(alpha.triu(1), torch.zeros_like(alpha))  # causal
    rebuilt = torch.einsum("bets,bse->bte", alpha, x) + m.D * x
    torch.testing.assert_close(rebuilt, y, rtol=0, atol=1e-10)
    with capture(m, ["hook_pattern"]) as cache:
        explicit = m(u)
    torch.testing.assert_close(explicit, fast, rtol=0, atol=1e-10)
    torch.testing.assert_close(cache["hook_pattern"], alpha, rtol=0, atol=0)
