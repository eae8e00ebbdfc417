"""The decoder-only stack: embed → blocks → norm → unembed, one block type, many mixers.

Legend: B batch, T time, D model width, V vocabulary, Vp padded vocabulary.

Each block is `x + mixer(norm(x))`, optionally followed by `x + mlp(norm(x))`. Mixers are
looked up by name in `MIXERS` (an explicit dict, not import strings), so Attn-Attn,
Conv-Attn and smeared keys differ only in config. The vocabulary rows are padded to a
multiple of `pad_vocab_multiple` for faster matmuls; the padded ids get a fixed logit of
-inf (a bias fused into the unembedding matmul), so their probability is exactly 0 in every
softmax, loss and argmax, and their gradients are exactly 0. Logits come back padded,
(B, T, Vp): slicing them to V would cost a copy of the largest tensor of the step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.config.schema import ModelConfig
from attnlab.models.attention import Attention
from attnlab.models.hooks import HookPoint
from attnlab.models.init import init_weights
from attnlab.models.mamba import Mamba
from attnlab.models.positional import LearnedPositions, SinusoidalPositions

MIXERS: dict[str, type[nn.Module]] = {"attention": Attention, "mamba": Mamba}


def make_norm(kind: str, d: int) -> nn.Module:
    """`layernorm`, `rmsnorm` or `none` (identity)."""
    if kind == "layernorm":
        return nn.LayerNorm(d)
    if kind == "rmsnorm":
        return nn.RMSNorm(d)
    return nn.Identity()


class MLP(nn.Module):
    """Two linear layers with GELU in between (hidden width `d_ff`; `act` `gelu`, exact, or
    `gelu_tanh`, the tanh approximation GPT-2 uses)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, act: str = "gelu"):
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.act = nn.GELU(approximate="tanh" if act == "gelu_tanh" else "none")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down(self.act(self.up(x))))  # (B, T, D)


