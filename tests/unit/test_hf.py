"""Hugging Face interop against the real `transformers` package: an attnlab decoder as
GPT-2 (`AutoModelForCausalLM.from_pretrained` offline) with equal logits and attention
patterns, GPT-2 back into attnlab (its tanh GELU included), refusals by name, and the
export command."""

from __future__ import annotations

import pytest
import torch
import transformers

from attnlab.config.model import AttentionMixer, MambaMixer
from attnlab.errors import UserError
from attnlab.interop import from_gpt2, to_gpt2
from attnlab.probes.capture import capture
from tests.helpers import run_cli, tiny_file
from tests.unit.test_interop import T, V, _model

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


def _tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (3, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kw", list(CONFIGS.values()), ids=list(CONFIGS))
def test_gpt2_gives_attnlabs_logits_and_patterns(kw, tmp_path):
    model, x = _model(**kw), _tokens()
    hf = to_gpt2(model)
    hf.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, attn_implementation="eager"
    )
    assert isinstance(loaded, transformers.GPT2LMHeadModel)
    with torch.no_grad(), capture(model, lambda n: n.endswith("hook_pattern")) as cache:
        ours = model(x)[..., :V]
        theirs = loaded(x, output_attentions=True)
    torch.testing.assert_close(theirs.logits, ours, atol=1e-5, rtol=1e-5)
    for i, att in enumerate(theirs.attentions):  # (B, H, T, T) each
        torch.testing.assert_close(
            att, cache[f"blocks.{i}.attn.hook_pattern"], atol=1e-6, rtol=1e-5
        )


@pytest.mark.parametrize("kw", list(CONFIGS.values()), ids=list(CONFIGS))
def test_round_trip_through_gpt2_is_exact(kw):
    model, x = _model(**kw), _tokens(2)
    back = from_gpt2(to_gpt2(model))
    assert back.cfg.mlp == model.cfg.mlp and back.cfg.mlp_act == model.cfg.mlp_act
    with torch.no_grad():
        torch.testing.assert_close(back(x)[..., :V], model(x)[..., :V], atol=1e-5, rtol=1e-5)


def test_a_gpt2_model_loads_into_attnlab():
    """GPT-2's own layout (tanh GELU, biases, tied head, width-4 MLP), random weights."""
    cfg = transformers.GPT2Config(
        vocab_size=V,
        n_positions=T,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=None,
        eos_token_id=None,
    )
    torch.manual_seed(3)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # as trained: biases and norms off their initial values
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model = from_gpt2(hf)
    assert model.cfg.mlp_act == "gelu_tanh" and model.cfg.tie_embeddings and model.cfg.mixer.bias
    x = _tokens(3)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[..., :V], hf(x).logits, atol=1e-5, rtol=1e-5)
    cfg.activation_function = "relu"
    with pytest.raises(UserError, match="activation_function"):
        from_gpt2(transformers.GPT2LMHeadModel(cfg))


@pytest.mark.parametrize(
    ("kw", "option"),
    [
        ({"pos": "rope"}, "model.pos: rope"),
        ({"norm": "rmsnorm"}, "model.norm: rmsnorm"),
        ({"mixer": AttentionMixer(n_heads=4, conv_kernel=3)}, "conv_kernel"),
        ({"mixer": AttentionMixer(n_heads=4, smear_keys=True)}, "smear_keys"),
        ({"mixer": MambaMixer(d_state=4), "pos": "none"}, "mixer.name: mamba"),
    ],
)
def test_what_gpt2_cannot_express_is_named(kw, option):
    with pytest.raises(UserError, match=option):
        to_gpt2(_model(**kw))


