"""Direct logit attribution sums exactly to the model's logit (norm frozen at the whole
stream), splits a mixer into its heads or Mamba channels, and the logit lens ends at the
model's own prediction."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.config import ModelConfig
from attnlab.config.model import MambaMixer
from attnlab.models import build
from attnlab.models.stack import output_head
from attnlab.probes.attribution import direct_logit_attribution, logit_lens

V, T = 40, 16


def _model(**kw):
    cfg = ModelConfig(d_model=32, n_layers=2, max_seq_len=T, **{"mixer": {"n_heads": 4}, **kw})
    torch.manual_seed(0)
    model = build(cfg, V)
    with torch.no_grad():  # off the initialisation, so biases and norm weights matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


CASES = {
    "attention, layernorm, mlp, biases": {"mlp": True, "mixer": {"n_heads": 4, "bias": True}},
    "attention, rmsnorm": {"norm": "rmsnorm"},
    "attention, no norm, k=3 conv": {"norm": "none", "mixer": {"n_heads": 4, "conv_kernel": 3}},
    "mamba, mlp": {"mlp": True, "pos": "none", "mixer": MambaMixer(d_state=4)},
}


def _batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, V, (3, T), generator=g)
    return x, torch.roll(x, -1, 1), torch.ones(3, T, dtype=torch.bool)


@pytest.mark.parametrize("kw", list(CASES.values()), ids=list(CASES))
def test_components_sum_to_the_logit(kw):
    """Embedding, heads (or Mamba channels), output biases and MLPs through the frozen
    final norm, plus its bias, give the model's logit of the target at every position."""
    model = _model(**kw)
    x, y, where = _batch()
    dla = direct_logit_attribution(model, x, y, where)
    assert dla["check"] < 1e-4 and len(dla["mean"]) == len(dla["names"])
    mamba = isinstance(kw.get("mixer"), MambaMixer)
    unit = "C" if mamba else "H"
    assert sum(n.startswith(f"L1{unit}") for n in dla["names"]) == (64 if mamba else 4)
    assert dla["names"][0] == "embed" and ("L1 mlp" in dla["names"]) == bool(kw.get("mlp"))


def test_a_head_that_writes_nothing_attributes_nothing():
    model = _model(mlp=True)
    E = 8
    with torch.no_grad():
        model.blocks[1].mixer.out.weight[:, 2 * E : 3 * E] = 0
    x, y, where = _batch()
    dla = direct_logit_attribution(model, x, y, where)
    assert dla["mean"][dla["names"].index("L1H2")] == 0.0
    assert dla["mean"][dla["names"].index("L1H1")] != 0.0


def test_the_logit_lens_ends_at_the_models_prediction():
    model = _model(mlp=True)
    x, y, where = _batch()
    rows = logit_lens(model, x, y, where)
    assert [r["after"] for r in rows] == ["embed", "block 0", "block 1"]
    with torch.no_grad():
        logits = F.linear(model(x, hidden=True), *output_head(model))[where]
    assert rows[-1]["loss"] == pytest.approx(float(F.cross_entropy(logits, y[where])), abs=1e-5)


@pytest.mark.parametrize(
    "kw", [CASES["attention, rmsnorm"], CASES["mamba, mlp"]], ids=["attn", "mamba"]
)
def test_by_position_breaks_the_mean_down(kw):
    """Each listed component's per-position means, weighted by the queries at each
    position of the second copy, give back its mean over every position."""
    from attnlab.probes.attribution import BY_POSITION, repeat_attribution
    from attnlab.probes.sequences import repeated_sequences

    model = _model(**kw)
    res = repeat_attribution(model, repeated_sequences(V, 12, T, seed=0))
    bp = res["by_position"]
    assert len(bp["components"]) == BY_POSITION and sum(bp["queries"]) == res["positions"]
    n = torch.tensor(bp["queries"], dtype=torch.float64)
    for name, values in bp["components"].items():
        weighted = float((torch.tensor(values, dtype=torch.float64) * n).sum() / n.sum())
        assert weighted == pytest.approx(res["mean"][res["names"].index(name)], abs=2e-3)
