"""Which heads the repeat behaviour needs, and through which path: ablate each head, and
each layer's previous-token heads and all induction heads together, and measure repeat
accuracy and loss on the probe set (`probes.ablation`, `attnlab probe RUN_DIR --ablation`).

An induction circuit (Olsson et al. 2022) is a previous-token head in one layer whose
output a later head's keys read (K-composition): ablating either breaks it, so both
should drop repeat accuracy toward a model that cannot do induction (a 1-layer
attention-only model). Ablation is by the head's mean output (`mean`, TransformerLens's
mean ablation), its mean at each position (`mean_pos`), another input's output
(`resample`) — all from a reference probe set other than the scored one — or by zero.

`circuit` then asks which input of the later heads reads the previous-token heads: their
output path-ablated into the induction layer's queries, keys or values alone, or into
the logits (the direct path), by per-position mean and by resampling; the same heads
ablated with every attention pattern held (Olsson's pattern-preserving ablation: what
is left acts through values); the same paths patched from clean into corrupted runs
(normalised: 0 = corrupted, 1 = clean); and the weights' composition scores for the
same head pairs.

Legend: N probe sequences, T length, Q predicted repeat positions.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.models.attention import Attention
from attnlab.models.stack import output_head
from attnlab.probes.capture import capture, eval_mode
from attnlab.probes.composition import composition_scores
from attnlab.probes.heads import is_hidden
from attnlab.probes.intervene import ablate, head_patching
from attnlab.probes.paths import path_ablate, pattern_preserving
from attnlab.probes.sequences import ProbeSet

PREVIOUS_TOKEN_HEAD = 0.3  # previous-token score from which a head counts as one
INDUCTION_HEAD = 0.2  # induction score from which a head counts as one (a fifth of its mass)
REFERENCE_SEQUENCES = 64  # the probe rows whose mean output a mean ablation uses
MAMBA_ABLATED_CHANNELS = 8  # a Mamba layer's channels ablated one by one: the top by each score


@torch.no_grad()
def repeat_stats(
    model: nn.Module,
    probe: ProbeSet,
    batch_size: int = 16,
    around: Callable[[torch.Tensor], AbstractContextManager] | None = None,
) -> dict:
    """Next-token accuracy and mean loss inside the second copy (first repeated token
    excluded) of the probe set: what `head_scores` reports, without the patterns.
    `around(tokens)`, when given, is a context each batch runs inside (an intervention
    that needs the batch's own clean run, as pattern preservation does)."""
    device = next(model.parameters()).device
    correct, loss, n = 0, 0.0, 0
    for i in range(0, len(probe.tokens), batch_size):
        part = probe[i : i + batch_size].to(device)
        x, pred = part.tokens, part.repeat_queries(drop_last=True)  # (B, T) each
        with around(x) if around else nullcontext():
            h = model(x, hidden=True)  # (B, T, D)
        y = torch.roll(x, -1, dims=1)  # (B, T) next tokens
        logits = F.linear(h[pred], *output_head(model)).float()  # (Q, Vp)
        correct += int((logits.argmax(-1) == y[pred]).sum())
        loss += float(F.cross_entropy(logits, y[pred], reduction="sum"))
        n += int(pred.sum())
    return {"repeat_accuracy": correct / max(n, 1), "repeat_loss": loss / max(n, 1)}


def ablation_table(
    model: nn.Module,
    probe: ProbeSet,
    scores: dict,
    batch_size: int = 16,
    how: str = "mean",
    reference: ProbeSet | None = None,
) -> dict:
    """Repeat accuracy and loss with each attention head ablated (a Mamba layer: each of
    its `MAMBA_ABLATED_CHANNELS` top channels by induction and by previous-token score,
    the unit the scores name), then with each layer's previous-token heads (score >=
    `PREVIOUS_TOKEN_HEAD`), a Mamba layer's top induction channels, and every induction
    head (>= `INDUCTION_HEAD`) ablated together, the head patching and the `circuit`
    between layers; `scores` is `head_scores`'s result. The
    ablated values come from `reference` (`REFERENCE_SEQUENCES` rows of another probe
    set, which `mean_pos` and `resample` need; `mean` falls back to the probe set's own
    first rows)."""
    if how in ("mean_pos", "resample") and reference is None:
        raise ValueError(f"{how} ablation needs a reference probe set other than the scored one")
    with eval_mode(model):
        return _table(model, probe, scores, batch_size, how, reference or probe)


def top_units(scores: list[float], k: int) -> list[int]:
    """The indices of the k highest scores (ties by index)."""
    return sorted(range(len(scores)), key=lambda h: (-scores[h], h))[:k]


def top_channels(induction: list[float], previous: list[float], k: int) -> list[int]:
    """A Mamba layer's channels worth listing: its k highest by induction score and its
    k highest by previous-token score, in index order."""
    return sorted(set(top_units(induction, k)) | set(top_units(previous, k)))


def _table(
    model: nn.Module, probe: ProbeSet, scores: dict, batch_size: int, how: str, ref: ProbeSet
) -> dict:
    layers = scores["layers"]
    prev, ind = scores["scores"]["previous_token"], scores["scores"]["induction"]
    hidden = [is_hidden(model.blocks[i].mixer) for i in layers]
    reference = (ref.tokens[:REFERENCE_SEQUENCES].to(next(model.parameters()).device),)

    def ablated(heads: dict[int, list[int]]) -> dict:
        with ablate(model, heads, how, reference):
            return repeat_stats(model, probe, batch_size)

    def units(li: int) -> list[int]:  # every head; a Mamba layer's top-scoring channels
        n = len(ind[li])
        if not hidden[li]:
            return list(range(n))
        return top_channels(ind[li], prev[li], MAMBA_ABLATED_CHANNELS)

    rows = []
    for li, layer in enumerate(layers):
        for h in units(li):
            row = {"layer": layer, "head": h, "previous_token": prev[li][h]}
            rows.append({**row, "induction": ind[li][h], **ablated({layer: [h]})})
    groups = []
    for li, layer in enumerate(layers):
        unit = "channels" if hidden[li] else "heads"
        heads = [h for h, v in enumerate(prev[li]) if v >= PREVIOUS_TOKEN_HEAD]
        if heads:
            what = f"layer {layer}'s previous-token {unit}"
            groups.append({"what": what, "heads": {layer: heads}, **ablated({layer: heads})})
        if hidden[li]:  # channels rarely clear the thresholds: the top ones by induction
            top = top_units(ind[li], MAMBA_ABLATED_CHANNELS)
            what = f"layer {layer}'s top {len(top)} induction channels"
            groups.append({"what": what, "heads": {layer: top}, **ablated({layer: top})})
    induction = {
        layer: [h for h, v in enumerate(ind[li]) if v >= INDUCTION_HEAD]
        for li, layer in enumerate(layers)
    }
    induction = {layer: hs for layer, hs in induction.items() if hs}
    if induction:
        whole = all(len(hs) == len(ind[layers.index(la)]) for la, hs in induction.items())
        what = "every head (all induction heads)" if whole else "every induction head"
        groups.append({"what": what, "heads": induction, **ablated(induction)})
    attention = [layer for layer, h in zip(layers, hidden, strict=True) if not h]
    return {
        "how": how,
        "reference": "another probe set" if ref is not probe else "the probe set's first rows",
        "thresholds": {"previous_token": PREVIOUS_TOKEN_HEAD, "induction": INDUCTION_HEAD},
        "baseline": repeat_stats(model, probe, batch_size),
        "heads": rows,
        "groups": [{**g, "heads": {str(k): v for k, v in g["heads"].items()}} for g in groups],
        "patching": induction_patching(model, probe, attention),
        "circuit": circuit(model, probe, scores, batch_size, ref),
    }


PATCH_SEQUENCES = 16  # probe rows in the patching experiment


def lacks_induction(model: nn.Module) -> bool:
    """True for a model that cannot form an induction head by construction: one
    attention-only layer without conv or smeared keys, whose queries can match a key's own
    token but not the token before it (Olsson et al. 2022). Its patching effects are the
    floor a head's effect must clear."""
    blocks = getattr(model, "blocks", [])
    if len(blocks) != 1 or not isinstance(blocks[0].mixer, Attention):
        return False
    attn = blocks[0].mixer
    return attn.conv is None and attn.smear_alpha is None and blocks[0].mlp is None


def patching_pair(
    model: nn.Module, probe: ProbeSet
) -> tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], float]]:
    """Clean = the first `PATCH_SEQUENCES` probe rows, corrupted = the same rows with
    their first copy redrawn (so the second copy repeats nothing), and the metric: the
    mean log-probability of the repeated tokens in the second copy."""
    part = probe[:PATCH_SEQUENCES].to(next(model.parameters()).device)
    clean = part.tokens  # (N, T)
    corrupted = clean.clone()
    g = torch.Generator().manual_seed(1)
    for i in range(len(clean)):
        p, s = int(part.prefix[i]), int(part.seg_len[i])
        fresh = torch.randint(0, model.vocab_size, (s,), generator=g).to(clean.device)
        corrupted[i, p : p + s] = fresh  # the first copy, redrawn
    pred = part.repeat_queries(drop_last=True)  # (N, T) positions predicting a repeat
    target = torch.roll(clean, -1, dims=1)  # (N, T) the repeated tokens

    def metric(logits: torch.Tensor) -> float:
        logp = logits.float().log_softmax(-1).gather(-1, target[..., None])[..., 0]  # (N, T)
        return float(logp[pred].mean())

    return clean, corrupted, metric


