"""Head scores on the probe set: previous-token, duplicate-token, induction and copying.

Legend: N sequences, B batch, H heads, T query time, S key time, D model width, E head
width, V vocabulary, Q scored queries.

Every pattern score is the attention mass a head puts on its target keys, averaged over
the scored queries: the positions of the *second copy* of the repeated segment, where all
three behaviours have a target (`sequences.py`). With A the (T, S) pattern of one head and
M its 0/1 target mask, `score = mean_t Σ_s A[t, s] M[t, s]`, so a head that is exactly that
behaviour scores 1.0 and a uniform causal head scores ≈ mean_t (#targets / (t + 1)), which
`uniform` reports beside every score.

- previous-token: M[t, s] = (s = t - 1).
- duplicate-token: M[t, s] = (s < t and x_s = x_t): the earlier copy of the current token.
- induction: M[t, s] = (1 <= s <= t and x_{s-1} = x_t): the token *after* an earlier copy of
  the current token (Olsson et al. 2022's "prefix matching" on repeated random tokens).
- copying (activations): the share of scored queries (the first COPY_QUERIES) at
  which the token of the key the head attends to most is among the 5 tokens whose logits
  the head's own output raises most (its direct path to the logits through the final
  norm's scale, centred for layernorm). A head that copies scores ≈ 1; chance is 5 / V.
- by_offset (diagnostic): the mass on the key j positions after the earlier copy of the
  query's token, for j = -2 … 7 (j = 0 is duplicate-token, j = 1 induction). A head that
  reads the next token through a convolution window can look j > 1 ahead instead.
- ov_copying (weights): Olsson et al.'s eigenvalue score Σλ / Σ|λ| of the OV circuit
  W_U γ W_O^h W_V^h W_E (1 copies, -1 suppresses, ≈ 0 neither); it ignores the
  convolution and the per-block norms.

TransformerLens's `detect_head` scores "previous_token_head", "duplicate_token_head" and
"induction_head" with the same masks (its `mul` method), but over every query position of
the sequence, not only the repeat; its `exclude_bos` is False by default (True zeroes key
column 0 before scoring), and `exclude_current_token` (default False) zeroes the diagonal.
Scoring only the repeat keeps a uniform head's score low and reported beside it.

Mamba layers are scored from their hidden attention α (B, E, T, S) (Ali et al. 2024;
`Mamba.hidden_attention`), which is signed and unnormalised: each channel's row is turned
into shares of influence |α_{t,s}| / Σ_s |α_{t,s}|, and each channel is scored on its own
(`as_heads`): a channel is Mamba's unit (its own Δ, Ā row and output), while contiguous
channel groups have no meaning in the model and would dilute one channel's pattern among
others. `heads` of a Mamba layer counts its channels, and ablation acts on the same unit
(the channel of `hook_ssm_out`). The copying scores need a head's own output and OV
circuit, so Mamba layers have none (null).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from attnlab.models.hooks import HiddenAttentionPoint
from attnlab.models.stack import output_head
from attnlab.probes.capture import capture, eval_mode
from attnlab.probes.sequences import ProbeSet

PATTERN_SCORES = ("previous_token", "duplicate_token", "induction")
TOP_K = 5
COPY_QUERIES = 256  # the copying score reads full-vocabulary logits per head: cap its cost
OFFSETS = tuple(range(-2, 8))  # keys relative to the earlier copy of the query's token


def target_masks(tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """(N, T, T) bool target masks of the three pattern scores for token rows (N, T)."""
    N, T = tokens.shape
    t = torch.arange(T, device=tokens.device)[:, None]  # (T, 1) query
    s = torch.arange(T, device=tokens.device)[None, :]  # (1, S) key
    same = tokens[:, :, None] == tokens[:, None, :]  # (N, T, S): x_t == x_s
    prev_same = torch.zeros_like(same)
    prev_same[:, :, 1:] = same[:, :, :-1]  # [t, s] = (x_t == x_{s-1})
    return {
        "previous_token": (s == t - 1).expand(N, T, T),
        "duplicate_token": same & (s < t),
        "induction": prev_same & (s >= 1) & (s <= t),
    }


def pattern_score(pattern: torch.Tensor, targets: torch.Tensor, queries: torch.Tensor):
    """(sum over queries of the mass on targets (H,), number of queries).

    pattern (N, H, T, S), targets (N, T, S) bool, queries (N, T) bool; queries without any
    target are left out.
    """
    q = queries & targets.any(-1)  # (N, T)
    mass = (pattern * targets[:, None].to(pattern.dtype)).sum(-1)  # (N, H, T)
    return (mass * q[:, None]).sum((0, 2)), int(q.sum())


def offset_mass(pattern: torch.Tensor, probe: ProbeSet) -> torch.Tensor:
    """(len(OFFSETS), H) summed mass on key t - S + j over the second copy's queries t."""
    b, t = probe.repeat_queries().nonzero(as_tuple=True)  # (Q,), (Q,)
    out = torch.zeros(len(OFFSETS), pattern.shape[1], device=pattern.device)
    for i, j in enumerate(OFFSETS):
        key = t - probe.seg_len[b] + j  # (Q,)
        ok = (key >= 0) & (key <= t)
        out[i] = pattern[b[ok], :, t[ok], key[ok]].sum(0)  # (H,)
    return out


