"""Positional encodings: learned, sinusoidal (Vaswani et al.), rotary (Su et al.).

Legend: B batch, T time, D model width, H heads, E head width.

`learned` and `sinusoidal` are added to the token embeddings; `rope` rotates queries and
keys inside attention (the `Rotary` module below) and adds nothing to the embeddings.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoid_table(n: int, d: int) -> torch.Tensor:
    """The (n, d) table of sin/cos at geometric frequencies (even dims sin, odd cos)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]  # (n, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return table


class LearnedPositions(nn.Module):
    """A trainable (max_len, D) table added to the embeddings."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_len, d_model))

    @torch.no_grad()
    def init_sinusoidal(self) -> None:
        """Start from the fixed sinusoid table (Vaswani et al.), then train."""
        self.weight.copy_(sinusoid_table(*self.weight.shape))

    def forward(self, T: int) -> torch.Tensor:
        return self.weight[:T]  # (T, D)


class SinusoidalPositions(nn.Module):
    """The fixed sinusoidal table, a buffer (not trained, not saved)."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer("table", sinusoid_table(max_len, d_model), persistent=False)

    def forward(self, T: int) -> torch.Tensor:
        return self.table[:T]  # (T, D)


class Rotary(nn.Module):
    """Rotary position embedding on (B, H, T, E) queries and keys (rotate-half form)."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0):
        super().__init__()
        inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        ang = torch.arange(max_len, dtype=torch.float32)[:, None] * inv  # (L, E/2)
        ang = torch.cat([ang, ang], dim=-1)  # (L, E)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Rotate x (B, H, T, E) whose first position is `start` (cached decoding)."""
        T = x.shape[-2]
        x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, E/2) each
        rotated = torch.cat([-x2, x1], dim=-1)  # (B, H, T, E)
        cos = self.cos[start : start + T].to(x.dtype)
        sin = self.sin[start : start + T].to(x.dtype)
        return x * cos + rotated * sin