def induction_patching(model: nn.Module, probe: ProbeSet, layers: list[int]) -> dict:
    """Activation patching of each head (TransformerLens style) on `patching_pair`: each
    head's output (`hook_z`, all positions) is patched from the clean run into the
    corrupted one: the share of the clean − corrupted gap it restores, (L, H), normalised
    (0 = corrupted, 1 = clean). An induction head restores much of it alone; `control`
    marks a model that cannot induce (`lacks_induction`), whose shares are the floor."""
    clean, corrupted, metric = patching_pair(model, probe)
    grid, base = head_patching(model, (clean,), (corrupted,), metric, layers)
    return {
        "layers": layers,
        "recovered": grid.tolist(),
        "clean": base.clean if base else None,
        "corrupted": base.corrupted if base else None,
        "sequences": len(clean),
        "control": lacks_induction(model),
    }


CIRCUIT_ABLATIONS = ("mean_pos", "resample")  # ablations that keep the model on its inputs
PATHS = ("q", "k", "v")


def circuit(
    model: nn.Module, probe: ProbeSet, scores: dict, batch_size: int, ref: ProbeSet
) -> dict:
    """Through which input the induction heads read the previous-token heads. Sender:
    the previous-token heads (score >= `PREVIOUS_TOKEN_HEAD`) of the first layer that
    has them before a layer with induction heads; receivers: those later layers.
    Returns repeat accuracy and loss with the sender's output ablated everywhere (`all`),
    into the receivers' queries, keys or values only, into the logits only, and with
    every attention pattern held (`pattern_preserving`), for each of
    `CIRCUIT_ABLATIONS`; the same paths patched clean → corrupted (`patching`, share of
    the gap restored); and the mean Q/K/V composition score over the (sender, induction
    head) pairs. `{"skipped": why}` for a model without such a pair of layers."""
    layers = [i for i in scores["layers"] if not is_hidden(model.blocks[i].mixer)]
    li = {layer: k for k, layer in enumerate(scores["layers"])}
    H = scores["heads"]
    prev = {
        a: [
            h
            for h in range(H)
            if scores["scores"]["previous_token"][li[a]][h] >= PREVIOUS_TOKEN_HEAD
        ]
        for a in layers
    }
    ind = {
        b: [h for h in range(H) if scores["scores"]["induction"][li[b]][h] >= INDUCTION_HEAD]
        for b in layers
    }
    pairs = [(a, [b for b in layers if b > a and ind[b]]) for a in layers if prev[a]]
    pairs = [(a, bs) for a, bs in pairs if bs]
    if not pairs:
        return {"skipped": "no previous-token head in a layer before one with induction heads"}
    a, receivers = pairs[0]
    reference = (ref.tokens[:REFERENCE_SEQUENCES].to(next(model.parameters()).device),)
    sender = prev[a]

    def stats(context: Callable[[], AbstractContextManager]) -> dict:
        with context():
            return repeat_stats(model, probe, batch_size)

    ablation = {}
    for how in CIRCUIT_ABLATIONS:
        row = {"all": stats(lambda how=how: ablate(model, {a: sender}, how, reference))}
        for what in (*PATHS, "logits"):
            into = [(what, b) for b in receivers] if what != "logits" else [("logits", None)]
            row[what] = stats(
                lambda i=into, how=how: path_ablate(model, a, sender, i, how, reference)
            )

        def held(x: torch.Tensor, how: str = how) -> AbstractContextManager:
            return pattern_preserving(model, (x,), {a: sender}, how, reference)

        row["pattern_preserving"] = repeat_stats(model, probe, batch_size, around=held)
        ablation[how] = row
    clean, corrupted, metric = patching_pair(model, probe)
    readers = {b: ind[b] for b in receivers}
    run = _induction_mass(model, probe[:PATCH_SEQUENCES], readers)
    (mass_clean, logits_clean), (mass_corrupted, logits_corrupted) = run(clean), run(corrupted)
    base = (metric(logits_clean), metric(logits_corrupted))
    patching, attention = {}, {}
    for what in ("all", *PATHS, "logits"):
        into = {
            "all": [(w, b) for w in PATHS for b in receivers] + [("logits", None)],
            "logits": [("logits", None)],
        }.get(what, [(what, b) for b in receivers])
        # path patching (`paths.path_patch`): the clean senders' output put into `into`
        with torch.no_grad(), path_ablate(model, a, sender, into, "resample", (clean,)):
            mass, logits = run(corrupted)
        patching[what] = _share(*base, metric(logits))
        attention[what] = _share(mass_clean, mass_corrupted, mass)
    return {
        "sender": {"layer": a, "heads": sender},
        "receivers": {str(b): ind[b] for b in receivers},
        "ablations": list(CIRCUIT_ABLATIONS),
        "ablation": ablation,
        "patching": patching,
        "patching_attention": attention,
        "composition": _pair_composition(model, a, sender, {b: ind[b] for b in receivers}),
    }