def uniform_pattern(N: int, T: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, 1, T, T) causal pattern with equal weight on every visible key."""
    keep = torch.ones(T, T, device=device).tril()
    return (keep / keep.sum(-1, keepdim=True)).expand(N, 1, T, T)


def _final_norm(model: nn.Module) -> tuple[torch.Tensor, bool]:
    """The final norm's scale γ (D,) and whether it centres (layernorm)."""
    norm, D = model.norm, model.cfg.d_model
    weight = getattr(norm, "weight", None)
    gamma = weight.detach().float() if weight is not None else torch.ones(D)
    return gamma.cpu(), isinstance(norm, nn.LayerNorm)


def _centre(x: torch.Tensor, centre: bool) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True) if centre else x


def ov_copying(model: nn.Module, layers: list[int] | None = None) -> list[list[float]]:
    """Σλ / Σ|λ| of each head's OV circuit W_U γ W_O^h W_V^h W_E (layers × heads), for the
    attention `layers` (default: all)."""
    V = model.vocab_size
    gamma, centre = _final_norm(model)
    W_E = model.embed.weight.detach().float().cpu()[:V]  # (V, D)
    W_U = model.unembed.weight.detach().float().cpu()[:V]  # (V, D)
    EU = W_E.T @ W_U  # (D, D), shared by every head
    out = []
    for layer in attention_layers(model, layers):
        attn = model.blocks[layer].mixer
        if is_hidden(attn):  # no OV circuit per head
            out.append([float("nan")] * layer_heads(attn))
            continue
        H, E, D = attn.n_heads, attn.head_dim, attn.d_model
        W_V = attn.qkv.weight.detach().float().cpu()[2 * D :]  # (D, D) rows h*E + e
        W_O = attn.out.weight.detach().float().cpu()  # (D, D) columns h*E + e
        row = []
        for h in range(H):
            wo = _centre(W_O[:, h * E : (h + 1) * E].T, centre).T * gamma[:, None]  # (D, E)
            # eigenvalues of the (V, V) circuit = those of this (E, E) cycle, plus zeros
            m = W_V[h * E : (h + 1) * E] @ EU @ wo  # (E, E)
            lam = torch.linalg.eigvals(m.double())
            row.append(float(lam.real.sum() / lam.abs().sum().clamp_min(1e-30)))
        out.append(row)
    return out


