"""TransformerLens 4 interop against the real `transformer-lens` package: an attnlab model
opened as a `TransformerBridge` (over its Hugging Face export) gives equal logits and
`run_with_cache` patterns, `detect_head` and `all_composition_scores` agree with attnlab's
head and composition scores, the way back is exact, a model made on the TransformerLens
side takes attnlab's probes and ablations, refusals are named, and the export command's
folder boots; and nnsight tracing an attnlab model as it stands."""

from __future__ import annotations

import pytest
import torch

from attnlab.config.model import AttentionMixer, MambaMixer, ModelConfig
from attnlab.errors import UserError
from attnlab.interop import boot_bridge, from_transformer_bridge, to_transformer_bridge
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
    "attn-only, learned": {},
    "mlp, sinusoidal, biases, tied": {
        "mlp": True,
        "pos": "sinusoidal",
        "tie_embeddings": True,
        "mixer": AttentionMixer(n_heads=4, bias=True),
    },
    "mlp tanh, no positions": {"mlp": True, "pos": "none", "mlp_act": "gelu_tanh"},
}


def _tokens(seed: int = 1, n: int = 3) -> torch.Tensor:
    return torch.randint(0, V, (n, T), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def pair(request, tmp_path_factory):
    """(attnlab model, its TransformerBridge)."""
    model = _model(**CONFIGS[request.param])
    return model, to_transformer_bridge(model, tmp_path_factory.mktemp("bridge"))


def test_bridge_logits_and_patterns_equal_attnlabs(pair):
    model, bridge = pair
    x = _tokens()
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(2)]
    with torch.no_grad(), capture(model, names) as mine:
        want = model(x)[..., :V]
    with torch.no_grad():
        got, cache = bridge.run_with_cache(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)
    for name in names:  # (B, H, T, T) each
        torch.testing.assert_close(cache[name], mine[name], rtol=1e-5, atol=1e-6)


def test_round_trip_through_the_bridge_is_exact(pair):
    model, bridge = pair
    back = from_transformer_bridge(bridge)
    for field in ("norm", "mlp", "mlp_act", "tie_embeddings", "n_layers", "d_model"):
        assert getattr(back.cfg, field) == getattr(model.cfg, field), field
    x = _tokens(2)
    with torch.no_grad():
        torch.testing.assert_close(back(x)[..., :V], model(x)[..., :V], rtol=1e-5, atol=1e-5)


def test_composition_scores_equal_transformer_lens(pair):
    """Q-, K- and V-composition from attnlab's weights equal TransformerLens's
    `all_composition_scores` on the bridge (biases and norms included: both ignore them)."""
    model, bridge = pair
    comp = composition_scores(model)
    for mode in ("Q", "K", "V"):
        theirs = bridge.all_composition_scores(mode)  # (N, H, N, H)
        want = torch.as_tensor(theirs.detach())
        torch.testing.assert_close(torch.tensor(comp["scores"][mode]), want, atol=1e-4, rtol=0)
    assert comp["exact"] and 0 < comp["baseline"] < 1


