"""attnlab's decoder-only attention models to and from Hugging Face `transformers`' GPT-2
(`GPT2LMHeadModel`, which `AutoModelForCausalLM` loads).

Legend: D model width, H heads, E head width (D / H), V vocabulary, F feed-forward width,
L position table length (GPT-2's `n_positions`).

GPT-2 is a pre-norm residual stack like attnlab's decoder (`x + attn(ln_1(x))`, `x +
mlp(ln_2(x))`, `ln_f`, an unembedding), so a model maps onto it weight for weight:

| attnlab | GPT-2 |
|---|---|
| `embed.weight[:V]` (V, D) | `transformer.wte` |
| `pos: learned` (L, D) / `sinusoidal` (its table) / `none` (zeros) | `transformer.wpe` (L, D) |
| `mixer.qkv.weight` (3D, D), rows `(h e)`; bias or zeros | `attn.c_attn` (Conv1D: weight (D, 3D)) |
| `mixer.out.weight` (D, D); bias or zeros | `attn.c_proj` (Conv1D: weight (D, D)) |
| `norm1`, `norm2`, `norm` (LayerNorm, eps 1e-5) | `ln_1`, `ln_2`, `ln_f` |
| `mlp.up`, `mlp.down`; `mlp_act` gelu / gelu_tanh | `mlp.c_fc`, `mlp.c_proj`; `gelu` / `gelu_new` |
| no MLP | an MLP of width 1 whose weights and biases are zero (it adds exactly 0) |
| `unembed.weight[:V]`, tied or not | `lm_head` (`tie_word_embeddings`) |

Only the V real vocabulary rows are exported (attnlab pads its rows; compare
`logits[..., :V]`). GPT-2 scales attention scores by 1/√E, as attnlab does. What GPT-2
cannot express is refused with the option's name and the reason: rotary positions
(`pos: rope`; GPT-NeoX and Llama have them, with other norms and MLPs: not mapped here),
RMSNorm or no norm (GPT-2 has LayerNorm), convolutions, smeared keys, and the
encoder-decoder and classifier architectures.

A Mamba model maps onto `MambaForCausalLM` (`to_mamba`): embeddings, per block an RMSNorm
and the mixer (`in_proj`, the depth-wise `conv1d`, `x_proj` split into Δ's rank, B and C,
`dt_proj`, `A_log`, `D`, `out_proj`), `norm_f`, `lm_head`. Exact for the selective scan
with `discretization: zoh_approx` (Ā = exp(ΔA), B̄ = ΔB, as Hugging Face computes them),
learned Δ without `dt_scale`, RMSNorm, no MLP and no positions; `zoh`, `bilinear`, the
time-invariant mode, a constant or positional Δ, an MLP or positions are refused by name.

The way back: `from_gpt2` takes a `GPT2LMHeadModel` (GPT-2 itself, `gelu_new`, included),
`from_mamba` a `MambaForCausalLM` (any width, state, kernel and Δ rank; SiLU, conv bias),
and `from_hf` either, or a folder `AutoModelForCausalLM` loads; what attnlab cannot
express is refused by name. `to_hf` picks the export for a model (GPT-2 or Mamba).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from attnlab.errors import UserError
from attnlab.models.stack import DecoderLM

LN_EPS = 1e-5  # nn.LayerNorm's default, GPT-2's layer_norm_epsilon
ACTS = {"gelu": "gelu", "gelu_tanh": "gelu_new"}  # attnlab mlp_act → GPT-2 activation
FROM_ACTS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def _require_transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - transformers is a dependency here
        raise UserError(
            "Hugging Face transformers is not installed: pip install transformers"
        ) from e
    return transformers


def _plain_state(hf) -> dict[str, torch.Tensor]:
    """A Hugging Face model's float32 state under its own names: TransformerLens 4's bridge
    wraps the model's modules in place, adding `._original_component` to every name."""
    return {
        k.replace("._original_component", ""): v.detach().float()
        for k, v in hf.state_dict().items()
    }