def _copy_hits(
    attn: nn.Module,
    z: torch.Tensor,
    pattern: torch.Tensor,
    tokens: torch.Tensor,
    queries: torch.Tensor,
    unembed: torch.Tensor,
    chunk: int = 256,
) -> torch.Tensor:
    """(H,) scored queries whose most-attended token is among the head's top-k raised tokens.

    z (B, T, H, E) per-head outputs, pattern (B, H, T, S), tokens (B, T), queries (B, T),
    unembed (V, D) with the final norm's scale (and centring) folded in.
    """
    H = attn.n_heads
    W_O = rearrange(attn.out.weight.detach().float(), "d (h e) -> h e d", h=H)
    b, t = queries.nonzero(as_tuple=True)  # (Q,), (Q,)
    attended = tokens[b[:, None], pattern[b, :, t].argmax(-1)]  # (Q, H) token ids
    hits = torch.zeros(H, device=z.device)
    for i in range(0, len(b), chunk):
        zq = z[b[i : i + chunk], t[i : i + chunk]].float()  # (q, H, E)
        write = torch.einsum("qhe,hed->qhd", zq, W_O)  # (q, H, D) each head's output
        logits = write @ unembed.T  # (q, H, V) its direct effect on the logits
        top = logits.topk(min(TOP_K, logits.shape[-1]), dim=-1).indices  # (q, H, k)
        hits += (top == attended[i : i + chunk, :, None]).any(-1).sum(0).float()
    return hits


def is_hidden(mixer: nn.Module) -> bool:
    """Whether a mixer's pattern is a Mamba hidden attention (not softmax heads)."""
    return isinstance(getattr(mixer, "hook_pattern", None), HiddenAttentionPoint)


def pattern_name(model: nn.Module, layer: int) -> str:
    """The probe name of block `layer`'s pattern (`blocks.0.attn.hook_pattern`,
    `blocks.0.mamba.hook_pattern`)."""
    return f"blocks.{layer}.{model.blocks[layer].mixer.alias}.hook_pattern"


def layer_heads(mixer: nn.Module) -> int:
    """Heads of an attention mixer; channels of a Mamba mixer."""
    return mixer.d_inner if is_hidden(mixer) else mixer.n_heads


def as_heads(pattern: torch.Tensor, mixer: nn.Module) -> torch.Tensor:
    """A layer's captured pattern as (B, H, T, S) heads: attention as it is; a Mamba α
    (B, E, T, S) as each channel's shares |α| / Σ_s |α| (one head per channel)."""
    if not is_hidden(mixer):
        return pattern
    share = pattern.abs()
    return share / share.sum(-1, keepdim=True).clamp_min(1e-30)  # (B, E, T, S)


def attention_layers(model: nn.Module, layers: list[int] | None = None) -> list[int]:
    """The blocks with a pattern (attention, or a Mamba's hidden attention), or those of
    `layers` (an error if one has none)."""
    found = [i for i, b in enumerate(model.blocks) if hasattr(b.mixer, "hook_pattern")]
    if layers is None:
        return found
    missing = sorted(set(layers) - set(found))
    if missing:
        raise ValueError(f"probes.layers {missing}: no attention pattern there (have {found})")
    return [i for i in found if i in layers]


@torch.no_grad()
def head_scores(
    model: nn.Module,
    probe: ProbeSet,
    batch_size: int = 16,
    copying: bool = True,
    layers: list[int] | None = None,
) -> dict:
    """Every score of every attention head on the probe set, plus the model's repeat accuracy.

    Batches of `batch_size` sequences run on the model's device, and only the `layers`
    asked for (default: every attention layer) build their explicit pattern. Returns a
    JSON-ready dict: `scores[name][layer][head]`, the `uniform` baseline of each score,
    the `max_induction` head, and `repeat_accuracy` / `repeat_loss` (next-token
    predictions inside the second copy, first repeated token excluded).
    """
    with eval_mode(model):
        return _head_scores(model, probe, batch_size, copying, layers)


_SCORED = (*PATTERN_SCORES, "copying")


@dataclass
class _Tally:
    """Running sums of `_head_scores` over the probe set's batches (L layers, H heads)."""

    sums: dict[str, torch.Tensor]  # score → (L, H) summed attention mass or copy hits
    by_offset: torch.Tensor  # (L, len(OFFSETS), H) summed mass by key offset
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SCORED, 0))
    uniform: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PATTERN_SCORES, 0.0))
    correct: int = 0  # next-token hits inside the repeat
    loss: float = 0.0  # summed next-token loss inside the repeat
    predicted: int = 0  # tokens predicted inside the repeat
    offset_queries: int = 0  # queries the offset masses are summed over


