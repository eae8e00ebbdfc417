"""Direct logit attribution and the logit lens of a decoder stack.

Legend: B batch, T time, D model width, H heads, E head width, C components, L blocks.

The final residual stream of `DecoderLM` is a sum: the embedding (with positions), then
each block's mixer output and MLP output (`x + mixer(norm1(x))`, `x + mlp(norm2(x))`;
dropout is off in eval mode). The final norm is linear once its scale is frozen at the
value the whole stream gives (TransformerLens's `apply_ln_to_stack`): LayerNorm maps each
component c to (c − mean(c)) / σ · w, RMSNorm to c / rms · w, and adds its bias once. So
the logit of a token y at position t is exactly the sum over components of their direct
logit attribution, `norm_frozen(c_t) · W_U[y]`, plus the norm's bias term. An attention
mixer's output splits further into its heads, z_h W_O,h (the output bias is a component
of its own); a Mamba mixer's into its E inner channels, y_e W_out[:, e]. A convolution
sits inside the mixer it feeds (before the attention's projections), so its effect is in
that mixer's heads, not a component of its own.

Direct attribution counts only what a component writes straight into the logit; what it
does through later layers (an induction head's previous-token partner) is not in it.
The logit lens reads the residual stream after each block through the final norm and the
unembedding: how far the prediction has formed by that depth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.models.attention import Attention
from attnlab.models.stack import output_head
from attnlab.probes.capture import eval_mode


def _run_hooked(model: nn.Module, tokens: torch.Tensor, handles: list) -> None:
    """One eval-mode forward of tokens with the hooks `handles` attached, which are
    removed afterwards (also after an exception)."""
    try:
        with eval_mode(model):
            model(tokens, hidden=True)
    finally:
        for h in handles:
            h.remove()


def _norm_parts(norm: nn.Module) -> tuple[str, torch.Tensor | None, torch.Tensor | None]:
    """(kind, weight, bias) of the final norm: kind `layernorm`, `rmsnorm` or `none`."""
    if isinstance(norm, nn.LayerNorm):
        return "layernorm", norm.weight, norm.bias
    if isinstance(norm, nn.RMSNorm):
        return "rmsnorm", norm.weight, None
    return "none", None, None


@torch.no_grad()
def direct_logit_attribution(
    model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor, where: torch.Tensor
) -> dict:
    """Each component's direct contribution to the logit of `targets` (B, T) at the
    positions `where` (B, T bool), through the final norm frozen at the whole stream:
    `names`, `mean` (C,) over the positions, `norm_bias` (the norm's bias term),
    `check`: the largest |Σ components + bias − the model's logit| (float rounding), and
    `per_position` (C, Q), each component at each of the Q positions (row-major order).

    No component is kept whole: the norm is linear once frozen, so each needs only its
    dot product with v = w ⊙ W_U[y] and (LayerNorm) its mean over D, both (B, T); a head
    or a Mamba channel gets them from its inputs and its slice of the output projection,
    so memory is C x B x T, not C x B x T x D."""
    kind, w, bias = _norm_parts(model.norm)
    W, pad = output_head(model)  # (Vp, D), (Vp,) or None
    u = W[targets].float()  # (B, T, D): the target's unembedding row
    v = u * w.float() if w is not None else u  # (B, T, D)
    names: list[str] = []
    dots: list[torch.Tensor] = []  # (K, B, T) each: component · v
    means: list[torch.Tensor] = []  # (K, B, T) each: the component's mean over D
    got: dict[str, torch.Tensor] = {}

    def whole(name: str):
        def hook(_m, _i, out):
            names.append(name)
            dots.append((out.float() * v).sum(-1)[None])
            means.append(out.float().mean(-1)[None])

        return hook

    handles = [model.drop.register_forward_hook(whole("embed"))]
    for i, block in enumerate(model.blocks):
        handles += _mixer_hooks(block.mixer, i, v, names, dots, means)
        if block.mlp is not None:
            handles.append(block.mlp.register_forward_hook(whole(f"L{i} mlp")))
    handles.append(model.norm.register_forward_hook(lambda _m, a, _o: got.update(r=a[0])))
    _run_hooked(model, tokens, handles)
    resid = got["r"].float()  # (B, T, D) the final residual stream
    dot, mean = torch.cat(dots), torch.cat(means)  # (C, B, T) each
    if kind == "layernorm":
        sigma = (resid.var(-1, unbiased=False) + model.norm.eps).sqrt()  # (B, T)
        per = (dot - mean * v.sum(-1)) / sigma  # (C, B, T)
    elif kind == "rmsnorm":
        eps = model.norm.eps if model.norm.eps is not None else torch.finfo(resid.dtype).eps
        per = dot / (resid.pow(2).mean(-1) + eps).sqrt()
    else:
        per = dot
    bias_term = (bias.float() * u).sum(-1) if bias is not None else torch.zeros_like(per[0])
    logits = F.linear(model.norm(got["r"]), W, pad).float()  # (B, T, Vp)
    logit = logits.gather(-1, targets[..., None])[..., 0]  # (B, T)
    check = float((per.sum(0) + bias_term - logit)[where].abs().max())
    return {
        "names": names,
        "mean": per[:, where].mean(-1).tolist(),
        "norm_bias": float(bias_term[where].mean()),
        "check": check,
        "positions": int(where.sum()),
        "per_position": per[:, where],  # (C, Q) a tensor, for callers that break it down
    }


def _mixer_hooks(mixer: nn.Module, i: int, v, names: list, dots: list, means: list) -> list:
    """Hooks that add the mixer's direct components (its heads and output bias, or its
    Mamba channels: y_e times `out`'s column e) to `names`, `dots`, `means`."""
    out = mixer.out  # nn.Linear (D, H·E or E)
    seen: dict[str, torch.Tensor] = {}

    def add(label: list[str], dot: torch.Tensor, mean: torch.Tensor) -> None:
        names.extend(label)
        dots.append(dot)
        means.append(mean)

    def on_input(_m, args, _o):
        seen["x"] = args[0].float()  # (B, T, H·E) or (B, T, E): what `out` multiplies

    def on_output(_m, _a, _o):
        x = seen.pop("x")
        Wt = out.weight.float()  # (D, K)
        if isinstance(mixer, Attention):
            H, E = mixer.n_heads, mixer.head_dim
            z = x.unflatten(-1, (H, E))  # (B, T, H, E)
            Wv = torch.einsum("btd,dk->btk", v, Wt).unflatten(-1, (H, E))  # (B, T, H, E)
            Wm = Wt.mean(0).view(H, E)  # (H, E)
            add(
                [f"L{i}H{h}" for h in range(H)],
                torch.einsum("bthe,bthe->hbt", z, Wv),
                torch.einsum("bthe,he->hbt", z, Wm),
            )
        else:
            add(
                [f"L{i}C{e}" for e in range(x.shape[-1])],
                (x * torch.einsum("btd,de->bte", v, Wt)).permute(2, 0, 1),  # (E, B, T)
                (x * Wt.mean(0)).permute(2, 0, 1),
            )
        if out.bias is not None:
            b = out.bias.float()
            add([f"L{i} out bias"], (v * b).sum(-1)[None], b.mean().expand(v.shape[:2])[None])

    return [out.register_forward_hook(on_input), mixer.register_forward_hook(on_output)]


@torch.no_grad()
def logit_lens(
    model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor, where: torch.Tensor
) -> list[dict]:
    """Accuracy and loss of `targets` at `where` read from the residual stream after the
    embedding and after each block (final norm and unembedding applied there)."""
    streams: list[torch.Tensor] = []
    handles = [model.drop.register_forward_hook(lambda _m, _i, o: streams.append(o))]
    handles += [b.hook_resid_post.register_forward_hook(lambda _m, _i, o: streams.append(o))
                for b in model.blocks]  # fmt: skip
    _run_hooked(model, tokens, handles)
    W, pad = output_head(model)
    rows = []
    for k, x in enumerate(streams):
        logits = F.linear(model.norm(x), W, pad)[where].float()  # (Q, Vp)
        y = targets[where]
        rows.append(
            {
                "after": "embed" if k == 0 else f"block {k - 1}",
                "accuracy": float((logits.argmax(-1) == y).float().mean()),
                "loss": float(F.cross_entropy(logits, y)),
            }
        )
    return rows


ATTRIBUTION_ROWS = 16  # probe rows the run probe attributes
BY_POSITION = 6  # components broken down by position in the repeat: the largest by |mean|


def repeat_attribution(model: nn.Module, probe) -> dict:
    """Direct logit attribution and the logit lens of the repeated tokens: the first
    `ATTRIBUTION_ROWS` rows of a probe set (`probes.sequences.ProbeSet`), at the positions
    whose next token repeats the first copy. `by_position`: the `BY_POSITION` largest
    components' mean at each position k of the second copy (k = 0 predicts its second
    token), with the number of queries at each k. What `lm_probes` records."""
    part = probe[:ATTRIBUTION_ROWS].to(next(model.parameters()).device)
    x = part.tokens  # (N, T)
    y = torch.roll(x, -1, dims=1)  # (N, T) next tokens
    where = part.repeat_queries(drop_last=True)  # (N, T)
    dla = direct_logit_attribution(model, x, y, where)
    per = dla.pop("per_position").cpu()  # (C, Q)
    rows, t = where.nonzero(as_tuple=True)  # (Q,) each, row-major like `per`
    k = (t - part.prefix[rows].to(t.device) - part.seg_len[rows].to(t.device)).cpu()  # (Q,)
    top = sorted(range(len(dla["names"])), key=lambda c: -abs(dla["mean"][c]))[:BY_POSITION]
    span = int(k.max()) + 1 if len(k) else 0
    count = torch.bincount(k, minlength=span).clamp_min(1)  # (K,)
    by_pos = {
        dla["names"][c]: (torch.bincount(k, per[c], minlength=span) / count)
        .round(decimals=4)
        .tolist()
        for c in top
    }
    dla["mean"] = [round(v, 4) for v in dla["mean"]]
    dla["by_position"] = {
        "queries": torch.bincount(k, minlength=span).tolist(),
        "components": by_pos,
    }
    return {**dla, "lens": logit_lens(model, x, y, where)}
