"""Sequence classifiers (write-up 003's classifier, on data sets of our choosing): a bidirectional
attention encoder with a pooled head (`EncoderClassifier`), or a language model's decoder
stack fine-tuned with one (`LMClassifier`, `model.init_from`).

Legend: B batch, T time, D model width, C classes.

    tokens (B, T) → embed · √D + positions → encoder blocks (padding masked as keys)
        → norm → pool over real tokens (mean, or the first token) → dropout → (B, C) logits

The blocks are the encoder-decoder's `EncoderBlock`s (the stack's `Attention`,
bidirectional); probe names are `encoder.{i}.attn.hook_pattern` (B, H, T, T). Padding is
id `pad_id` (0). The model is not causal, so the leakage check does not apply to it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnlab.config.schema import ModelConfig
from attnlab.models.init import init_weights
from attnlab.models.seq2seq import EncoderBlock
from attnlab.models.stack import DecoderLM, count_params, make_norm, make_positions


class EncoderClassifier(nn.Module):
    """`tokens (B, T)` → class logits (B, C)."""

    is_encoder_decoder = False
    is_causal = False

    def __init__(self, cfg: ModelConfig, vocab_size: int, n_classes: int, pad_id: int = 0):
        super().__init__()
        self.cfg, self.vocab_size, self.n_classes, self.pad_id = cfg, vocab_size, n_classes, pad_id
        D = cfg.d_model
        self.max_seq_len = L = cfg.max_seq_len or 512
        self.embed = nn.Embedding(vocab_size, D)
        self.pos = make_positions(cfg.pos, L, D)
        self.drop = nn.Dropout(cfg.dropout)
        n = cfg.n_encoder_layers or cfg.n_layers
        self.encoder = nn.ModuleList(EncoderBlock(cfg, i) for i in range(n))
        self.norm = make_norm(cfg.norm, D)
        self.head = nn.Linear(D, n_classes)
        init_weights(self, len(self.encoder), cfg.pos_init, embed_std=D**-0.5)

    def num_params(self) -> int:
        """Trainable parameters."""
        return count_params(self)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        if self.max_seq_len < T:
            raise ValueError(f"sequence of {T} tokens > model.max_seq_len {self.max_seq_len}")
        key_mask = tokens != self.pad_id  # (B, T)
        key_mask[:, 0] = True  # an empty text still has one key to attend to
        x = self.embed(tokens) * math.sqrt(self.cfg.d_model)  # (B, T, D)
        if self.pos is not None:
            x = x + self.pos(T)
        x = self.drop(x)
        for block in self.encoder:
            x = block(x, key_mask)  # (B, T, D)
        x = self.norm(x)
        return self.head(self.drop(pool(x, key_mask, self.cfg.pool)))  # (B, C)


class LMClassifier(nn.Module):
    """A language model's decoder stack with a class head: `tokens (B, T)` → (B, C).

        tokens → the stack (embed, blocks, final norm; causal as it was trained)
            → pool over real tokens (`mean`, or the `last`, which has read the whole text,
              as GPT-2 classifiers do) → dropout → (B, C) logits

    The stack is the `DecoderLM` the language model's config describes, without its
    unembedding; `lm.*` parameters load from the language model's run (`init_from` in
    `attnlab.train.checkpoint`). Padding is id `vocab_size` (one past the tokenizer's
    ids, so no text token is mistaken for it), fed to the stack as id 0: the stack is
    causal and padding comes after the text, so it changes no real token's state.
    """

    is_encoder_decoder = False
    is_causal = False

    def __init__(self, cfg: ModelConfig, vocab_size: int, n_classes: int):
        super().__init__()
        self.cfg, self.vocab_size, self.n_classes = cfg, vocab_size, n_classes
        self.pad_id = vocab_size
        body = cfg.model_copy(update={"arch": "decoder", "init_from": None, "n_classes": None})
        self.lm = DecoderLM(body, vocab_size)
        self.lm.unembed = None  # the class head replaces it; tied weights stay in embed
        self.max_seq_len = self.lm.max_seq_len
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def num_params(self) -> int:
        """Trainable parameters (the stack's and the head's)."""
        return count_params(self)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        key_mask = tokens != self.pad_id  # (B, T)
        key_mask[:, 0] = True  # an empty text is read at its first position
        x = self.lm(tokens.masked_fill(~key_mask, 0), hidden=True)  # (B, T, D)
        return self.head(self.drop(pool(x, key_mask, self.cfg.pool)))  # (B, C)


def pool(x: torch.Tensor, key_mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, D) states → (B, D): the `mean` over real tokens (`key_mask` (B, T)), the
    `first` token, or the `last` real token (right padding)."""
    if how == "first":
        return x[:, 0]  # (B, D)
    if how == "last":
        last = key_mask.long().sum(1) - 1  # (B,)
        return x[torch.arange(x.shape[0], device=x.device), last]  # (B, D)
    w = key_mask.to(x.dtype)[..., None]  # (B, T, 1)
    return (x * w).sum(1) / w.sum(1)  # (B, D)
