"""attnlab's decoder-only models to and from TransformerLens's `HookedTransformer` (3.x).

Legend: D model width, H heads, E head width (D / H), V vocabulary, F feed-forward width,
L position table length (TransformerLens's `n_ctx`).

Both are pre-norm residual stacks: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`, a final norm
and an unembedding, so one maps onto the other weight for weight:

| attnlab | TransformerLens |
|---|---|
| `embed.weight[:V]` (V, D) | `embed.W_E` (V, D) |
| `pos.weight` / the sinusoid table (L, D); none: zeros | `pos_embed.W_pos` (`standard`) |
| `pos: rope` (rotate-half, base 10,000, whole head) | `rotary`, `rotary_adjacent_pairs=False` |
| `mixer.qkv.weight` (3D, D), rows `(h e)` | `attn.W_Q` / `W_K` / `W_V` (H, D, E) |
| `mixer.out.weight` (D, D), columns `(h e)` | `attn.W_O` (H, E, D) |
| `norm1`, `norm2`, `norm`: LayerNorm / RMSNorm / none | `ln1`, `ln2`, `ln_final`: LN / RMS / None |
| `mlp.up`, `mlp.down` (GELU: erf / tanh) | `mlp.W_in`, `W_out`, `act_fn="gelu"` / `"gelu_new"` |
| `unembed.weight[:V]` (V, D) | `unembed.W_U` (D, V), `b_U` = 0 |

attnlab pads its vocabulary rows (`model.pad_vocab_multiple`); only the V real rows are
exported, and an imported model is padded again (its padded logits are -inf, so compare
`logits[..., :V]`). Tied embeddings become two equal matrices in TransformerLens and tie
again on import. Fixed sinusoidal positions become a `W_pos` table (trainable there); no
positions become a zero table, and a zero table comes back as `pos: none`. RMSNorm's eps
is float32's machine epsilon in attnlab (torch's default); the exported config says so.

What TransformerLens cannot express is refused with the option's name: convolutions
(`model.mixer.conv_kernel`), smeared keys (`model.mixer.smear_keys`), the Mamba mixer, and
the encoder-decoder and classifier architectures. From TransformerLens, attnlab takes the
configurations above plus `LNPre` / `RMSPre` (TransformerLens's folded norms, as norms
with unit weights); it refuses the rest (shortformer or ALiBi positions, gated or
non-GELU MLPs, grouped-query or local attention, a non-zero `b_U`, …) by name.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from attnlab.errors import UserError
from attnlab.models.stack import DecoderLM

RMS_EPS = torch.finfo(torch.float32).eps  # nn.RMSNorm(eps=None) on float32
LN_EPS = 1e-5  # nn.LayerNorm's default
ROPE_BASE = 10000.0  # attnlab.models.positional.Rotary's base
NORMS = {"layernorm": "LN", "rmsnorm": "RMS", "none": None}


def _require_transformer_lens():
    """The `transformer_lens` module (3.x), or a UserError saying what to install."""
    from importlib import metadata

    try:
        version = metadata.version("transformer-lens")
    except metadata.PackageNotFoundError as e:
        raise UserError(
            "TransformerLens is not installed: pip install 'attnlab[interop]' "
            "(transformer-lens 3.x, which still has HookedTransformer)"
        ) from e
    if int(version.split(".")[0]) >= 4:
        raise UserError(
            f"TransformerLens {version} has no HookedTransformer (removed in 4.0): "
            "pip install 'transformer-lens>=3.9,<4' (or 'attnlab[interop]')"
        )
    import transformer_lens

    return transformer_lens


def check_exportable(model: nn.Module) -> None:
    """Raise a UserError naming the first option of `model` TransformerLens cannot express."""
    if not isinstance(model, DecoderLM):
        raise UserError(
            f"TransformerLens's HookedTransformer is a decoder-only stack; a "
            f"{type(model).__name__} (model.arch other than decoder) cannot be exported"
        )
    mixer = model.cfg.mixer
    if mixer.name != "attention":
        raise UserError(f"model.mixer.name: {mixer.name} has no TransformerLens equivalent")
    if mixer.conv_kernel is not None:
        raise UserError(
            f"model.mixer.conv_kernel: {mixer.conv_kernel} (a convolution in the attention "
            "layer) has no TransformerLens equivalent"
        )
    if mixer.smear_keys:
        raise UserError("model.mixer.smear_keys has no TransformerLens equivalent")


def hooked_config_dict(model: DecoderLM) -> dict:
    """The JSON-ready `HookedTransformerConfig` arguments of an exportable `model`."""
    check_exportable(model)
    cfg = model.cfg
    H = cfg.mixer.n_heads
    E = cfg.d_model // H
    out = {
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "n_ctx": model.max_seq_len,
        "d_head": E,
        "n_heads": H,
        "d_vocab": model.vocab_size,
        "d_vocab_out": model.vocab_size,
        "attn_only": not cfg.mlp,
        "act_fn": "gelu_new" if cfg.mlp_act == "gelu_tanh" else "gelu",
        "normalization_type": NORMS[cfg.norm],
        "eps": RMS_EPS if cfg.norm == "rmsnorm" else LN_EPS,
        "positional_embedding_type": "rotary" if cfg.pos == "rope" else "standard",
        "default_prepend_bos": False,
        "original_architecture": "attnlab",
        "model_name": "attnlab-decoder",
    }
    if cfg.mlp:
        out["d_mlp"] = cfg.ff_width
    if cfg.pos == "rope":
        out.update(rotary_dim=E, rotary_base=ROPE_BASE, rotary_adjacent_pairs=False)
    return out


def hooked_state_dict(model: DecoderLM) -> dict[str, torch.Tensor]:
    """`model`'s weights under TransformerLens's names and layouts (parameters only)."""
    check_exportable(model)
    cfg, V, D = model.cfg, model.vocab_size, model.cfg.d_model
    H = cfg.mixer.n_heads
    sd = {"embed.W_E": model.embed.weight[:V]}  # (V, D)
    if cfg.pos == "learned":
        sd["pos_embed.W_pos"] = model.pos.weight  # (L, D)
    elif cfg.pos == "sinusoidal":
        sd["pos_embed.W_pos"] = model.pos.table  # (L, D)
    elif cfg.pos == "none":
        sd["pos_embed.W_pos"] = torch.zeros(model.max_seq_len, D)
    for i, block in enumerate(model.blocks):
        p, attn = f"blocks.{i}.", block.mixer
        wq, wk, wv = attn.qkv.weight.chunk(3, dim=0)  # (D, D) each, rows (h e)
        bias = attn.qkv.bias
        bq, bk, bv = bias.chunk(3) if bias is not None else (torch.zeros(D),) * 3
        for name, w, b in (("Q", wq, bq), ("K", wk, bk), ("V", wv, bv)):
            sd[f"{p}attn.W_{name}"] = rearrange(w, "(h e) d -> h d e", h=H)  # (H, D, E)
            sd[f"{p}attn.b_{name}"] = rearrange(b, "(h e) -> h e", h=H)  # (H, E)
        sd[f"{p}attn.W_O"] = rearrange(attn.out.weight, "d (h e) -> h e d", h=H)  # (H, E, D)
        sd[f"{p}attn.b_O"] = attn.out.bias if attn.out.bias is not None else torch.zeros(D)
        sd.update(_norm_weights(f"{p}ln1", block.norm1))
        if block.mlp is not None:
            sd.update(_norm_weights(f"{p}ln2", block.norm2))
            sd[f"{p}mlp.W_in"] = block.mlp.up.weight.T  # (D, F)
            sd[f"{p}mlp.b_in"] = block.mlp.up.bias
            sd[f"{p}mlp.W_out"] = block.mlp.down.weight.T  # (F, D)
            sd[f"{p}mlp.b_out"] = block.mlp.down.bias
    sd.update(_norm_weights("ln_final", model.norm))
    sd["unembed.W_U"] = model.unembed.weight[:V].T  # (D, V)
    sd["unembed.b_U"] = torch.zeros(V)
    return {k: v.detach().float().contiguous().clone() for k, v in sd.items()}


def _norm_weights(prefix: str, norm: nn.Module) -> dict[str, torch.Tensor]:
    if isinstance(norm, nn.LayerNorm):
        return {f"{prefix}.w": norm.weight, f"{prefix}.b": norm.bias}
    if isinstance(norm, nn.RMSNorm):
        return {f"{prefix}.w": norm.weight}
    return {}


def to_hooked_transformer(model: DecoderLM):
    """A TransformerLens `HookedTransformer` computing the same logits as `model` (over its
    V real tokens) on the CPU in float32; a UserError names what it cannot express."""
    hooked = new_hooked_transformer(hooked_config_dict(model))
    load_hooked_weights(hooked, hooked_state_dict(model))
    return hooked.eval()


def new_hooked_transformer(config: dict):
    """A `HookedTransformer` on the CPU for `HookedTransformerConfig` arguments (3.x's
    deprecation warning, which points at 4.0's replacement, silenced: this is 3.x)."""
    import warnings

    tl = _require_transformer_lens()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated")
        return tl.HookedTransformer(tl.HookedTransformerConfig(**config, device="cpu"))


def load_hooked_weights(hooked, weights: dict[str, torch.Tensor]) -> None:
    """Load exported parameters into a `HookedTransformer`; every parameter must be there."""
    missing, unexpected = hooked.load_state_dict(weights, strict=False)
    params = {n for n, _ in hooked.named_parameters()}
    if unexpected or params & set(missing):
        raise UserError(
            f"weights do not fit this HookedTransformer: missing {sorted(params & set(missing))}"
            f", unexpected {sorted(unexpected)}"
        )


# ---- TransformerLens → attnlab ----------------------------------------------------------


def _refuse(cfg, field: str, ok) -> None:
    value = getattr(cfg, field, None)
    if not ok(value):
        raise UserError(f"TransformerLens cfg.{field} = {value!r} has no attnlab equivalent")


def check_importable(cfg) -> None:
    """Raise a UserError naming the first `HookedTransformerConfig` field attnlab cannot
    express (see the module doc)."""
    _refuse(cfg, "attention_dir", lambda v: v in (None, "causal"))
    _refuse(cfg, "positional_embedding_type", lambda v: v in ("standard", "rotary"))
    _refuse(cfg, "normalization_type", lambda v: v in (None, "LN", "LNPre", "RMS", "RMSPre"))
    _refuse(cfg, "d_vocab_out", lambda v: v in (None, -1, cfg.d_vocab))
    _refuse(cfg, "d_head", lambda v: v * cfg.n_heads == cfg.d_model)
    _refuse(cfg, "use_attn_scale", lambda v: v in (None, True))
    _refuse(cfg, "attn_scale", lambda v: v is None or math.isclose(v, math.sqrt(cfg.d_head)))
    _refuse(cfg, "n_key_value_heads", lambda v: v in (None, cfg.n_heads))
    _refuse(cfg, "use_local_attn", lambda v: not v)
    _refuse(cfg, "parallel_attn_mlp", lambda v: not v)
    _refuse(cfg, "gated_mlp", lambda v: not v)
    _refuse(cfg, "final_rms", lambda v: not v)
    _refuse(cfg, "use_qk_norm", lambda v: not v)
    _refuse(cfg, "use_normalization_before_and_after", lambda v: not v)
    _refuse(cfg, "attn_scores_soft_cap", lambda v: v in (None, -1, -1.0))
    _refuse(cfg, "output_logits_soft_cap", lambda v: v in (None, -1, -1.0))
    _refuse(cfg, "num_experts", lambda v: v in (None, 0, 1))
    if not cfg.attn_only:
        _refuse(cfg, "act_fn", lambda v: v in ("gelu", "gelu_new"))
    if cfg.positional_embedding_type == "rotary":
        _refuse(cfg, "rotary_dim", lambda v: v == cfg.d_head)
        _refuse(cfg, "rotary_base", lambda v: float(v) == ROPE_BASE)
        _refuse(cfg, "rotary_adjacent_pairs", lambda v: not v)
        _refuse(cfg, "use_NTK_by_parts_rope", lambda v: not v)


def from_hooked_transformer(hooked) -> DecoderLM:
    """An attnlab `DecoderLM` computing the same logits (`[..., :d_vocab]`) as a
    TransformerLens `HookedTransformer`, so attnlab's probes, ablations and patching run
    on it; a UserError names the config field attnlab cannot express."""
    from attnlab.config.model import AttentionMixer, ModelConfig

    cfg = hooked.cfg
    check_importable(cfg)
    sd = {k: v.detach().float().cpu() for k, v in hooked.state_dict().items()}
    if sd["unembed.b_U"].abs().max() > 0:
        raise UserError(
            "TransformerLens unembed.b_U is not zero; attnlab's unembedding has no bias"
        )
    D, H, V, L = cfg.d_model, cfg.n_heads, cfg.d_vocab, cfg.n_ctx
    biases = [sd[f"blocks.{i}.attn.b_{n}"] for i in range(cfg.n_layers) for n in "QKVO"]
    pos = "rope" if cfg.positional_embedding_type == "rotary" else "learned"
    if pos == "learned" and not sd["pos_embed.W_pos"].any():
        pos = "none"
    tied = torch.equal(sd["embed.W_E"], sd["unembed.W_U"].T)
    norm = {None: "none", "LN": "layernorm", "LNPre": "layernorm"}.get(
        cfg.normalization_type, "rmsnorm"
    )
    mcfg = ModelConfig(
        arch="decoder",
        vocab_size=V,
        d_model=D,
        n_layers=cfg.n_layers,
        mixer=AttentionMixer(n_heads=H, bias=any(bool(b.any()) for b in biases)),
        mlp=not cfg.attn_only,
        d_ff=None if cfg.attn_only else cfg.d_mlp,
        mlp_act="gelu_tanh" if cfg.act_fn == "gelu_new" else "gelu",
        norm=norm,
        pos=pos,
        max_seq_len=L,
        tie_embeddings=tied,
    )
    model = DecoderLM(mcfg, V)
    with torch.no_grad():
        _copy_into(model, sd, cfg)
    for m in model.modules():
        if isinstance(m, (nn.LayerNorm, nn.RMSNorm)):
            m.eps = cfg.eps
    return model.eval()


def _copy_into(model: DecoderLM, sd: dict[str, torch.Tensor], cfg) -> None:
    """Fill `model`'s parameters from TransformerLens weights `sd` (padded rows zero)."""
    V, H = cfg.d_vocab, cfg.n_heads
    model.embed.weight.zero_()
    model.embed.weight[:V] = sd["embed.W_E"]
    if not model.cfg.tie_embeddings:
        model.unembed.weight.zero_()
        model.unembed.weight[:V] = sd["unembed.W_U"].T
    if model.cfg.pos == "learned":
        model.pos.weight.copy_(sd["pos_embed.W_pos"])
    for i, block in enumerate(model.blocks):
        p, attn = f"blocks.{i}.", block.mixer
        w = [rearrange(sd[f"{p}attn.W_{n}"], "h d e -> (h e) d") for n in "QKV"]
        attn.qkv.weight.copy_(torch.cat(w))  # (3D, D)
        attn.out.weight.copy_(rearrange(sd[f"{p}attn.W_O"], "h e d -> d (h e)", h=H))
        if attn.qkv.bias is not None:
            attn.qkv.bias.copy_(torch.cat([sd[f"{p}attn.b_{n}"].flatten() for n in "QKV"]))
            attn.out.bias.copy_(sd[f"{p}attn.b_O"])
        _load_norm(block.norm1, sd, f"{p}ln1")
        if block.mlp is not None:
            _load_norm(block.norm2, sd, f"{p}ln2")
            block.mlp.up.weight.copy_(sd[f"{p}mlp.W_in"].T)
            block.mlp.up.bias.copy_(sd[f"{p}mlp.b_in"])
            block.mlp.down.weight.copy_(sd[f"{p}mlp.W_out"].T)
            block.mlp.down.bias.copy_(sd[f"{p}mlp.b_out"])
    _load_norm(model.norm, sd, "ln_final")


def _load_norm(norm: nn.Module, sd: dict[str, torch.Tensor], prefix: str) -> None:
    """A norm's weights from `sd`, or unit weight and zero bias where TransformerLens has
    none (`LNPre` / `RMSPre`: folded norms)."""
    if isinstance(norm, (nn.LayerNorm, nn.RMSNorm)):
        norm.weight.copy_(sd.get(f"{prefix}.w", torch.ones_like(norm.weight)))
    if isinstance(norm, nn.LayerNorm):
        norm.bias.copy_(sd.get(f"{prefix}.b", torch.zeros_like(norm.bias)))