class Block(nn.Module):
    """`x + mixer(norm(x))` then, when the block has one, `x + mlp(norm(x))`; the residual
    stream enters at `hook_resid_pre` and leaves at `hook_resid_post` (B, T, D).

    A mixer with `forward_split` (attention) also gets `hook_q_input`, `hook_k_input` and
    `hook_v_input` (B, T, D): the residual stream as its queries, keys and values read it,
    before the norm (TransformerLens's split inputs, one tensor for all heads). While one
    is listened to, each of q, k and v is computed from its own copy, so an edit to one
    (path patching, `attnlab.probes.paths`) reaches that input only."""

    def __init__(self, mixer: nn.Module, d_model: int, norm: str, mlp: MLP | None, dropout: float):
        super().__init__()
        self.norm1 = make_norm(norm, d_model)
        self.mixer = mixer
        self.drop = nn.Dropout(dropout)
        self.norm2 = make_norm(norm, d_model) if mlp is not None else None
        self.mlp = mlp
        self.hook_resid_pre, self.hook_resid_post = HookPoint(), HookPoint()
        if hasattr(mixer, "forward_split"):
            self.hook_q_input, self.hook_k_input = HookPoint(), HookPoint()
            self.hook_v_input = HookPoint()

    @property
    def attn(self) -> nn.Module:
        """TransformerLens-style alias (`blocks.0.attn`)."""
        return self.mixer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_resid_pre(x)  # (B, T, D)
        x = x + self.drop(self._mix(x))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return self.hook_resid_post(x)

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        """The mixer on the normed stream (B, T, D), through the split inputs while any is
        listened to."""
        split = getattr(self, "hook_q_input", None)
        if split is None or not (
            split.active or self.hook_k_input.active or self.hook_v_input.active
        ):
            return self.mixer(self.norm1(x))
        inputs = (self.hook_q_input(x), self.hook_k_input(x), self.hook_v_input(x))
        if inputs[0] is inputs[1] is inputs[2]:  # nothing edited: one projection
            return self.mixer(self.norm1(x))
        return self.mixer.forward_split(*(self.norm1(i) for i in inputs))

    def step(self, x: torch.Tensor, state: dict, t: int) -> torch.Tensor:
        """Cached decoding of position t: x (N, D) → (N, D); the mixer keeps `state`."""
        x = x + self.mixer.step(self.norm1(x), state, t)
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class DecoderLM(nn.Module):
    """Decoder-only language model over token ids: (B, T) int → (B, T, Vp) logits.

    Logits of padded ids (>= `vocab_size`) are -inf; `logits[..., :vocab_size]` is the
    unpadded view.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.padded_vocab = padded_size(vocab_size, cfg.pad_vocab_multiple)
        D = cfg.d_model
        self.max_seq_len = L = cfg.max_seq_len or 1024  # unset outside a run: 1024
        self.embed = nn.Embedding(self.padded_vocab, D)
        self.pos = make_positions(cfg.pos, L, D)
        self.drop = nn.Dropout(cfg.dropout)
        options = cfg.mixer.model_dump(exclude={"name"})
        mixer_cls = MIXERS[cfg.mixer.name]
        self.blocks = nn.ModuleList(
            Block(
                mixer_cls(
                    D,
                    i,
                    **options,
                    rope=cfg.pos == "rope",
                    max_seq_len=L,
                    dropout=cfg.dropout,
                ),
                D,
                cfg.norm,
                MLP(D, cfg.ff_width, cfg.dropout, cfg.mlp_act) if cfg.mlp else None,
                cfg.dropout,
            )
            for i in range(cfg.n_layers)
        )
        self.norm = make_norm(cfg.norm, D)
        self.unembed = nn.Linear(D, self.padded_vocab, bias=False)
        pad = vocab_pad_bias(vocab_size, self.padded_vocab)
        self.register_buffer("vocab_pad", pad, persistent=False)  # (Vp,) 0 or -inf
        init_weights(self, cfg.n_layers, cfg.pos_init)
        if cfg.tie_embeddings:
            self.unembed.weight = self.embed.weight

    def num_params(self) -> int:
        """Trainable parameters, each shared tensor counted once."""
        return count_params(self)

    def forward(self, tokens: torch.Tensor, hidden: bool = False) -> torch.Tensor:
        """(B, T) ids → (B, T, Vp) logits, or with `hidden` the final normed (B, T, D)
        states that `train.loss_chunk` turns into a loss chunk by chunk."""
        T = tokens.shape[1]
        if self.max_seq_len < T and (self.pos is not None or self.cfg.pos == "rope"):
            raise ValueError(f"sequence of {T} tokens > model.max_seq_len {self.max_seq_len}")
        x = self.embed(tokens)  # (B, T, D)
        if self.pos is not None:
            x = x + self.pos(T)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)  # (B, T, D)
        if hidden:
            return x
        padded = self.padded_vocab != self.vocab_size
        return padded_logits(x, self.unembed, self.vocab_pad, padded)

    def step(self, tokens: torch.Tensor, state: list[dict], t: int) -> torch.Tensor:
        """Cached decoding: the tokens (N,) at position t of every row → (N, Vp) logits of
        position t + 1; `state` (one dict per block, empty at t = 0) keeps the keys,
        values, conv windows and SSM states of positions < t."""
        if t >= self.max_seq_len and (self.pos is not None or self.cfg.pos == "rope"):
            raise ValueError(f"position {t} >= model.max_seq_len {self.max_seq_len}")
        x = self.embed(tokens)  # (N, D)
        if self.pos is not None:
            x = x + self.pos(t + 1)[t]
        for block, st in zip(self.blocks, state, strict=True):
            x = block.step(x, st, t)
        x = self.norm(x)
        return padded_logits(x, self.unembed, self.vocab_pad, self.padded_vocab != self.vocab_size)


def make_positions(kind: str, max_len: int, d_model: int) -> nn.Module | None:
    """The module added to the embeddings for `learned` or `sinusoidal`; None otherwise."""
    if kind == "learned":
        return LearnedPositions(max_len, d_model)
    if kind == "sinusoidal":
        return SinusoidalPositions(max_len, d_model)
    return None


def padded_size(vocab_size: int, multiple: int) -> int:
    """The vocabulary rounded up to a multiple of `multiple` (`model.pad_vocab_multiple`)."""
    return -(-vocab_size // multiple) * multiple


def count_params(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once (every model's `num_params`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def vocab_pad_bias(vocab_size: int, padded_vocab: int) -> torch.Tensor:
    """(Vp,) logit bias: 0 for real ids, -inf for the padding rows."""
    pad = torch.zeros(padded_vocab)
    pad[vocab_size:] = float("-inf")
    return pad


def padded_logits(
    x: torch.Tensor, unembed: nn.Linear, vocab_pad: torch.Tensor, padded: bool
) -> torch.Tensor:
    """(B, T, D) → (B, T, Vp) logits, padded ids at -inf (a plain matmul without padding)."""
    if not padded:
        return unembed(x)  # (B, T, V)
    return F.linear(x, unembed.weight, vocab_pad)  # (B, T, Vp)


def output_head(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """A token model's unembedding (Vp, D) and padding bias (Vp,) (None without padding);
    None for a model without a vocabulary head (the classifier)."""
    unembed = getattr(model, "unembed", None)
    if not isinstance(unembed, nn.Linear):
        return None
    padded = model.padded_vocab != model.vocab_size
    return unembed.weight, model.vocab_pad if padded else None