def check_exportable(model: nn.Module) -> None:
    """Raise a UserError naming the first option of `model` GPT-2 cannot express."""
    if not isinstance(model, DecoderLM):
        raise UserError(
            f"GPT-2 is a decoder-only stack; a {type(model).__name__} (model.arch other than "
            "decoder) cannot be exported to it"
        )
    cfg, mixer = model.cfg, model.cfg.mixer
    if mixer.name != "attention":
        raise UserError(
            f"model.mixer.name: {mixer.name}: only attention maps onto GPT-2 (a Mamba model "
            "maps onto MambaForCausalLM: to_mamba)"
        )
    if mixer.conv_kernel is not None:
        raise UserError(f"model.mixer.conv_kernel: {mixer.conv_kernel}: GPT-2 has no convolution")
    if mixer.smear_keys:
        raise UserError("model.mixer.smear_keys: GPT-2 has no smeared keys")
    if cfg.pos == "rope":
        raise UserError(
            "model.pos: rope: GPT-2 has absolute positions (rotary models belong to GPT-NeoX "
            "or Llama, whose norms and MLPs differ: not mapped)"
        )
    if cfg.norm != "layernorm":
        raise UserError(f"model.norm: {cfg.norm}: GPT-2 has LayerNorm only")


def gpt2_config(model: DecoderLM):
    """The `GPT2Config` of an exportable `model`."""
    check_exportable(model)
    transformers = _require_transformers()
    cfg = model.cfg
    return transformers.GPT2Config(
        vocab_size=model.vocab_size,
        n_positions=model.max_seq_len,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layers,
        n_head=cfg.mixer.n_heads,
        n_inner=cfg.ff_width if cfg.mlp else 1,
        activation_function=ACTS[cfg.mlp_act],
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        layer_norm_epsilon=LN_EPS,
        scale_attn_weights=True,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=None,
        eos_token_id=None,
    )


def gpt2_state_dict(model: DecoderLM) -> dict[str, torch.Tensor]:
    """`model`'s weights under `GPT2LMHeadModel`'s names and layouts."""
    check_exportable(model)
    cfg, V, D = model.cfg, model.vocab_size, model.cfg.d_model
    zeros = torch.zeros
    sd = {"transformer.wte.weight": model.embed.weight[:V]}  # (V, D)
    if cfg.pos == "learned":
        sd["transformer.wpe.weight"] = model.pos.weight  # (L, D)
    elif cfg.pos == "sinusoidal":
        sd["transformer.wpe.weight"] = model.pos.table  # (L, D)
    else:
        sd["transformer.wpe.weight"] = zeros(model.max_seq_len, D)
    for i, block in enumerate(model.blocks):
        p, attn = f"transformer.h.{i}.", block.mixer
        sd[f"{p}attn.c_attn.weight"] = attn.qkv.weight.T  # (D, 3D), Conv1D is x W + b
        sd[f"{p}attn.c_attn.bias"] = attn.qkv.bias if attn.qkv.bias is not None else zeros(3 * D)
        sd[f"{p}attn.c_proj.weight"] = attn.out.weight.T  # (D, D)
        sd[f"{p}attn.c_proj.bias"] = attn.out.bias if attn.out.bias is not None else zeros(D)
        sd[f"{p}ln_1.weight"], sd[f"{p}ln_1.bias"] = block.norm1.weight, block.norm1.bias
        if block.mlp is not None:
            sd[f"{p}ln_2.weight"], sd[f"{p}ln_2.bias"] = block.norm2.weight, block.norm2.bias
            sd[f"{p}mlp.c_fc.weight"] = block.mlp.up.weight.T  # (D, F)
            sd[f"{p}mlp.c_fc.bias"] = block.mlp.up.bias
            sd[f"{p}mlp.c_proj.weight"] = block.mlp.down.weight.T  # (F, D)
            sd[f"{p}mlp.c_proj.bias"] = block.mlp.down.bias
        else:  # an MLP that adds exactly 0
            sd[f"{p}ln_2.weight"], sd[f"{p}ln_2.bias"] = torch.ones(D), zeros(D)
            sd[f"{p}mlp.c_fc.weight"], sd[f"{p}mlp.c_fc.bias"] = zeros(D, 1), zeros(1)
            sd[f"{p}mlp.c_proj.weight"], sd[f"{p}mlp.c_proj.bias"] = zeros(1, D), zeros(D)
    sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"] = model.norm.weight, model.norm.bias
    sd["lm_head.weight"] = model.unembed.weight[:V]  # (V, D)
    return {k: v.detach().float().contiguous().clone() for k, v in sd.items()}