def test_export_command_writes_a_model_transformers_loads(tmp_path, monkeypatch, capsys):
    run, out = tmp_path / "run", tmp_path / "hf"
    code, text, _ = run_cli(
        ["train", str(tiny_file(tmp_path)), "--out", str(run)], monkeypatch, capsys
    )
    assert code == 0, text
    code, text, err = run_cli(["export", str(run), "--to", "hf", str(out)], monkeypatch, capsys)
    assert code == 0, err
    assert (out / "model.safetensors").is_file() and "AutoModelForCausalLM" in (
        out / "README.md"
    ).read_text()
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    from attnlab.probes.run import load_trained

    _, model, _ = load_trained(run, "final")
    x = torch.randint(0, model.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(x).logits, model(x)[..., : model.vocab_size], atol=1e-5, rtol=1e-5
        )
    if (run / "tokenizer.json").is_file():
        tok = transformers.AutoTokenizer.from_pretrained(out)
        assert tok("ab")["input_ids"]
    code, _, err = run_cli(["export", str(run), "--to", "hf", str(out)], monkeypatch, capsys)
    assert code != 0 and "not empty" in err


@pytest.mark.parametrize("tied", [False, True])
def test_mamba_for_causal_lm_gives_attnlabs_logits(tied, tmp_path):
    """A selective zoh_approx Mamba as Hugging Face's MambaForCausalLM, saved and loaded
    back with AutoModelForCausalLM: the same logits; other discretisations are refused."""
    from attnlab.interop.hf import to_mamba

    model = _model(
        mixer=MambaMixer(d_state=4, d_conv=3), norm="rmsnorm", pos="none", tie_embeddings=tied
    )
    hf = to_mamba(model)
    hf.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, transformers.MambaForCausalLM)
    x = _tokens(4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x)[..., :V], atol=1e-4, rtol=1e-4)
    for kw, option in [
        ({"discretization": "zoh"}, "discretization"),
        ({"selective": False}, "selective"),
    ]:
        bad = _model(mixer=MambaMixer(d_state=4, **kw), norm="rmsnorm", pos="none")
        with pytest.raises(UserError, match=option):
            to_mamba(bad)
    with pytest.raises(UserError, match=r"model\.pos"):
        to_mamba(_model(mixer=MambaMixer(d_state=4), norm="rmsnorm"))


def test_export_command_writes_a_mamba_run_as_mamba_for_causal_lm(tmp_path, monkeypatch, capsys):
    run, out = tmp_path / "run", tmp_path / "hf"
    cfg = tiny_file(
        tmp_path,
        model__mixer={"name": "mamba", "d_state": 4},
        model__norm="rmsnorm",
        model__pos="none",
        train__max_steps=4,
    )
    code, _, err = run_cli(["train", str(cfg), "--out", str(run)], monkeypatch, capsys)
    assert code == 0, err
    code, _, err = run_cli(["export", str(run), "--to", "hf", str(out)], monkeypatch, capsys)
    assert code == 0, err
    assert "MambaForCausalLM" in (out / "README.md").read_text()
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    from attnlab.probes.run import load_trained

    _, model, _ = load_trained(run, "final")
    x = torch.randint(0, model.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)[..., : model.vocab_size]
        torch.testing.assert_close(loaded(x).logits, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bias", [False, True])
def test_a_mamba_for_causal_lm_loads_into_attnlab(bias, tmp_path):
    """Hugging Face's own Mamba (its eps, Δ rank, projection biases; random weights moved
    off their start) comes in through `from_hf` with equal logits; a non-SiLU one is refused
    by name, and so is a family attnlab does not read."""
    from attnlab.interop import from_hf

    cfg = transformers.MambaConfig(
        vocab_size=V, hidden_size=32, state_size=4, num_hidden_layers=2, expand=2,
        conv_kernel=3, time_step_rank=3, use_bias=bias, layer_norm_epsilon=1e-5,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )  # fmt: skip
    torch.manual_seed(6)
    hf = transformers.MambaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    hf.save_pretrained(tmp_path)
    model = from_hf(tmp_path)
    assert model.cfg.mixer.name == "mamba" and model.cfg.mixer.dt_rank == 3
    x = _tokens(5)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[..., :V], hf(x).logits, atol=1e-4, rtol=1e-4)
    cfg.hidden_act = "gelu"
    with pytest.raises(UserError, match="hidden_act"):
        from_hf(transformers.MambaForCausalLM(cfg))
    bert = transformers.BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=4, intermediate_size=8)  # fmt: skip
    with pytest.raises(UserError, match="GPT2LMHeadModel and MambaForCausalLM"):
        from_hf(transformers.BertLMHeadModel(bert))