def test_detect_head_agrees_with_attnlabs_head_scores(pair):
    """Where the definitions coincide: TransformerLens's `detect_head` (error_measure="mul",
    exclude_bos=False, exclude_current_token=False, one sequence) is the attention mass on
    the same 0/1 masks averaged over *every* query row (rows without a target count 0),
    so it equals attnlab's `pattern_score` summed over all queries, divided by T."""
    from transformer_lens.head_detector import detect_head

    model, bridge = pair
    seg = torch.randint(0, V, (T // 2,), generator=torch.Generator().manual_seed(3))
    x = torch.cat([seg, seg])[None]  # (1, T): a repeated random segment
    masks = target_masks(x)
    with torch.no_grad(), capture(model, [f"blocks.{i}.attn.hook_pattern" for i in (0, 1)]) as c:
        model(x)
    every = torch.ones_like(x, dtype=torch.bool)
    names = {"previous_token": "previous_token_head", "duplicate_token": "duplicate_token_head",
             "induction": "induction_head"}  # fmt: skip
    to_tokens = bridge.to_tokens
    bridge.to_tokens = lambda *_a, **_k: x  # tokens as given (detect_head tokenizes text)
    try:
        for ours in PATTERN_SCORES:
            theirs = detect_head(bridge, "unused", names[ours])  # (L, H)
            for layer in (0, 1):
                pattern = c[f"blocks.{layer}.attn.hook_pattern"]  # (1, H, T, T)
                summed, _ = pattern_score(pattern, masks[ours], every)
                torch.testing.assert_close(theirs[layer], summed / T, rtol=1e-5, atol=1e-6)
    finally:
        bridge.to_tokens = to_tokens


def test_attnlab_probes_run_on_a_transformer_lens_model(tmp_path):
    """A model made on the TransformerLens side (a bridge over Hugging Face's own GPT-2
    layout: tanh GELU, biases, tied head) comes in; its logits match, attnlab's head scores
    run on it, and zeroing a head in attnlab equals zeroing its `hook_z` in the bridge."""
    import transformers

    cfg = transformers.GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                  bos_token_id=None, eos_token_id=None)  # fmt: skip
    torch.manual_seed(5)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path)
    bridge = boot_bridge(tmp_path)
    model = from_transformer_bridge(bridge)
    x = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[..., :V], bridge(x), rtol=1e-5, atol=2e-5)
    scores = head_scores(model, repeated_sequences(V, 8, 32, seed=0), copying=False)
    assert len(scores["scores"]["induction"]) == 2

    def zero_head_2(z, hook):  # z (B, T, H, E)
        return z.index_fill(2, torch.tensor(2), 0)

    with torch.no_grad():
        want = bridge.run_with_hooks(x, fwd_hooks=[("blocks.1.attn.hook_z", zero_head_2)])
        unedited = bridge(x)
    with torch.no_grad(), ablate(model, {1: [2]}):
        got = model(x)[..., :V]
    assert not torch.allclose(want, unedited)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)


def test_a_mamba_model_opens_in_transformer_lens(tmp_path):
    model = _model(mixer=MambaMixer(d_state=4, d_conv=3), norm="rmsnorm", pos="none")
    bridge = to_transformer_bridge(model, tmp_path)
    x = _tokens(4)
    with torch.no_grad():
        torch.testing.assert_close(bridge(x), model(x)[..., :V], rtol=1e-4, atol=1e-4)
        back = from_transformer_bridge(bridge)
        torch.testing.assert_close(back(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kw", "option"),
    [
        ({"mixer": AttentionMixer(n_heads=4, conv_kernel=3)}, "model.mixer.conv_kernel"),
        ({"mixer": AttentionMixer(n_heads=4, smear_keys=True)}, "model.mixer.smear_keys"),
        ({"pos": "rope"}, "model.pos: rope"),
    ],
)
def test_what_the_export_cannot_express_is_named(kw, option, tmp_path):
    with pytest.raises(UserError, match=option):
        to_transformer_bridge(_model(**kw), tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_export_command_writes_a_folder_transformer_lens_boots(tmp_path, monkeypatch, capsys):
    from attnlab.probes.run import load_trained

    run = tmp_path / "run"
    code, text, _ = run_cli(["train", str(tiny_file(tmp_path)), "--out", str(run)], monkeypatch,
                            capsys)  # fmt: skip
    assert code == 0, text
    out = tmp_path / "tl"
    code, text, err = run_cli(["export", str(run), str(out), "--to", "transformer-lens"],
                              monkeypatch, capsys)  # fmt: skip
    assert code == 0, err
    readme = (out / "README.md").read_text()
    assert readme.index("TransformerBridge") < readme.index("With Hugging Face")
    bridge = boot_bridge(out)
    _, model, _ = load_trained(run)
    x = torch.randint(0, model.vocab_size, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(bridge(x), model(x)[..., : model.vocab_size], rtol=1e-5,
                                   atol=2e-5)  # fmt: skip
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
