"""The best small-GPT code's model and step, for `attnlab bench train --variants gpt-ref`.

Written after Karpathy's nanoGPT (`model.py`, `train.py`; MIT): token and position
embeddings, pre-LayerNorm blocks with one fused `c_attn` projection, `scaled_dot_product_
attention(is_causal=True)` and `c_proj`, a GELU MLP of 4 x D (left out here when the
config is attention-only, so both sides run the same stack), a final LayerNorm, and a
head tied to the token embedding over the vocabulary padded to a multiple of 64 (50,304).
Its step is nanoGPT's: `F.cross_entropy` on the full logits, backward, clip at 1.0, and
AdamW with weight decay on the 2-D weights, fused only on CUDA (nanoGPT's `use_fused`
rule), `zero_grad(set_to_none=True)`. The bench runs it with attnlab's allocator setting
(`train.memory.keep_freed_memory`), so the two differ in model and step code alone.

Legend: B batch, T time, D width, H heads, Vp padded vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GPTBlock(nn.Module):
    def __init__(self, d: int, heads: int, mlp: bool):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d) if mlp else None
        self.mlp = (
            nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)) if mlp else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)  # (B, T, D) each
        q, k, v = (t.view(B, T, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, E)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, D))
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))
        return x


class GPTRef(nn.Module):
    """(B, T) ids → (B, T, Vp) logits; `lm_head` tied to `wte`."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, seq_len: int, mlp: bool):
        super().__init__()
        vp = -(-vocab // 64) * 64  # nanoGPT's 50,304
        self.wte, self.wpe = nn.Embedding(vp, d), nn.Embedding(seq_len, d)
        self.h = nn.ModuleList(GPTBlock(d, heads, mlp) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vp, bias=False)
        self.lm_head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, D)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, Vp)


def gpt_optimizer(model: GPTRef, lr: float, weight_decay: float, betas) -> torch.optim.AdamW:
    """nanoGPT's `configure_optimizers`: decay the 2-D weights; fused only on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


def gpt_step(model: GPTRef, opt, x: torch.Tensor, y: torch.Tensor) -> float:
    """One nanoGPT training step (no gradient accumulation, clip 1.0)."""
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()
