"""Static probes: they read the parameters only (no forward pass) — convolution kernel
profiles, smear gates, embedding and positional geometry.

Legend: C channels, K kernel size, V vocabulary, D model width, L positions.

Kernel offsets. `CausalDepthwiseConv` computes `y[t] = Σ_j w[c, j] x[t - (K-1) + j]`, a
cross-correlation as in `nn.Conv1d` (no flip): weight index j reads the input at offset
j - (K-1) from the current token. So `w[:, K-1]` weighs the current token (offset 0) and
`w[:, 0]` the one K-1 steps back. A profile lists offsets -K+1 … 0 in that order (a
centred conv, `conv_padding: same`, reads -(K-1)//2 … K//2: the future too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.models.conv import CausalDepthwiseConv


def kernel_profile(weight: torch.Tensor, left: int | None = None) -> dict:
    """Per-offset statistics of a depth-wise kernel (C, K) over its channels (JSON-ready).

    `mean` and `mean_abs` are averages over channels, `std` their spread, `min` / `max`
    the extreme weights at each offset (write-up 001's "range"); `argmax_offset`
    is the offset of the largest mean |weight|; `peak_share[i]` the share of channels
    whose largest |weight| sits at offset i. `init_mean_abs` is the mean |weight| of
    PyTorch's default initialisation, U(-1/√K, 1/√K): offsets still near it have not
    been trained away from the start. `left`: how many of the K offsets lie before the
    current token (K - 1 for a causal conv, the default; (K - 1) // 2 for a centred one).
    """
    w = weight.detach().float().cpu()  # (C, K)
    K = w.shape[1]
    left = K - 1 if left is None else left
    mean_abs = w.abs().mean(0)  # (K,)
    peaks = torch.bincount(w.abs().argmax(1), minlength=K).float() / w.shape[0]  # (K,)
    return {
        "offsets": list(range(-left, K - left)),
        "mean": w.mean(0).tolist(),
        "mean_abs": mean_abs.tolist(),
        "std": w.std(0, correction=0).tolist(),
        "min": w.min(0).values.tolist(),
        "max": w.max(0).values.tolist(),
        "argmax_offset": int(mean_abs.argmax()) - left,
        "peak_share": peaks.tolist(),
        "channels": w.shape[0],
        "init_mean_abs": 0.5 / K**0.5,
    }


def conv_profiles(model: nn.Module) -> dict[str, dict]:
    """Kernel profiles of every depth-wise conv, by block and (for `qkv` convs) by part."""
    out = {}
    for i, block in enumerate(model.blocks):
        mixer = block.mixer
        conv = getattr(mixer, "conv", None)
        if not isinstance(conv, CausalDepthwiseConv):
            continue
        w = conv.conv.weight[:, 0, :]  # (C, K)
        where = getattr(mixer, "conv_where", "input")
        prefix = f"blocks.{i}.{getattr(mixer, 'alias', 'mixer')}.conv"
        if where == "qkv":
            for part, chunk in zip("qkv", w.chunk(3, dim=0), strict=True):
                out[f"{prefix}.{part}"] = {"where": where, **kernel_profile(chunk, conv.left)}
        else:
            out[prefix] = {"where": where, **kernel_profile(w, conv.left)}
    return out


def smear_gates(model: nn.Module) -> dict[str, list[float]]:
    """σ(α) per head of every smeared-key layer: the weight of the key's own token."""
    out = {}
    for i, block in enumerate(model.blocks):
        gate = getattr(block.mixer, "smear_gate", None)
        if callable(gate) and gate() is not None:
            out[f"blocks.{i}.attn.smear_gate"] = gate().cpu().tolist()
    return out


def pca_2d(x: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Rows of x (N, D) projected on their first two principal axes, and the variance shares."""
    x = x.double() - x.double().mean(0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    var = s**2 / (s**2).sum().clamp_min(1e-30)
    return (x @ vh[:2].T).float(), var[:2].tolist()


def nearest_neighbours(emb: torch.Tensor, ids: list[int], k: int = 5) -> dict[int, list]:
    """For each id, the k other rows of `emb` (V, D) closest by cosine: [(id, cosine)]."""
    unit = F.normalize(emb.float(), dim=-1)  # (V, D)
    sims = unit[ids] @ unit.T  # (n, V)
    sims[torch.arange(len(ids)), torch.tensor(ids)] = -2.0  # never itself
    top = sims.topk(min(k, emb.shape[0] - 1), dim=-1)
    return {
        i: [(int(j), float(c)) for j, c in zip(idx, val, strict=True)]
        for i, idx, val in zip(ids, top.indices.tolist(), top.values.tolist(), strict=True)
    }


def position_cosine(model: nn.Module) -> torch.Tensor | None:
    """(L, L) cosine similarity of learned positional embeddings; None without a table."""
    pos = getattr(model, "pos", None)
    weight = getattr(pos, "weight", None)
    if weight is None:
        return None
    return cosine_matrix(weight.detach())


def cosine_matrix(rows: torch.Tensor) -> torch.Tensor:
    """(L, L) cosine similarity of the rows of a (L, D) table."""
    unit = F.normalize(rows.float().cpu(), dim=-1)  # (L, D)
    return unit @ unit.T


def cosine_by_distance(cos: torch.Tensor) -> list[float]:
    """Mean cosine of position pairs d apart, d = 0 … L-1 (from a (L, L) matrix)."""
    L = cos.shape[0]
    return [float(torch.diagonal(cos, d).mean()) for d in range(L)]
