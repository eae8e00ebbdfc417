"""Which heads the repeat behaviour needs: ablate each head, and each layer's previous-token
heads and all induction heads together, and measure repeat accuracy and loss on the
probe set (`probes.ablation`, `attnlab probe RUN_DIR --ablation`).

An induction circuit (Olsson et al. 2022) is a previous-token head in one layer whose
output a later head's keys read (K-composition): ablating either breaks it, so both
should drop repeat accuracy toward a model that cannot do induction (a 1-layer
attention-only model). Ablation is by the head's mean output over the probe set (`mean`,
TransformerLens's mean ablation, which keeps the activation's typical size) or by zero.

Legend: N probe sequences, T length, Q predicted repeat positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.models.stack import output_head
from attnlab.probes.capture import eval_mode
from attnlab.probes.heads import is_hidden
from attnlab.probes.intervene import ablate, head_patching
from attnlab.probes.sequences import ProbeSet

PREVIOUS_TOKEN_HEAD = 0.3  # previous-token score from which a head counts as one
INDUCTION_HEAD = 0.2  # induction score from which a head counts as one (a fifth of its mass)
REFERENCE_SEQUENCES = 64  # the probe rows whose mean output a mean ablation uses


@torch.no_grad()
def repeat_stats(model: nn.Module, probe: ProbeSet, batch_size: int = 16) -> dict:
    """Next-token accuracy and mean loss inside the second copy (first repeated token
    excluded) of the probe set: what `head_scores` reports, without the patterns."""
    device = next(model.parameters()).device
    correct, loss, n = 0, 0.0, 0
    for i in range(0, len(probe.tokens), batch_size):
        part = probe[i : i + batch_size].to(device)
        x, pred = part.tokens, part.repeat_queries(drop_last=True)  # (B, T) each
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
    """Repeat accuracy and loss with each attention head ablated, then with each layer's
    previous-token heads (score >= `PREVIOUS_TOKEN_HEAD`) and with every induction head
    (>= `INDUCTION_HEAD`) ablated together; `scores` is `head_scores`'s result. The
    ablated values come from `reference` (`REFERENCE_SEQUENCES` rows of another probe
    set, which `mean_pos` and `resample` need; `mean` falls back to the probe set's own
    first rows)."""
    if how in ("mean_pos", "resample") and reference is None:
        raise ValueError(f"{how} ablation needs a reference probe set other than the scored one")
    with eval_mode(model):
        return _table(model, probe, scores, batch_size, how, reference or probe)


def _table(
    model: nn.Module, probe: ProbeSet, scores: dict, batch_size: int, how: str, ref: ProbeSet
) -> dict:
    # attention layers only: a Mamba layer's channel groups have no head output to ablate
    keep = [li for li, i in enumerate(scores["layers"]) if not is_hidden(model.blocks[i].mixer)]
    layers, H = [scores["layers"][li] for li in keep], scores["heads"]
    prev = [scores["scores"]["previous_token"][li] for li in keep]
    ind = [scores["scores"]["induction"][li] for li in keep]
    reference = (ref.tokens[:REFERENCE_SEQUENCES].to(next(model.parameters()).device),)

    def ablated(heads: dict[int, list[int]]) -> dict:
        with ablate(model, heads, how, reference):
            return repeat_stats(model, probe, batch_size)

    rows = []
    for li, layer in enumerate(layers):
        for h in range(H):
            row = {"layer": layer, "head": h, "previous_token": prev[li][h]}
            rows.append({**row, "induction": ind[li][h], **ablated({layer: [h]})})
    groups = []
    for li, layer in enumerate(layers):
        heads = [h for h in range(H) if prev[li][h] >= PREVIOUS_TOKEN_HEAD]
        if heads:
            what = f"layer {layer}'s previous-token heads"
            groups.append({"what": what, "heads": {layer: heads}, **ablated({layer: heads})})
    induction = {
        layer: [h for h in range(H) if ind[li][h] >= INDUCTION_HEAD]
        for li, layer in enumerate(layers)
    }
    induction = {layer: hs for layer, hs in induction.items() if hs}
    if induction:
        groups.append({"what": "every induction head", "heads": induction, **ablated(induction)})
    return {
        "how": how,
        "reference": "another probe set" if ref is not probe else "the probe set's first rows",
        "thresholds": {"previous_token": PREVIOUS_TOKEN_HEAD, "induction": INDUCTION_HEAD},
        "baseline": repeat_stats(model, probe, batch_size),
        "heads": rows,
        "groups": [{**g, "heads": {str(k): v for k, v in g["heads"].items()}} for g in groups],
        "patching": induction_patching(model, probe, layers),
    }


PATCH_SEQUENCES = 16  # probe rows in the patching experiment


def induction_patching(model: nn.Module, probe: ProbeSet, layers: list[int]) -> dict:
    """Activation patching of each head (TransformerLens style): clean = the probe rows,
    corrupted = the same rows with their first copy redrawn (so the second copy repeats
    nothing); the metric is the mean log-probability of the repeated tokens in the
    second copy. Each head's output (`hook_z`, all positions) is patched from the clean
    run into the corrupted one: the share of the clean − corrupted gap it restores,
    (L, H). An induction head restores much of it alone."""
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

    grid, base = head_patching(model, (clean,), (corrupted,), metric, layers)
    return {
        "layers": layers,
        "recovered": grid.tolist(),
        "clean": base.clean if base else None,
        "corrupted": base.corrupted if base else None,
        "sequences": len(clean),
    }
