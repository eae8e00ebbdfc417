"""TransformerLens interop against the real `transformer-lens` package (3.x): exported
logits, `run_with_cache` patterns, `detect_head` scores, the round trip, refusals, the
export command; and nnsight tracing an attnlab model as it stands."""

from __future__ import annotations

import pytest
import torch
import transformer_lens as tl  # the test extra installs it (3.x)

from attnlab.config.model import AttentionMixer, MambaMixer, ModelConfig
from attnlab.errors import UserError
from attnlab.interop import (
    from_hooked_transformer,
    load_exported,
    to_hooked_transformer,
)
from attnlab.models.stack import DecoderLM
from attnlab.probes.capture import all_hook_points, capture
from attnlab.probes.composition import composition_scores
from attnlab.probes.heads import PATTERN_SCORES, head_scores, pattern_score, target_masks
from attnlab.probes.intervene import ablate
from attnlab.probes.sequences import repeated_sequences
from tests.helpers import run_cli, tiny_file

V, T = 50, 24


def _model(**kw) -> DecoderLM:
    """A random decoder (weights moved off their initialisation so norms and biases
    matter) in eval mode."""
    kw.setdefault("mixer", AttentionMixer(n_heads=4))
    kw.setdefault("n_layers", 2)
    cfg = ModelConfig(d_model=32, max_seq_len=T + 8, **kw)
    torch.manual_seed(0)
    model = DecoderLM(cfg, V)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


CONFIGS = {
    "attn-only, layernorm, learned": {},
    "mlp, rmsnorm, rope": {"mlp": True, "norm": "rmsnorm", "pos": "rope"},
    "mlp, no norm, no positions, tied": {
        "mlp": True,
        "norm": "none",
        "pos": "none",
        "tie_embeddings": True,
    },
    "mlp, layernorm, sinusoidal, biases": {
        "mlp": True,
        "pos": "sinusoidal",
        "mixer": AttentionMixer(n_heads=4, bias=True),
    },
    "attn-only, rmsnorm, learned, tied": {"norm": "rmsnorm", "tie_embeddings": True},
}


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def model(request) -> DecoderLM:
    return _model(**CONFIGS[request.param])


def _tokens(seed: int = 1, n: int = 3) -> torch.Tensor:
    return torch.randint(0, V, (n, T), generator=torch.Generator().manual_seed(seed))


def test_exported_logits_equal_attnlabs(model):
    hooked = to_hooked_transformer(model)
    x = _tokens()
    with torch.no_grad():
        want, got = model(x)[..., :V], hooked(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)


def test_round_trip_is_exact(model):
    back = from_hooked_transformer(to_hooked_transformer(model))
    for field in ("pos", "norm", "mlp", "tie_embeddings", "n_layers", "d_model", "ff_width"):
        if field == "pos" and model.cfg.pos == "sinusoidal":
            assert back.cfg.pos == "learned"  # the table comes back as a learned one
            continue
        assert getattr(back.cfg, field) == getattr(model.cfg, field), field
    x = _tokens()
    with torch.no_grad():
        assert torch.equal(back(x)[..., :V], model(x)[..., :V])
    mine = {k: v[:V] if k in ("embed.weight", "unembed.weight") else v
            for k, v in model.state_dict().items()}  # fmt: skip
    theirs = back.state_dict()
    for k, v in mine.items():
        w = theirs[k][:V] if k in ("embed.weight", "unembed.weight") else theirs[k]
        if k == "pos.table":
            continue
        assert torch.equal(v, w), k


