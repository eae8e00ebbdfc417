"""Depth-wise causal 1-D convolution over time.

Legend: B batch, T time, C channels, K kernel size.

Output at t mixes inputs t-K+1 … t of the same channel: the input is padded with K-1
zeros on the left only, so nothing after t is read (causal). The write-ups' Conv-Attn uses
`nn.Conv1d(groups=C)` on the embeddings; this module is the same operation on (B, T, C)
tensors without the two transposes' copies in the caller.

`padding="same"` is the centred convolution (`nn.Conv1d(padding=K // 2)`): (K-1)//2 zeros
on the left and K//2 on the right, so the output at t reads t + 1 … t + K//2 too. It sees
the future: the leak check rejects it (naming `future_offsets`), and a run trains it only
with `train.allow_leak`. It is here to show what write-up 001's 99.8% accuracy was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class CausalDepthwiseConv(nn.Module):
    """`y[b, t, c] = bias[c] + sum_j weight[c, j] * x[b, t - left + j, c]` (zeros outside),
    `left` = K-1 (causal, the default) or (K-1)//2 (`padding="same"`, centred)."""

    def __init__(self, channels: int, kernel_size: int, bias: bool = True, padding="causal"):
        super().__init__()
        if padding not in ("causal", "same"):
            raise ValueError(f"padding {padding!r}: choose causal or same")
        self.kernel_size, self.padding = kernel_size, padding
        self.left = kernel_size - 1 if padding == "causal" else (kernel_size - 1) // 2
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=bias)

    @property
    def offsets(self) -> list[int]:
        """The input offset each weight index reads, from the oldest: -left … K-1-left."""
        return list(range(-self.left, self.kernel_size - self.left))

    @property
    def future_offsets(self) -> list[int]:
        """Offsets after the current token that the output reads ([] when causal)."""
        return [o for o in self.offsets if o > 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = rearrange(x, "b t c -> b c t")  # (B, C, T)
        h = F.pad(h, (self.left, self.kernel_size - 1 - self.left))  # (B, C, T+K-1)
        return rearrange(self.conv(h), "b c t -> b t c")  # (B, T, C)

    def step(self, x: torch.Tensor, state: dict, key: str = "conv") -> torch.Tensor:
        """One time step of the causal conv for cached decoding: x (N, C) → (N, C); the
        last K-1 inputs wait in `state[key]` (N, K-1, C), zeros before the first."""
        if self.padding != "causal":
            raise ValueError("a centred conv reads the future: it cannot decode step by step")
        window = state.get(key)
        if window is None:
            window = x.new_zeros(x.shape[0], self.kernel_size - 1, x.shape[1])
        full = torch.cat([window, x[:, None]], dim=1)  # (N, K, C) inputs t-K+1 … t
        state[key] = full[:, 1:]
        y = torch.einsum("nkc,ck->nc", full, self.conv.weight[:, 0, :])  # (N, C)
        return y if self.conv.bias is None else y + self.conv.bias

    def forward_ref(self, x: torch.Tensor) -> torch.Tensor:
        """Slow reference: an explicit sum over kernel offsets."""
        w = self.conv.weight[:, 0, :]  # (C, K)
        out = torch.zeros_like(x)  # (B, T, C)
        T, K = x.shape[1], self.kernel_size
        for t in range(T):
            for j in range(K):
                src = t - self.left + j
                if 0 <= src < T:
                    out[:, t] += w[:, j] * x[:, src]
        if self.conv.bias is not None:
            out = out + self.conv.bias
        return out
