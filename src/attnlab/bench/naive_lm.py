"""The write-ups' style of model, kept as the naive reference for benchmarks.

`nn.MultiheadAttention` with an explicit causal mask, `nn.Conv1d` padded k-1 on both sides
and cut back to T, an unpadded 50257-way head, `F.cross_entropy` on the full logits, and a
plain PyTorch loop. Equivalent in function to attnlab's Attn-Attn / Conv-Attn, not tuned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NaiveBlock(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, bias=False, batch_first=True)

    def forward(self, x, mask):
        h = self.ln(x)
        out, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        return x + out


class NaiveLM(nn.Module):
    """Embeddings (+ optional Conv1d) → attention blocks → LayerNorm → linear head."""

    def __init__(
        self,
        vocab: int,
        d: int,
        heads: int,
        layers: int,
        seq_len: int,
        conv_kernel: int | None = None,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq_len, d)
        self.conv = (
            nn.Conv1d(d, d, conv_kernel, padding=conv_kernel - 1, groups=d) if conv_kernel else None
        )
        self.blocks = nn.ModuleList(NaiveBlock(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, x):
        T = x.shape[1]
        h = self.embed(x) + self.pos(torch.arange(T, device=x.device))
        if self.conv is not None:
            h = self.conv(h.transpose(1, 2))[:, :, :T].transpose(1, 2)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1)
        for block in self.blocks:
            h = block(h, mask)
        return self.head(self.ln(h))


def naive_step(model, opt, x, y) -> float:
    """One training step the way the write-ups wrote it."""
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()
