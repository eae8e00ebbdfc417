"""The encoder-decoder transformer (Vaswani et al. 2017) from the stack's own parts.

Legend: B batch, S source time, T target time, D model width, Vp padded vocabulary.

    src (B, S) → embed · √D + positions → encoder blocks → norm → memory (B, S, D)
    tgt (B, T) → embed · √D + positions → decoder blocks (self, cross, MLP) → norm → logits

Every block is pre-norm, like the decoder-only stack (the paper normalises after each
residual; pre-norm trains without warm-up at these sizes). The encoder's attention is
bidirectional, the decoder's self-attention causal, and cross-attention lets each target
position see every real source position; source padding (id `pad_id`) is masked as a
key everywhere. Source and target share one token embedding (one character vocabulary),
scaled by √D as in the paper and initialised N(0, 1/D) so each coordinate starts at unit
scale, like the sinusoids it is added to. Encoder and decoder have their own positions.

Probe names: `encoder.{i}.attn.hook_pattern`, `decoder.{i}.attn.hook_pattern` and
`decoder.{i}.cross.hook_pattern`, each (B, H, query, key) (and `hook_z` beside each);
the residual stream at `encoder.{i}.hook_resid_pre` / `hook_resid_post` and the same under
`decoder.{i}`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnlab.config.schema import ModelConfig
from attnlab.models.attention import Attention
from attnlab.models.hooks import HookPoint
from attnlab.models.init import init_weights
from attnlab.models.stack import (
    MLP,
    count_params,
    make_norm,
    make_positions,
    padded_logits,
    padded_size,
    vocab_pad_bias,
)


def _attention(cfg: ModelConfig, layer_idx: int, causal: bool) -> Attention:
    return Attention(
        cfg.d_model,
        layer_idx,
        cfg.mixer.n_heads,
        causal=causal,
        bias=cfg.mixer.bias,
        dropout=cfg.dropout,
    )


def _feed_forward(cfg: ModelConfig) -> tuple[nn.Module | None, MLP | None]:
    """(norm, MLP) of a block, or (None, None) when `model.mlp` is off."""
    if not cfg.mlp:
        return None, None
    return make_norm(cfg.norm, cfg.d_model), MLP(
        cfg.d_model, cfg.ff_width, cfg.dropout, cfg.mlp_act
    )


class EncoderBlock(nn.Module):
    """`x + attn(norm(x))` (bidirectional, padded keys masked) then `x + mlp(norm(x))`."""

    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.norm1 = make_norm(cfg.norm, cfg.d_model)
        self.attn = _attention(cfg, layer_idx, causal=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm2, self.mlp = _feed_forward(cfg)
        self.hook_resid_pre, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = self.hook_resid_pre(x)  # (B, S, D)
        x = x + self.drop(self.attn(self.norm1(x), key_mask=key_mask))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return self.hook_resid_post(x)


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the memory, then the MLP; each pre-norm."""

    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.norm1 = make_norm(cfg.norm, cfg.d_model)
        self.attn = _attention(cfg, layer_idx, causal=True)
        self.norm_cross = make_norm(cfg.norm, cfg.d_model)
        self.cross = _attention(cfg, layer_idx, causal=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm2, self.mlp = _feed_forward(cfg)
        self.hook_resid_pre, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor
    ) -> torch.Tensor:
        x = self.hook_resid_pre(x)  # (B, T, D)
        x = x + self.drop(self.attn(self.norm1(x)))
        x = x + self.drop(self.cross(self.norm_cross(x), memory=memory, key_mask=key_mask))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return self.hook_resid_post(x)

    def step(
        self, x: torch.Tensor, state: dict, t: int, memory: torch.Tensor, key_mask: torch.Tensor
    ) -> torch.Tensor:
        """Cached decoding of position t: x (N, D) → (N, D)."""
        own, cross = state.setdefault("self", {}), state.setdefault("cross", {})
        x = x + self.attn.step(self.norm1(x), own, t)
        x = x + self.cross.step(self.norm_cross(x), cross, t, memory, key_mask)
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class Seq2Seq(nn.Module):
    """Encoder-decoder over token ids: `(tgt (B, T), src (B, S))` → (B, T, Vp) logits."""

    is_encoder_decoder = True

    def __init__(self, cfg: ModelConfig, vocab_size: int, pad_id: int = 0):
        super().__init__()
        self.cfg, self.vocab_size, self.pad_id = cfg, vocab_size, pad_id
        self.padded_vocab = padded_size(vocab_size, cfg.pad_vocab_multiple)
        D = cfg.d_model
        self.max_seq_len = L = cfg.max_seq_len or 1024
        self.embed = nn.Embedding(self.padded_vocab, D)
        self.enc_pos = make_positions(cfg.pos, L, D)
        self.dec_pos = make_positions(cfg.decoder_pos or cfg.pos, L, D)
        self.drop = nn.Dropout(cfg.dropout)
        n_enc = cfg.n_encoder_layers or cfg.n_layers
        self.encoder = nn.ModuleList(EncoderBlock(cfg, i) for i in range(n_enc))
        self.enc_norm = make_norm(cfg.norm, D)
        self.decoder = nn.ModuleList(DecoderBlock(cfg, i) for i in range(cfg.n_layers))
        self.norm = make_norm(cfg.norm, D)
        self.unembed = nn.Linear(D, self.padded_vocab, bias=False)
        pad = vocab_pad_bias(vocab_size, self.padded_vocab)
        self.register_buffer("vocab_pad", pad, persistent=False)  # (Vp,) 0 or -inf
        init_weights(self, n_enc + cfg.n_layers, cfg.pos_init, embed_std=D**-0.5)
        if cfg.tie_embeddings:
            self.unembed.weight = self.embed.weight

    def num_params(self) -> int:
        """Trainable parameters, each shared tensor counted once."""
        return count_params(self)

    def _embed(self, tokens: torch.Tensor, pos: nn.Module | None) -> torch.Tensor:
        T = tokens.shape[1]
        if pos is not None and self.max_seq_len < T:
            raise ValueError(f"sequence of {T} tokens > model.max_seq_len {self.max_seq_len}")
        x = self.embed(tokens) * math.sqrt(self.cfg.d_model)  # (B, T, D)
        if pos is not None:
            x = x + pos(T)
        return self.drop(x)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory (B, S, D), key mask (B, S), True at real source tokens)."""
        key_mask = src != self.pad_id  # (B, S)
        x = self._embed(src, self.enc_pos)
        for block in self.encoder:
            x = block(x, key_mask)
        return self.enc_norm(x), key_mask

    def step(
        self,
        tokens: torch.Tensor,
        state: list[dict],
        t: int,
        memory: torch.Tensor,
        key_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Cached decoding: target tokens (N,) at position t, the memory (N, S, D) and its
        key mask (N, S) → (N, Vp) logits of position t + 1 (`state`: one dict per block)."""
        if t >= self.max_seq_len and self.dec_pos is not None:
            raise ValueError(f"position {t} >= model.max_seq_len {self.max_seq_len}")
        x = self.embed(tokens) * math.sqrt(self.cfg.d_model)  # (N, D)
        if self.dec_pos is not None:
            x = x + self.dec_pos(t + 1)[t]
        for block, st in zip(self.decoder, state, strict=True):
            x = block.step(x, st, t, memory, key_mask)
        x = self.norm(x)
        return padded_logits(x, self.unembed, self.vocab_pad, self.padded_vocab != self.vocab_size)

    def decode(
        self,
        tokens: torch.Tensor,
        memory: torch.Tensor,
        key_mask: torch.Tensor,
        hidden: bool = False,
    ) -> torch.Tensor:
        """(B, T) target ids (starting with [SOS]) and the memory → (B, T, Vp) logits
        (with `hidden`: the final normed (B, T, D) states)."""
        x = self._embed(tokens, self.dec_pos)
        for block in self.decoder:
            x = block(x, memory, key_mask)
        x = self.norm(x)  # (B, T, D)
        if hidden:
            return x
        padded = self.padded_vocab != self.vocab_size
        return padded_logits(x, self.unembed, self.vocab_pad, padded)

    def forward(self, tokens: torch.Tensor, src: torch.Tensor, hidden: bool = False):
        """(B, T) target ids, (B, S) source ids → (B, T, Vp) logits (or hidden states)."""
        memory, key_mask = self.encode(src)
        return self.decode(tokens, memory, key_mask, hidden)