def to_gpt2(model: DecoderLM):
    """A `GPT2LMHeadModel` (eval mode) computing `model`'s logits over its V real tokens."""
    transformers = _require_transformers()
    hf = transformers.GPT2LMHeadModel(gpt2_config(model))
    missing, unexpected = hf.load_state_dict(gpt2_state_dict(model), strict=False)
    missing = [k for k in missing if not k.endswith(".attn.bias") and k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GPT-2 weights did not map: missing {missing}, unexpected {unexpected}")
    if model.cfg.tie_embeddings:
        hf.tie_weights()
    return hf.eval()


def _refuse(cfg, field: str, ok, why: str = "") -> None:
    value = getattr(cfg, field, None)
    if not ok(value):
        raise UserError(f"{type(cfg).__name__}.{field} = {value!r} has no attnlab equivalent{why}")


def from_gpt2(hf) -> DecoderLM:
    """An attnlab `DecoderLM` computing the same logits (`[..., :vocab_size]`) as a
    `GPT2LMHeadModel` (or a path `from_pretrained` loads), so attnlab's probes, ablations
    and patching run on it; a UserError names the config field attnlab cannot express."""
    from attnlab.config.model import AttentionMixer, ModelConfig

    transformers = _require_transformers()
    if isinstance(hf, str | Path):
        hf = transformers.AutoModelForCausalLM.from_pretrained(hf)
    if not isinstance(hf, transformers.GPT2LMHeadModel):
        raise UserError(f"{type(hf).__name__}: only GPT2LMHeadModel maps onto attnlab here")
    c = hf.config
    _refuse(c, "activation_function", lambda v: v in FROM_ACTS)
    _refuse(c, "scale_attn_weights", lambda v: v)
    _refuse(c, "scale_attn_by_inverse_layer_idx", lambda v: not v)
    _refuse(c, "add_cross_attention", lambda v: not v)
    D, H = c.n_embd, c.n_head
    sd = _plain_state(hf)
    tied = c.tie_word_embeddings
    zero_mlp = all(
        not sd[f"transformer.h.{i}.mlp.{w}"].any()
        for i in range(c.n_layer)
        for w in ("c_proj.weight", "c_proj.bias")
    )
    wpe = sd["transformer.wpe.weight"]
    biased = any(
        sd[f"transformer.h.{i}.attn.{w}.bias"].any()
        for i in range(c.n_layer)
        for w in ("c_attn", "c_proj")
    )
    mcfg = ModelConfig(
        arch="decoder",
        vocab_size=c.vocab_size,
        d_model=D,
        n_layers=c.n_layer,
        mixer=AttentionMixer(n_heads=H, bias=biased),
        mlp=not zero_mlp,
        d_ff=None if zero_mlp else (c.n_inner or 4 * D),
        mlp_act=FROM_ACTS[c.activation_function],
        norm="layernorm",
        pos="none" if not wpe.any() else "learned",
        max_seq_len=c.n_positions,
        tie_embeddings=tied,
        dropout=0.0,
    )
    model = DecoderLM(mcfg, c.vocab_size)
    with torch.no_grad():
        _copy_into(model, sd, c.vocab_size)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = c.layer_norm_epsilon
    return model.eval()


def _copy_into(model: DecoderLM, sd: dict[str, torch.Tensor], V: int) -> None:
    """Copy GPT-2's weights (`sd`) into a freshly built `model` (padded rows stay 0)."""
    model.embed.weight.zero_()
    model.embed.weight[:V] = sd["transformer.wte.weight"]
    if model.pos is not None:
        model.pos.weight.copy_(sd["transformer.wpe.weight"])
    for i, block in enumerate(model.blocks):
        p, attn = f"transformer.h.{i}.", block.mixer
        attn.qkv.weight.copy_(sd[f"{p}attn.c_attn.weight"].T)
        attn.out.weight.copy_(sd[f"{p}attn.c_proj.weight"].T)
        if attn.qkv.bias is not None:
            attn.qkv.bias.copy_(sd[f"{p}attn.c_attn.bias"])
            attn.out.bias.copy_(sd[f"{p}attn.c_proj.bias"])
        block.norm1.weight.copy_(sd[f"{p}ln_1.weight"])
        block.norm1.bias.copy_(sd[f"{p}ln_1.bias"])
        if block.mlp is not None:
            block.norm2.weight.copy_(sd[f"{p}ln_2.weight"])
            block.norm2.bias.copy_(sd[f"{p}ln_2.bias"])
            block.mlp.up.weight.copy_(sd[f"{p}mlp.c_fc.weight"].T)
            block.mlp.up.bias.copy_(sd[f"{p}mlp.c_fc.bias"])
            block.mlp.down.weight.copy_(sd[f"{p}mlp.c_proj.weight"].T)
            block.mlp.down.bias.copy_(sd[f"{p}mlp.c_proj.bias"])
    model.norm.weight.copy_(sd["transformer.ln_f.weight"])
    model.norm.bias.copy_(sd["transformer.ln_f.bias"])
    if not model.cfg.tie_embeddings:
        model.unembed.weight.zero_()
        model.unembed.weight[:V] = sd["lm_head.weight"]


def check_mamba_exportable(model: nn.Module) -> None:
    """Raise a UserError naming the first option of a Mamba `model` that
    `MambaForCausalLM` cannot express (see the module doc)."""
    if not isinstance(model, DecoderLM) or model.cfg.mixer.name != "mamba":
        raise UserError("MambaForCausalLM takes a decoder whose model.mixer.name is mamba")
    cfg, m = model.cfg, model.cfg.mixer
    wrong = {
        "model.mixer.selective": (m.selective, True),
        "model.mixer.dt": (m.dt, "learned"),
        "model.mixer.dt_scale": (m.dt_scale, False),
        "model.mixer.discretization": (m.discretization, "zoh_approx"),
        "model.norm": (cfg.norm, "rmsnorm"),
        "model.mlp": (cfg.mlp, False),
        "model.pos": (cfg.pos, "none"),
    }
    for name, (value, needed) in wrong.items():
        if value != needed:
            raise UserError(
                f"{name}: {value}: MambaForCausalLM needs {needed} (its Mamba block is the "
                "selective scan with exp(ΔA) and B̄ = ΔB, RMSNorm, no MLP, no positions)"
            )


def to_mamba(model: DecoderLM):
    """A `MambaForCausalLM` (eval mode) computing a Mamba `model`'s logits over its V real
    tokens: exact for the selective scan with `zoh_approx` (Ā = exp(ΔA), B̄ = ΔB),
    learned Δ, RMSNorm, no MLP and no positions; the rest is refused by name."""
    check_mamba_exportable(model)
    transformers = _require_transformers()
    cfg, V = model.cfg, model.vocab_size
    mixer = model.blocks[0].mixer
    hf_cfg = transformers.MambaConfig(
        vocab_size=V,
        hidden_size=cfg.d_model,
        state_size=mixer.d_state,
        num_hidden_layers=cfg.n_layers,
        expand=mixer.d_inner // cfg.d_model,
        conv_kernel=mixer.d_conv,
        use_bias=mixer.in_proj.bias is not None,
        use_conv_bias=True,
        hidden_act="silu",
        time_step_rank=mixer.dt_rank,
        layer_norm_epsilon=torch.finfo(torch.float32).eps,  # nn.RMSNorm(eps=None) on float32
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    sd = {"backbone.embeddings.weight": model.embed.weight[:V]}
    for i, block in enumerate(model.blocks):
        p, m = f"backbone.layers.{i}.", block.mixer
        sd[f"{p}norm.weight"] = block.norm1.weight
        sd[f"{p}mixer.in_proj.weight"] = m.in_proj.weight
        sd[f"{p}mixer.conv1d.weight"] = m.conv.conv.weight  # (E, 1, K)
        sd[f"{p}mixer.conv1d.bias"] = m.conv.conv.bias
        sd[f"{p}mixer.x_proj.weight"] = m.x_proj.weight
        sd[f"{p}mixer.dt_proj.weight"] = m.dt_proj.weight
        sd[f"{p}mixer.dt_proj.bias"] = m.dt_proj.bias
        sd[f"{p}mixer.A_log"] = m.A_log
        sd[f"{p}mixer.D"] = m.D
        sd[f"{p}mixer.out_proj.weight"] = m.out.weight
        if m.in_proj.bias is not None:
            sd[f"{p}mixer.in_proj.bias"] = m.in_proj.bias
            sd[f"{p}mixer.out_proj.bias"] = m.out.bias
    sd["backbone.norm_f.weight"] = model.norm.weight
    sd["lm_head.weight"] = model.unembed.weight[:V]
    hf = transformers.MambaForCausalLM(hf_cfg)
    state = {k: v.detach().float().contiguous().clone() for k, v in sd.items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if [k for k in missing if k != "lm_head.weight"] or unexpected:
        raise RuntimeError(f"Mamba weights did not map: missing {missing}, unexpected {unexpected}")
    if cfg.tie_embeddings:
        hf.tie_weights()
    return hf.eval()


def from_mamba(hf) -> DecoderLM:
    """An attnlab Mamba `DecoderLM` computing the same logits (`[..., :vocab_size]`) as a
    `MambaForCausalLM` (the selective scan, `zoh_approx`, learned Δ, RMSNorm: what
    Hugging Face's Mamba block computes); a UserError names what attnlab cannot express."""
    from attnlab.config.model import MambaMixer, ModelConfig

    transformers = _require_transformers()
    if not isinstance(hf, transformers.MambaForCausalLM):
        raise UserError(f"{type(hf).__name__}: from_mamba takes a MambaForCausalLM")
    c = hf.config
    _refuse(c, "hidden_act", lambda v: v == "silu", " (attnlab's Mamba gates with SiLU)")
    _refuse(c, "use_conv_bias", lambda v: v, " (attnlab's conv has a bias)")
    D, E = c.hidden_size, c.intermediate_size
    if E % D:
        raise UserError(f"Mamba config.intermediate_size = {E} is not a multiple of {D}")
    sd = _plain_state(hf)
    mcfg = ModelConfig(
        arch="decoder",
        vocab_size=c.vocab_size,
        d_model=D,
        n_layers=c.num_hidden_layers,
        mixer=MambaMixer(
            d_state=c.state_size,
            expand=E // D,
            d_conv=c.conv_kernel,
            dt_rank=c.time_step_rank,
            bias=c.use_bias,
        ),
        mlp=False,
        norm="rmsnorm",
        pos="none",
        tie_embeddings=c.tie_word_embeddings,
        dropout=0.0,
    )
    V = c.vocab_size
    model = DecoderLM(mcfg, V)
    with torch.no_grad():
        model.embed.weight.zero_()
        model.embed.weight[:V] = sd["backbone.embeddings.weight"]
        for i, block in enumerate(model.blocks):
            p, m = f"backbone.layers.{i}.", block.mixer
            block.norm1.weight.copy_(sd[f"{p}norm.weight"])
            for mine, theirs in [
                (m.in_proj.weight, "in_proj.weight"),
                (m.conv.conv.weight, "conv1d.weight"),  # (E, 1, K)
                (m.conv.conv.bias, "conv1d.bias"),
                (m.x_proj.weight, "x_proj.weight"),  # (R + 2N, E)
                (m.dt_proj.weight, "dt_proj.weight"),
                (m.dt_proj.bias, "dt_proj.bias"),
                (m.A_log, "A_log"),
                (m.D, "D"),
                (m.out.weight, "out_proj.weight"),
            ]:
                mine.copy_(sd[f"{p}mixer.{theirs}"])
            if m.in_proj.bias is not None:
                m.in_proj.bias.copy_(sd[f"{p}mixer.in_proj.bias"])
                m.out.bias.copy_(sd[f"{p}mixer.out_proj.bias"])
        model.norm.weight.copy_(sd["backbone.norm_f.weight"])
        if not mcfg.tie_embeddings:
            model.unembed.weight.zero_()
            model.unembed.weight[:V] = sd["lm_head.weight"]
    for mod in model.modules():
        if isinstance(mod, nn.RMSNorm):
            mod.eps = c.layer_norm_epsilon
    return model.eval()


def to_hf(model: DecoderLM):
    """The exact Hugging Face model for `model`: `MambaForCausalLM` for a Mamba decoder,
    `GPT2LMHeadModel` for an attention one; what neither expresses is a UserError."""
    return to_mamba(model) if model.cfg.mixer.name == "mamba" else to_gpt2(model)


def from_hf(hf) -> DecoderLM:
    """An attnlab `DecoderLM` for a Hugging Face causal LM (a model or a folder
    `AutoModelForCausalLM` loads): GPT-2 (`from_gpt2`) or Mamba (`from_mamba`)."""
    transformers = _require_transformers()
    if isinstance(hf, str | Path):
        hf = transformers.AutoModelForCausalLM.from_pretrained(hf)
    if isinstance(hf, transformers.GPT2LMHeadModel):
        return from_gpt2(hf)
    if isinstance(hf, transformers.MambaForCausalLM):
        return from_mamba(hf)
    raise UserError(
        f"{type(hf).__name__}: attnlab reads GPT2LMHeadModel and MambaForCausalLM (the "
        "families its models map onto exactly)"
    )