def _head_scores(model, probe: ProbeSet, batch_size: int, copying: bool, layers) -> dict:
    """`head_scores` with the model already in eval mode."""
    device = next(model.parameters()).device
    layers = attention_layers(model, layers)
    mixers = {i: model.blocks[i].mixer for i in layers}
    names = [pattern_name(model, i) for i in layers]
    if copying:
        names += [f"blocks.{i}.attn.hook_z" for i in layers if not is_hidden(mixers[i])]
    gamma, centre = _final_norm(model)
    W_U = model.unembed.weight.detach().float()[: model.vocab_size]  # (V, D)
    unembed = _centre(W_U * gamma.to(device), centre)  # (V, D): logits = (C γ W_U^T)^T w
    H = max((layer_heads(m) for m in mixers.values()), default=0)
    tally = _Tally(
        sums={k: torch.zeros(len(layers), H, device=device) for k in _SCORED},
        by_offset=torch.zeros(len(layers), len(OFFSETS), H, device=device),
    )
    batch_size, groups = probe_plan(model, layers, probe.tokens.shape[1], batch_size)
    for i in range(0, len(probe.tokens), batch_size):
        part = probe[i : i + batch_size].to(device)
        x = part.tokens  # (B, T)
        queries, pred = part.repeat_queries(), part.repeat_queries(drop_last=True)
        # the first COPY_QUERIES scored queries of the probe set also score copying
        room = max(0, COPY_QUERIES - tally.counts["copying"])
        copy_queries = queries & (queries.flatten().cumsum(0) <= room).view_as(queries)
        for g, group in enumerate(groups):  # one forward per group of layers captured
            want = [n for n in names if int(n.split(".")[1]) in group]
            with capture(model, want, to_cpu=False) as cache:
                h = model(x, hidden=True)  # (B, T, D)
            if g == 0:
                _tally_repeat(model, tally, x, h, pred, queries)
            _tally_layers(model, tally, layers, group, cache, part, queries, copy_queries, unembed)
            del cache
        tally.counts["copying"] += int(copy_queries.sum())
        tally.offset_queries += int(queries.sum())
    return _scores_of(model, layers, H, tally, copying)


PROBE_MEMORY = 2**30  # bytes the patterns captured in one forward of the head probe may take