def _share(clean: float, corrupted: float, patched: float) -> float:
    """(patched − corrupted) / (clean − corrupted): 0 = corrupted, 1 = clean."""
    gap = clean - corrupted
    return (patched - corrupted) / gap if gap else float("nan")


def _induction_mass(model: nn.Module, part: ProbeSet, readers: dict[int, list[int]]):
    """A function of tokens (N, T) → (the mean attention of the `readers` heads (layer →
    heads) from each repeat query t to its induction target, the key after the earlier
    copy of t's token (t − seg_len + 1), the logits), from one forward pass: what
    K-composition restores when patched (run inside an edit, it measures the edited
    model)."""
    part = part.to(next(model.parameters()).device)
    pred = part.repeat_queries(drop_last=True)  # (N, T)
    rows, t = pred.nonzero(as_tuple=True)  # (Q,) each
    target = t - part.seg_len[rows] + 1  # (Q,) the induction target keys
    names = [f"blocks.{b}.attn.hook_pattern" for b in readers]

    def mass(tokens: torch.Tensor) -> tuple[float, torch.Tensor]:
        with torch.no_grad(), capture(model, names, to_cpu=False) as cache:
            logits = model(tokens)
        got = [
            cache[f"blocks.{b}.attn.hook_pattern"][rows, :, t, target][:, hs]
            for b, hs in readers.items()
        ]
        return float(torch.cat(got, dim=1).mean()), logits  # over queries and reader heads

    return mass


def _pair_composition(model: nn.Module, a: int, sender: list[int], readers: dict) -> dict:
    """The mean Q-, K- and V-composition score (Elhage et al.) over the (sender head,
    induction head) pairs, with the random baseline and whether the scores are exact."""
    comp = composition_scores(model)
    pos = {layer: k for k, layer in enumerate(comp["layers"])}
    out = {}
    for mode, grid in comp["scores"].items():
        vals = [grid[pos[a]][h][pos[b]][g] for h in sender for b, gs in readers.items() for g in gs]
        out[mode] = sum(vals) / len(vals)
    return {**out, "baseline": comp["baseline"], "exact": comp["exact"]}
