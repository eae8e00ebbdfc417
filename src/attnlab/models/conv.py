"""Depth-wise causal 1-D convolution over time.

Legend: B batch, T time, C channels, K kernel size.

Output at t mixes inputs t-K+1 … t of the same channel: the input is padded with K-1
zeros on the left only, so nothing after t is read (causal). The write-ups' Conv-Attn uses
`nn.Conv1d(groups=C)` on the embeddings; this module is the same operation on (B, T, C)
tensors without the two transposes' copies in the caller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class CausalDepthwiseConv(nn.Module):
    """`y[b, t, c] = bias[c] + sum_j weight[c, j] * x[b, t - (K-1) + j, c]` (zeros before 0)."""

    def __init__(self, channels: int, kernel_size: int, bias: bool = True):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = rearrange(x, "b t c -> b c t")  # (B, C, T)
        h = F.pad(h, (self.kernel_size - 1, 0))  # (B, C, T+K-1)
        return rearrange(self.conv(h), "b c t -> b t c")  # (B, T, C)

    def forward_ref(self, x: torch.Tensor) -> torch.Tensor:
        """Slow reference: an explicit sum over kernel offsets."""
        w = self.conv.weight[:, 0, :]  # (C, K)
        out = torch.zeros_like(x)  # (B, T, C)
        T, K = x.shape[1], self.kernel_size
        for t in range(T):
            for j in range(K):
                src = t - (K - 1) + j
                if src >= 0:
                    out[:, t] += w[:, j] * x[:, src]
        if self.conv.bias is not None:
            out = out + self.conv.bias
        return out