def probe_plan(
    model: nn.Module, layers: list[int], T: int, batch_size: int
) -> tuple[int, list[list[int]]]:
    """(sequences per batch, groups of layers captured per forward) that keep the captured
    patterns under `PROBE_MEMORY`: all layers at once with up to `batch_size` sequences
    when they fit, else one layer at a time, one sequence at a time if need be. A layer's
    pattern of one sequence is H·T² floats (attention) or E·T² (Mamba's α); that is the
    bound (attention, 8 heads, T = 4,096: 512 MiB, ~3x that at the softmax's peak)."""
    per_layer = {i: _pattern_floats(model.blocks[i].mixer, T) * 4 for i in layers}
    whole = sum(per_layer.values())
    if whole * batch_size <= PROBE_MEMORY or not layers:
        return batch_size, [layers]
    if whole <= PROBE_MEMORY:
        return max(1, PROBE_MEMORY // whole), [layers]
    return max(1, min(batch_size, PROBE_MEMORY // max(per_layer.values()))), [[i] for i in layers]


def _pattern_floats(mixer: nn.Module, T: int) -> int:
    """Floats in one sequence's captured pattern of a layer."""
    return (mixer.d_inner if is_hidden(mixer) else mixer.n_heads) * T * T


def _tally_repeat(model, tally: _Tally, x, h, pred, queries) -> None:
    """Add one batch's repeat predictions (h (B, T, D) the final states) and the uniform
    baselines to `tally`."""
    y = torch.roll(x, -1, dims=1)  # (B, T) next tokens (the wrapped last is never scored)
    scored = F.linear(h[pred], *output_head(model)).float()  # (Q, Vp) logits where scored
    tally.correct += int((scored.argmax(-1) == y[pred]).sum())
    tally.loss += float(F.cross_entropy(scored, y[pred], reduction="sum"))
    tally.predicted += int(pred.sum())
    masks = target_masks(x)
    uniform = uniform_pattern(len(x), x.shape[1], x.device)
    for name in PATTERN_SCORES:  # the baseline and the query count need no attention
        u, n = pattern_score(uniform, masks[name], queries)
        tally.uniform[name] += float(u[0])
        tally.counts[name] += n


def _tally_layers(
    model, tally: _Tally, layers, group, cache, part: ProbeSet, queries, copy_queries, unembed
) -> None:
    """Add the pattern (and copying) scores of the captured layers `group` to `tally`."""
    x = part.tokens  # (B, T)
    masks = target_masks(x)
    for layer in group:
        li, mixer = layers.index(layer), model.blocks[layer].mixer
        pattern = as_heads(cache[pattern_name(model, layer)].float(), mixer)  # (B, H, T, S)
        tally.by_offset[li] += offset_mass(pattern, part)
        for name in PATTERN_SCORES:
            tally.sums[name][li] += pattern_score(pattern, masks[name], queries)[0]
        if copy_queries.any() and f"blocks.{layer}.attn.hook_z" in cache:
            z = cache[f"blocks.{layer}.attn.hook_z"]  # (B, T, H, E)
            tally.sums["copying"][li] += _copy_hits(mixer, z, pattern, x, copy_queries, unembed)


def _scores_of(model, layers: list[int], H: int, tally: _Tally, copying: bool) -> dict:
    """The `head_scores` result from the summed tallies."""
    V, counts = model.vocab_size, tally.counts
    sums, by_offset = {k: v.cpu() for k, v in tally.sums.items()}, tally.by_offset.cpu()
    scores = {k: (sums[k] / max(counts[k], 1)).tolist() for k in PATTERN_SCORES}
    hidden = [is_hidden(model.blocks[i].mixer) for i in layers]
    if copying:
        copy = sums["copying"] / max(counts["copying"], 1)  # (L, H)
        copy[torch.tensor(hidden, dtype=torch.bool)] = float("nan")  # Mamba: none
        scores["copying"] = copy.tolist()
    scores["ov_copying"] = ov_copying(model, layers)
    n_q = max(tally.offset_queries, 1)
    offsets = {j: (by_offset[:, i] / n_q).tolist() for i, j in enumerate(OFFSETS)}
    result = {
        "layers": layers,
        "heads": H,
        "units": {str(i): "channel" if h else "head" for i, h in zip(layers, hidden, strict=True)},
        "scores": scores,
        "uniform": {
            **{k: tally.uniform[k] / max(counts[k], 1) for k in PATTERN_SCORES},
            "copying": min(TOP_K, V) / V,
        },
        "scored_queries": counts,
        "repeat_accuracy": tally.correct / max(tally.predicted, 1),
        "repeat_loss": tally.loss / max(tally.predicted, 1),
    }
    result["max_induction"] = max_head(scores["induction"], layers)
    result["by_offset"] = {str(j): v for j, v in offsets.items()}
    ahead = {j: max_head(v, layers) for j, v in offsets.items() if j >= 1}
    j_best = max(ahead, key=lambda j: ahead[j]["score"] if ahead[j]["score"] is not None else -1)
    result["max_copy_ahead"] = {"offset": j_best, **ahead[j_best]}
    return result


def max_head(per_layer: list[list[float]], layers: list[int]) -> dict:
    """The largest score and where it is: {"score", "layer", "head"} (None without heads)."""
    best = {"score": None, "layer": None, "head": None}
    for li, row in zip(layers, per_layer, strict=True):
        for h, v in enumerate(row):
            if best["score"] is None or v > best["score"]:
                best = {"score": v, "layer": li, "head": h}
    return best
