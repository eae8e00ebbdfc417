"""Multi-head attention mixer: causal, bidirectional or cross, with optional depth-wise
causal convolutions and smeared keys.

Cross-attention (`forward(x, memory=...)`) takes queries from x and keys and values from
`memory` (B, S, D) through the same `qkv` weight; `key_mask` (B, S) bool (True: a real
key, False: padding) hides padded keys in self- and cross-attention alike.

Legend: B batch, T query time, S key time, D model width, H heads, E head width (D / H).

Options (all from config, see `AttentionMixer`):
- `conv_kernel` + `conv_where`: a depth-wise causal convolution of kernel K on the block
  input (`input`: the write-ups' Conv-Attn, "embeddings → Conv1d → attention"), on the
  projected q, k and v (`qkv`: Primer's multi-dconv-head attention, So et al. 2021, which
  convolves per channel after the projection), or on the keys only (`k`).
- `smear_keys`: Olsson et al. 2022's smeared key, `k'_j = σ(α_h) k_j + (1 - σ(α_h)) k_{j-1}`
  with one learned α per head and `k_{-1} = 0`. α starts at 0 (an even mix); the paper
  does not state its initialisation.
- `rope`: rotary embeddings on q and k, applied after smearing (the smear mixes key
  contents; each key is then rotated at its own position j).

The fast path runs `F.scaled_dot_product_attention`. While a probe listens at
`hook_pattern` (B, H, T, S) or `hook_z` (B, T, H, E, the per-head outputs before the output
projection), `forward` computes the explicit softmax pattern instead (same numbers, up to
float rounding), and uses what the hooks return (`attnlab.probes.intervene` edits them).
`forward_ref` is the slow reference (explicit convolutions too), for tests.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from attnlab.models.conv import CausalDepthwiseConv
from attnlab.models.hooks import HookPoint
from attnlab.models.positional import Rotary


class Attention(nn.Module):
    """Mixer contract: `Attention(d_model, layer_idx, **options)`, (B, T, D) → (B, T, D)."""

    alias = "attn"  # probe names: blocks.{i}.attn.hook_pattern

    def __init__(
        self,
        d_model: int,
        layer_idx: int = 0,
        n_heads: int = 8,
        causal: bool = True,
        conv_kernel: int | None = None,
        conv_where: str = "input",
        conv_padding: str = "causal",
        smear_keys: bool = False,
        bias: bool = False,
        rope: bool = False,
        max_seq_len: int = 1024,
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"n_heads ({n_heads}) must divide d_model ({d_model})")
        self.d_model, self.layer_idx, self.n_heads = d_model, layer_idx, n_heads
        self.head_dim = d_model // n_heads
        self.causal, self.dropout = causal, dropout
        self.conv_where = conv_where if conv_kernel else None
        conv_channels = {"input": d_model, "qkv": 3 * d_model, "k": d_model}
        self.conv = (
            CausalDepthwiseConv(conv_channels[conv_where], conv_kernel, padding=conv_padding)
            if conv_kernel
            else None
        )
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self.smear_alpha = nn.Parameter(torch.zeros(n_heads)) if smear_keys else None
        self.rotary = Rotary(self.head_dim, max_seq_len) if rope else None
        self.hook_pattern = HookPoint()  # (B, H, T, S) softmax attention weights
        self.hook_z = HookPoint()  # (B, T, H, E) per-head outputs before `out`

    def state_size(self, seq_len: int) -> int:
        """Numbers kept per sequence to generate the next token: keys and values of T steps."""
        return 2 * seq_len * self.d_model

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of shape (B, H, T, E) after every optional conv, smear and rotation."""
        if self.conv_where == "input":
            x = self.conv(x)  # (B, T, D)
        qkv = self.qkv(x)  # (B, T, 3D)
        if self.conv_where == "qkv":
            qkv = self.conv(qkv)  # (B, T, 3D)
        q, k, v = qkv.chunk(3, dim=-1)  # (B, T, D) each
        if self.conv_where == "k":
            k = self.conv(k)  # (B, T, D)
        q, k, v = (rearrange(t, "b t (h e) -> b h t e", h=self.n_heads) for t in (q, k, v))
        if self.smear_alpha is not None:
            k = self.smear(k)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        return q, k, v

    def smear(self, k: torch.Tensor) -> torch.Tensor:
        """Mix each key with the previous one, one learned sigmoid gate per head."""
        gate = torch.sigmoid(self.smear_alpha)[None, :, None, None]  # (1, H, 1, 1)
        prev = F.pad(k, (0, 0, 1, 0))[:, :, :-1]  # (B, H, T, E), k_{j-1}, zero at j = 0
        return gate * k + (1 - gate) * prev

    def smear_gate(self) -> torch.Tensor | None:
        """σ(α) per head (H,): the weight of the key's own content; None without smearing."""
        return None if self.smear_alpha is None else torch.sigmoid(self.smear_alpha).detach()

    def project_cross(
        self, x: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (B, H, T, E) from x, k and v (B, H, S, E) from memory, with the `qkv` weights."""
        if self.conv is not None or self.smear_alpha is not None or self.rotary is not None:
            raise ValueError("cross-attention takes no conv, smeared keys or rotary positions")
        if self.causal:
            raise ValueError("build cross-attention with causal=False (it sees every key)")
        D = self.d_model
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(x, w[:D], None if b is None else b[:D])  # (B, T, D)
        kv = F.linear(memory, w[D:], None if b is None else b[D:])  # (B, S, 2D)
        k, v = kv.chunk(2, dim=-1)  # (B, S, D) each
        return tuple(rearrange(t, "b t (h e) -> b h t e", h=self.n_heads) for t in (q, k, v))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, D) → (B, T, D); `memory` (B, S, D) makes it cross-attention."""
        if memory is None:
            q, k, v = self.project(x)  # (B, H, T, E)
        else:
            q, k, v = self.project_cross(x, memory)  # (B, H, T, E), (B, H, S, E) x 2
        return self.attend(q, k, v, key_mask)

    def forward_split(self, xq: torch.Tensor, xk: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
        """Self-attention with queries from xq, keys from xk and values from xv (B, T, D
        each): every option (conv, smear, rotary) applied to each as in `forward`, so three
        equal inputs give `forward`'s output."""
        q = self.project(xq)[0]  # (B, H, T, E)
        k = self.project(xk)[1]
        v = self.project(xv)[2]
        return self.attend(q, k, v)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """q (B, H, T, E) on k, v (B, H, S, E) → (B, T, D) after `out`: SDPA, or the
        explicit pattern while a hook listens."""
        if self.hook_pattern.active or self.hook_z.active:  # what a hook returns is used
            pattern = self.hook_pattern(self.pattern(q, k, key_mask))  # (B, H, T, S)
            if self.training and self.dropout:
                pattern = F.dropout(pattern, self.dropout)
            o = self.hook_z(rearrange(pattern @ v, "b h t e -> b t h e"))  # (B, T, H, E)
            return self.out(rearrange(o, "b t h e -> b t (h e)"))
        p = self.dropout if self.training else 0.0
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, S)
        causal = self.causal
        if causal and mask is not None:
            T = q.shape[2]
            mask = mask & torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
            causal = False
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=p)
        return self.out(rearrange(o, "b h t e -> b t (h e)"))  # (B, T, D)

    def step(
        self,
        x: torch.Tensor,
        state: dict,
        t: int,
        memory: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Cached decoding, one position t for every row: x (N, D) → (N, D). Self-attention
        writes this step's key and value at slot t of `state`'s (N, H, room, E) buffers
        (room doubles when full) and keeps each conv's window and the last key before
        smearing; cross-attention (`memory` (N, S, D))
        projects the memory's keys and values at its first step only."""
        N, D, H, E = x.shape[0], self.d_model, self.n_heads, self.head_dim
        if memory is not None:
            if "k" not in state:
                _, state["k"], state["v"] = self.project_cross(x[:, None], memory)
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x, w[:D], None if b is None else b[:D]).view(N, H, 1, E)
            return self._attend_step(q, state, key_mask)
        if self.conv_where == "input":
            x = self.conv.step(x, state)  # (N, D)
        qkv = self.qkv(x)  # (N, 3D)
        if self.conv_where == "qkv":
            qkv = self.conv.step(qkv, state)
        q, k, v = qkv.chunk(3, dim=-1)  # (N, D) each
        if self.conv_where == "k":
            k = self.conv.step(k, state)
        q, k, v = (u.view(N, H, 1, E) for u in (q, k, v))
        if self.smear_alpha is not None:
            prev = state.get("k_prev", torch.zeros_like(k))  # k_{t-1} before smearing
            state["k_prev"] = k
            gate = torch.sigmoid(self.smear_alpha)[None, :, None, None]  # (1, H, 1, 1)
            k = gate * k + (1 - gate) * prev
        if self.rotary is not None:
            q, k = self.rotary(q, start=t), self.rotary(k, start=t)
        for name, new in (("k", k), ("v", v)):  # room doubles when full: O(1) amortised
            buf = state.get(name)
            if buf is None or buf.shape[2] <= t:
                grown = new.new_empty(N, H, max(16, 2 * t), E)
                if buf is not None:
                    grown[:, :, :t] = buf[:, :, :t]
                state[name] = buf = grown
            buf[:, :, t] = new[:, :, 0]
        return self._attend_step(q, state, None, t + 1)

    def _attend_step(self, q: torch.Tensor, state: dict, key_mask, S: int | None = None):
        """q (N, H, 1, E) on the first `S` cached keys and values (all when None) → (N, D)
        after `out`."""
        k, v = state["k"][:, :, :S], state["v"][:, :, :S]  # (N, H, S, E)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (N, H, 1, S)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        o = scores.softmax(-1) @ v  # (N, H, 1, E)
        return self.out(rearrange(o, "n h 1 e -> n (h e)"))

    def attend_explicit(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores, masks and softmax spelt out: ((B, H, T, E) output, (B, H, T, S))."""
        pattern = self.pattern(q, k, key_mask)  # (B, H, T, S)
        if self.training and self.dropout:
            return F.dropout(pattern, self.dropout) @ v, pattern
        return pattern @ v, pattern  # (B, H, T, E)

    def pattern(
        self, q: torch.Tensor, k: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The softmax attention weights (B, H, T, S) of q (B, H, T, E) on k (B, H, S, E)."""
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, H, T, S)
        if self.causal:
            T, S = q.shape[2], k.shape[2]
            future = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(S - T + 1)
            scores = scores.masked_fill(future, float("-inf"))
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return scores.softmax(dim=-1)

    def forward_ref(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Slow reference: explicit convs, scores, mask and softmax; returns (out, pattern)."""
        if self.conv_where == "input":
            x = self.conv.forward_ref(x)
        qkv = self.qkv(x)
        if self.conv_where == "qkv":
            qkv = self.conv.forward_ref(qkv)
        q, k, v = qkv.chunk(3, dim=-1)
        if self.conv_where == "k":
            k = self.conv.forward_ref(k)
        q, k, v = (rearrange(t, "b t (h e) -> b h t e", h=self.n_heads) for t in (q, k, v))
        if self.smear_alpha is not None:
            g = torch.sigmoid(self.smear_alpha)[None, :, None, None]
            prev = torch.cat([torch.zeros_like(k[:, :, :1]), k[:, :, :-1]], dim=2)
            k = g * k + (1 - g) * prev
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        o, pattern = self.attend_explicit(q, k, v)  # (B, H, T, E), (B, H, T, T)
        return self.out(rearrange(o, "b h t e -> b t (h e)")), pattern
