"""Composition scores from the weights (Elhage et al. 2021, "A Mathematical Framework for
Transformer Circuits"): how much of what an earlier head writes a later head reads in its
queries (Q), keys (K) or values (V).

Legend: N attention layers, H heads, D model width, E head width.

For heads h1 (layer l1) and h2 (layer l2 > l1), with W_OV = W_V W_O and W_QK = W_Q W_Kᵀ
(each D x D, acting on row vectors, x W):

    Q: ‖W_OV¹ W_QK²‖ / (‖W_OV¹‖ ‖W_QK²‖)      K: ‖W_OV¹ W_QK²ᵀ‖ / (‖W_OV¹‖ ‖W_QK²‖)
    V: ‖W_OV¹ W_OV²‖ / (‖W_OV¹‖ ‖W_OV²‖)

with Frobenius norms: TransformerLens's `all_composition_scores`, and equal to it on an
attnlab model opened in TransformerLens 4 (`attnlab.interop.to_transformer_bridge`; a test
checks). Pairs with l2 <= l1 are 0. Like TransformerLens's, the scores ignore the norms,
biases, convolutions and smeared keys between the heads: a conv or smear on the keys
changes what K-composition means, and a model with one says so (`exact: false`). Two
random matrices of these shapes score about `baseline` (the mean over draws of Gaussian
weights of the same shapes), the floor a score must clear to mean anything.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from attnlab.models.attention import Attention

MODES = ("Q", "K", "V")
BASELINE_DRAWS = 20


def attention_blocks(model: nn.Module) -> list[int]:
    """Indices of the blocks whose mixer is softmax attention."""
    return [i for i, b in enumerate(getattr(model, "blocks", [])) if isinstance(b.mixer, Attention)]


def head_circuits(attn: Attention) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_OV, W_QK), each (H, D, D), of one attention layer's heads."""
    H = attn.n_heads
    wq, wk, wv = (
        rearrange(w, "(h e) d -> h d e", h=H) for w in attn.qkv.weight.detach().float().chunk(3)
    )  # (H, D, E) each
    wo = rearrange(attn.out.weight.detach().float(), "d (h e) -> h e d", h=H)  # (H, E, D)
    return wv @ wo, wq @ wk.transpose(1, 2)  # (H, D, D) x 2


def _score(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """‖l r‖ / (‖l‖ ‖r‖) for every pair: (H1, D, D) x (H2, D, D) → (H1, H2); one writer
    at a time (H2 x D x D floats of memory, not H1 x H2 x D x D)."""
    num = torch.stack([(w @ right).flatten(1).norm(dim=-1) for w in left])  # (H1, H2)
    return num / left.flatten(1).norm(dim=-1)[:, None] / right.flatten(1).norm(dim=-1)[None]


def composition_scores(model: nn.Module) -> dict:
    """Q-, K- and V-composition of every head pair across attention layers, as data:
    `layers` (block indices), `scores[mode]` (N, H, N, H) nested lists (layer, head of the
    writer; layer, head of the reader), `baseline` and `exact`; empty when the model has
    fewer than two attention layers."""
    layers = attention_blocks(model)
    if len(layers) < 2:
        return {}
    circuits = [head_circuits(model.blocks[i].mixer) for i in layers]  # [(OV, QK)]
    N, H = len(layers), circuits[0][0].shape[0]
    out = {m: torch.zeros(N, H, N, H) for m in MODES}
    for a in range(N):
        for b in range(a + 1, N):
            ov1, (ov2, qk2) = circuits[a][0], circuits[b]
            out["Q"][a, :, b] = _score(ov1, qk2)
            out["K"][a, :, b] = _score(ov1, qk2.transpose(1, 2))
            out["V"][a, :, b] = _score(ov1, ov2)
    attn = model.blocks[layers[0]].mixer
    exact = all(
        model.blocks[i].mixer.conv is None and model.blocks[i].mixer.smear_alpha is None
        for i in layers
    )
    return {
        "layers": layers,
        "scores": {m: out[m].round(decimals=4).tolist() for m in MODES},
        "baseline": random_baseline(attn.qkv.in_features, attn.head_dim),
        "exact": exact,
    }


def random_baseline(d_model: int, head_dim: int, draws: int = BASELINE_DRAWS) -> float:
    """The mean Q-composition score of Gaussian W_Q, W_K, W_V, W_O of these shapes."""
    g = torch.Generator().manual_seed(0)

    def circuit() -> torch.Tensor:
        a, b = (torch.randn(d_model, head_dim, generator=g) for _ in range(2))
        return (a @ b.T)[None]  # (1, D, D) of rank E

    scores = [float(_score(circuit(), circuit())) for _ in range(draws)]
    return round(sum(scores) / draws, 4)


def top_pairs(comp: dict, k: int = 3) -> list[dict]:
    """The k highest-scoring (writer, reader, mode) pairs, with their scores."""
    rows = []
    for mode, s in comp.get("scores", {}).items():
        t = torch.tensor(s)  # (N, H, N, H)
        for idx in t.flatten().topk(k).indices.tolist():
            a, h1, b, h2 = torch.unravel_index(torch.tensor(idx), t.shape)
            rows.append(
                {
                    "mode": mode,
                    "writer": [comp["layers"][int(a)], int(h1)],
                    "reader": [comp["layers"][int(b)], int(h2)],
                    "score": float(t[a, h1, b, h2]),
                }
            )
    return sorted(rows, key=lambda r: -r["score"])[:k]