def test_run_with_cache_patterns_equal_capture(model):
    hooked = to_hooked_transformer(model)
    x = _tokens()
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(2)]
    with torch.no_grad(), capture(model, names) as mine:
        model(x)
    _, cache = hooked.run_with_cache(x)
    for name in names:
        torch.testing.assert_close(cache[name], mine[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_layers", [2, 3])
def test_composition_scores_equal_transformer_lens(n_layers):
    """Q-, K- and V-composition from attnlab's weights equal TransformerLens's
    `all_composition_scores` on the exported model (biases and norms included: both
    ignore them)."""
    model = _model(n_layers=n_layers, mlp=True, mixer=AttentionMixer(n_heads=4, bias=True))
    comp = composition_scores(model)
    hooked = to_hooked_transformer(model)
    for mode in ("Q", "K", "V"):
        want = hooked.all_composition_scores(mode)  # (N, H, N, H)
        torch.testing.assert_close(torch.tensor(comp["scores"][mode]), want, atol=1e-4, rtol=0)
    assert comp["exact"] and 0 < comp["baseline"] < 1


def test_detect_head_agrees_with_attnlabs_head_scores():
    """Where the definitions coincide: TransformerLens's `detect_head` (error_measure="mul",
    exclude_bos=False, exclude_current_token=False, one sequence) is the attention mass on
    the same 0/1 masks averaged over *every* query row (rows without a target count 0),
    so it equals attnlab's `pattern_score` summed over all queries, divided by T."""
    from transformer_lens.head_detector import detect_head

    model = _model()
    hooked = to_hooked_transformer(model)
    seg = torch.randint(0, V, (T // 2,), generator=torch.Generator().manual_seed(3))
    x = torch.cat([seg, seg])[None]  # (1, T): a repeated random segment
    hooked.to_tokens = lambda *_a, **_k: x  # tokens as given (detect_head tokenizes text)
    masks = target_masks(x)
    with torch.no_grad(), capture(model, [f"blocks.{i}.attn.hook_pattern" for i in (0, 1)]) as c:
        model(x)
    every = torch.ones_like(x, dtype=torch.bool)
    names = {"previous_token": "previous_token_head", "duplicate_token": "duplicate_token_head",
             "induction": "induction_head"}  # fmt: skip
    for ours in PATTERN_SCORES:
        theirs = detect_head(hooked, "unused", names[ours])  # (L, H)
        for layer in (0, 1):
            pattern = c[f"blocks.{layer}.attn.hook_pattern"]  # (1, H, T, T)
            summed, _ = pattern_score(pattern, masks[ours], every)
            torch.testing.assert_close(theirs[layer], summed / T, rtol=1e-5, atol=1e-6)


def test_attnlab_probes_run_on_a_transformer_lens_model():
    """A HookedTransformer made in TransformerLens (folded norms, `LNPre`) comes in; its
    logits match, and attnlab's head scores and ablation run on it."""
    cfg = tl.HookedTransformerConfig(
        n_layers=2, d_model=32, n_ctx=64, d_head=8, n_heads=4, d_vocab=V, attn_only=True,
        normalization_type="LNPre", positional_embedding_type="standard", seed=0,
        device="cpu",
    )  # fmt: skip
    hooked = tl.HookedTransformer(cfg).eval()
    model = from_hooked_transformer(hooked)
    x = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[..., :V], hooked(x), rtol=1e-5, atol=2e-5)
    scores = head_scores(model, repeated_sequences(V, 8, 32, seed=0), copying=False)
    assert len(scores["scores"]["induction"]) == 2

    def zero_head_2(z, hook):  # z (B, T, H, E)
        return z.index_fill(2, torch.tensor(2), 0)

    with torch.no_grad():
        want = hooked.run_with_hooks(x, fwd_hooks=[("blocks.1.attn.hook_z", zero_head_2)])
    with torch.no_grad(), ablate(model, {1: [2]}):
        got = model(x)[..., :V]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize(
    ("kw", "option"),
    [
        ({"mixer": AttentionMixer(n_heads=4, conv_kernel=3)}, "model.mixer.conv_kernel"),
        ({"mixer": AttentionMixer(n_heads=4, smear_keys=True)}, "model.mixer.smear_keys"),
        ({"mixer": MambaMixer(), "pos": "none"}, "model.mixer.name: mamba"),
    ],
)
def test_what_transformer_lens_cannot_express_is_named(kw, option):
    with pytest.raises(UserError, match=option):
        to_hooked_transformer(_model(**kw))


def test_what_attnlab_cannot_express_is_named():
    cfg = tl.HookedTransformerConfig(
        n_layers=1, d_model=32, n_ctx=32, d_head=8, n_heads=4, d_vocab=V, attn_only=True,
        positional_embedding_type="shortformer", device="cpu",
    )  # fmt: skip
    with pytest.raises(UserError, match="positional_embedding_type = 'shortformer'"):
        from_hooked_transformer(tl.HookedTransformer(cfg))


def test_export_command_writes_a_model_transformer_lens_loads(tmp_path, monkeypatch, capsys):
    from attnlab.probes.run import load_trained

    run = tmp_path / "run"
    code, text, _ = run_cli(["train", str(tiny_file(tmp_path)), "--out", str(run)], monkeypatch,
                            capsys)  # fmt: skip
    assert code == 0, text
    out = tmp_path / "tl"
    code, text, err = run_cli(["export", str(run), str(out)], monkeypatch, capsys)
    assert code == 0, err
    assert {"config.json", "hooked_transformer.safetensors", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    hooked = load_exported(out)
    _, model, _ = load_trained(run)
    x = torch.randint(0, model.vocab_size, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(hooked(x), model(x)[..., : model.vocab_size], rtol=1e-5,
                                   atol=2e-5)  # fmt: skip
    # a second export into the same folder is refused, and so is an unknown format
    code, _, err = run_cli(["export", str(run), str(out)], monkeypatch, capsys)
    assert code == 2 and "not empty" in err
    code, _, err = run_cli(["export", str(run), str(tmp_path / "x"), "--to", "onnx"],
                           monkeypatch, capsys)  # fmt: skip
    assert code == 2 and "transformer-lens" in err


def test_nnsight_traces_and_edits_an_attnlab_model():
    """nnsight wraps modules without forward hooks, so the attention's fast path would skip
    its hook points; `all_hook_points` makes them run (attnlab's side, fixed there)."""
    from nnsight import NNsight

    model = _model()
    x = _tokens()
    traced = NNsight(model)
    with all_hook_points(model), traced.trace(x):
        resid = traced.blocks[0].output.save()
        pattern = traced.blocks[1].mixer.hook_pattern.output.save()
    with (
        torch.no_grad(),
        capture(model, ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern"]) as c,
    ):
        model(x)
    torch.testing.assert_close(resid, c["blocks.0.hook_resid_post"])
    torch.testing.assert_close(pattern, c["blocks.1.attn.hook_pattern"])
    with all_hook_points(model), traced.trace(x):
        traced.blocks[1].mixer.hook_z.output[:, :, 0] = 0
        edited = traced.output.save()
    with torch.no_grad(), ablate(model, {1: [0]}):
        want = model(x)
    torch.testing.assert_close(edited[..., :V], want[..., :V])
    assert not model.blocks[1].mixer.hook_pattern.always  # restored on exit
