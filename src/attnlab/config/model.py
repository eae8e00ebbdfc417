"""The `model` section: the architecture and its mixer (tagged by `name`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from attnlab.config.base import PositiveInt, Section, require_tag


class AttentionMixer(Section):
    """Multi-head attention, optionally with a depth-wise causal conv or smeared keys."""

    name: Literal["attention"] = "attention"
    n_heads: PositiveInt = 8
    conv_kernel: int | None = Field(None, description="depth-wise causal conv kernel (>= 1)")
    conv_where: Literal["input", "qkv", "k"] = "input"
    conv_padding: Literal["causal", "same"] = Field(
        "causal",
        description="same: a centred conv that reads the next K//2 tokens (not causal: "
        "the leak check rejects it; train only with train.allow_leak)",
    )
    smear_keys: bool = False
    bias: bool = False

    @field_validator("conv_kernel")
    @classmethod
    def _kernel_positive(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"conv_kernel must be >= 1 (got {v})")
        return v


class MambaMixer(Section):
    """A selective state-space mixer (Mamba, Gu & Dao 2023); see `attnlab.models.mamba`."""

    name: Literal["mamba"] = "mamba"
    d_state: PositiveInt = Field(16, description="state size N per channel")
    expand: PositiveInt = Field(2, description="inner width = expand x d_model")
    d_conv: PositiveInt = Field(4, description="causal depth-wise conv kernel")
    dt_rank: int | None = Field(None, gt=0, description="rank of the Δ projection; unset: D/16")
    dt_min: float = Field(0.001, gt=0, description="initial Δ: log-uniform in [dt_min, dt_max]")
    dt_max: float = Field(0.1, gt=0)
    dt: Literal["learned", "constant", "positional"] = Field(
        "learned",
        description="constant: Δ fixed at its initial draw and not trained (B and C still "
        "depend on the input, so the model still selects); positional: a learned Δ per "
        "position and channel, the same for every input",
    )
    a_trained: bool = Field(
        True, description="false: A stays at its a_init start (neg_identity: A = -I frozen)"
    )
    selective: bool = Field(
        True,
        description="false: the time-invariant (LTI, S4D-style) ablation: Δ, B and C are "
        "parameters, not functions of the input, so the SSM is a causal convolution",
    )
    dt_scale: bool = Field(False, description="divide Δ by sqrt(d_model)")
    discretization: Literal["zoh_approx", "zoh", "bilinear"] = "zoh_approx"
    a_init: Literal["s4d", "neg_identity"] = Field(
        "s4d", description="s4d: A_log = log(1..N); neg_identity: A_log = 0 (A = -1)"
    )
    scan: Literal["sequential", "parallel", "log"] = "parallel"
    bias: bool = Field(False, description="biases of the in and out projections")

    @model_validator(mode="after")
    def _dt_range(self) -> MambaMixer:
        if self.dt_min > self.dt_max:
            raise ValueError(f"dt_min ({self.dt_min}) > dt_max ({self.dt_max})")
        if self.dt == "positional" and not self.selective:
            raise ValueError("dt: positional varies with time, so it needs selective: true")
        return self


MixerConfig = Annotated[
    AttentionMixer | MambaMixer, Field(discriminator="name"), require_tag("name", "attention")
]


class ModelConfig(Section):
    """A decoder-only stack or an encoder-decoder (`arch`).

    `decoder`: embed → blocks (x + mixer(norm(x)) [+ mlp]) → norm → unembed.
    `seq2seq`: the same blocks as a bidirectional encoder (`n_encoder_layers`) and a causal
    decoder (`n_layers`) whose blocks add cross-attention to the encoder's output; the
    mixer must be plain attention there. `classifier`: the bidirectional encoder
    (`n_layers` blocks) pooled (`pool`) into `n_classes` logits; with `init_from`, a
    language model attnlab trained (its run directory) instead: its decoder stack, causal as
    it was trained, pooled into a new class head (every architecture field is the language
    model's; `dropout`, `pool` and `n_classes` stay the classifier's).
    """

    arch: Literal["decoder", "seq2seq", "classifier"] = "decoder"
    n_classes: int | None = Field(None, ge=2, description="classifier; unset: from the data")
    pool: Literal["mean", "first", "last"] = Field(
        "mean", description="classifier: token pooling (mean / first / last real token)"
    )
    init_from: str | None = Field(
        None,
        description="classifier: fine-tune the language model of this run directory (its "
        "final weights and tokenizer) instead of training an encoder from scratch",
    )
    vocab_size: int | None = Field(None, ge=2, description="unset: taken from the data")
    d_model: PositiveInt = 512
    n_layers: PositiveInt = Field(4, description="decoder layers")
    n_encoder_layers: int | None = Field(None, gt=0, description="seq2seq only; unset: n_layers")
    mixer: MixerConfig = Field(default_factory=AttentionMixer)
    mlp: bool = False
    mlp_ratio: PositiveInt = 4
    d_ff: int | None = Field(None, gt=0, description="feed-forward width; unset: mlp_ratio x D")
    mlp_act: Literal["gelu", "gelu_tanh"] = Field(
        "gelu", description="the MLP's GELU: exact (erf) or the tanh approximation (GPT-2's)"
    )
    norm: Literal["layernorm", "rmsnorm", "none"] = "layernorm"
    pos: Literal["none", "learned", "sinusoidal", "rope"] = "learned"
    pos_init: Literal["normal", "sinusoidal"] | None = Field(
        None, description="start of learned positions; unset: normal (decoder), sinusoidal"
    )
    decoder_pos: Literal["none", "learned", "sinusoidal"] | None = Field(
        None,
        description="seq2seq: the decoder's own positions (write-up 004's output position "
        "embeddings table); unset: as pos",
    )
    max_seq_len: int | None = Field(
        None, gt=0, description="position tables' length; unset: data.seq_len"
    )
    tie_embeddings: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    pad_vocab_multiple: PositiveInt = Field(
        64, description="pad the embedding/unembedding rows to a multiple (speed)"
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.init_from is not None:
            return self._pretrained_body()
        if self.arch == "decoder" and self.n_encoder_layers is not None:
            raise ValueError("n_encoder_layers is for arch: seq2seq")
        if self.decoder_pos is not None and self.arch != "seq2seq":
            raise ValueError("decoder_pos is for arch: seq2seq (a decoder has one pos)")
        if isinstance(self.mixer, MambaMixer):
            if self.pos == "rope":
                raise ValueError("the mamba mixer takes no rotary positions (pos: rope)")
            if self.arch != "decoder":
                raise ValueError(f"{self.arch} takes the attention mixer; mamba runs as a decoder")
            return self
        h = self.mixer.n_heads
        if self.d_model % h:
            raise ValueError(f"mixer.n_heads ({h}) must divide d_model ({self.d_model})")
        if self.pos == "rope" and (self.d_model // h) % 2:
            raise ValueError(
                f"rope needs an even head size (d_model / n_heads = {self.d_model // h})"
            )
        if self.arch in ("seq2seq", "classifier"):
            m = self.mixer
            if m.conv_kernel is not None or m.smear_keys:
                raise ValueError(
                    f"{self.arch} takes plain attention (no conv_kernel, no smear_keys)"
                )
            if self.pos == "rope":
                raise ValueError(f"{self.arch} positions: none, learned or sinusoidal")
        return self

    def _pretrained_body(self) -> ModelConfig:
        """A classifier on a language model's stack: the stack's own rules, no first-token
        pooling (a causal stack's first token sees only itself)."""
        if self.arch != "classifier":
            raise ValueError(
                "model.init_from is for arch: classifier (fine-tuning a language model)"
            )
        if self.pool == "first":
            raise ValueError(
                "model.init_from: a causal stack's first token sees only itself; pool: mean or last"
            )
        if isinstance(self.mixer, AttentionMixer) and self.d_model % self.mixer.n_heads:
            raise ValueError(
                f"mixer.n_heads ({self.mixer.n_heads}) must divide d_model ({self.d_model})"
            )
        return self

    @property
    def ff_width(self) -> int:
        """The feed-forward (MLP) hidden width."""
        return self.d_ff or self.mlp_ratio * self.d_model
