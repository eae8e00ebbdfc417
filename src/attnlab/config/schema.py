"""Typed, nested, saveable config: one root `RunConfig{data, model, train, probes}` (the
data and model sections live in `config.data` and `config.model`; this module re-exports
them).

Every section forbids unknown keys, so a typo in a YAML file or a `--set` override is an
error that names the field instead of a silently ignored setting. This module knows
nothing of torch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from attnlab.config.base import PositiveInt, Section
from attnlab.config.data import (
    ClassificationData,
    CopyingData,
    DataConfig,
    GeneratedData,
    InductionHeadsData,
    LMTextData,
    MQARData,
    PigLatinData,
    RepeatTokensData,
    SelectiveCopyingData,
    SyntheticData,
    check_mqar,
)
from attnlab.config.model import AttentionMixer, MambaMixer, MixerConfig, ModelConfig

__all__ = [
    "AttentionMixer",
    "ClassificationData",
    "CopyingData",
    "DataConfig",
    "GeneratedData",
    "InductionHeadsData",
    "LMTextData",
    "MQARData",
    "MambaMixer",
    "MixerConfig",
    "ModelConfig",
    "PigLatinData",
    "PositiveInt",
    "ProbesConfig",
    "RepeatTokensData",
    "RunConfig",
    "Section",
    "SelectiveCopyingData",
    "SyntheticData",
    "TrainConfig",
    "check_mqar",
]


class TrainConfig(Section):
    """Optimiser, schedule, length, precision and bookkeeping of one training run."""

    seed: int = 42
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    schedule: Literal["cosine", "constant", "plateau"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(
        0.1, ge=0, le=1, description="cosine / plateau floor as a share of lr"
    )
    plateau_factor: float = Field(0.5, gt=0, lt=1, description="plateau: lr x factor on a stall")
    plateau_patience: int = Field(
        2, ge=0, description="plateau: evaluations without a new best before the lr drops"
    )
    epochs: float | None = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="wins over epochs when set")
    stop_step: int | None = Field(
        None,
        gt=0,
        description="end the run after this many steps with the lr schedule still planned "
        "for epochs / max_steps: the first part of a longer run, as that run would see it",
    )
    grad_clip: float | None = Field(1.0, gt=0)
    grad_accum: PositiveInt = 1
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    accelerator: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    devices: PositiveInt = Field(1, description="devices (DDP processes) per node")
    num_nodes: PositiveInt = Field(1, description="machines (DDP; launched by torchrun / SLURM)")
    compile: bool = Field(False, description="torch.compile the model (compile time apart)")
    keep_freed_memory: bool | None = Field(
        None,
        description="CPU: glibc keeps freed large blocks for the next step (faster, memory is "
        "not returned to the OS); unset: on under the `attnlab` command, off in a library",
    )
    loss_chunk: int | None = Field(
        None,
        gt=0,
        description="cross-entropy over the vocabulary this many tokens at a time (memory)",
    )
    eval_every: int = Field(200, gt=0)
    select_by: Literal["val_loss", "val_accuracy"] = Field(
        "val_loss",
        description="which periodic evaluation keeps best.safetensors (and a classifier's "
        "best epoch): the lowest validation loss or the highest validation accuracy",
    )
    task_eval_every: int | None = Field(
        None,
        gt=0,
        description="the task's extra evaluation (word accuracy) at the periodic evaluations "
        "of steps divisible by this; unset: at every one (the final one always)",
    )
    eval_batches: int | None = Field(50, gt=0, description="cap for periodic evals")
    final_eval_batches: int | None = Field(
        None, gt=0, description="cap for the final val/test evals (unset: whole splits)"
    )
    log_every: int = Field(10, gt=0)
    checkpoint_every: int | None = Field(None, gt=0, description="default: eval_every")
    allow_leak: bool = Field(
        False,
        description="train a model the leak check rejects (e.g. conv_padding: same), loudly "
        "warned and recorded in the summary and report; its figures are not predictions",
    )
    check_causal: bool = Field(
        True, description="the leak check before the first step and on the trained weights"
    )
    leak_check_len: int | None = Field(
        None,
        ge=2,
        description="positions the leak check covers; unset: as many as a few "
        "seconds allow (all of them for small models)",
    )
    progress: bool = True
    loggers: list[Literal["csv", "tensorboard", "wandb"]] = Field(
        default_factory=list,
        description="experiment trackers beside metrics.jsonl (the source of truth), under "
        "the run's logs/; wandb is offline unless WANDB_MODE says otherwise",
    )
    probe_every: int | None = Field(
        None, gt=0, description="record head scores and the ICL score every N steps"
    )
    beam_width: PositiveInt = Field(1, description="decoding of word-level evals (1: greedy)")
    eval_per_epoch: bool = Field(
        False, description="evaluate (validation, and a train subset) after every epoch"
    )

    @model_validator(mode="after")
    def _has_length(self) -> TrainConfig:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set train.epochs or train.max_steps")
        return self


class ProbesConfig(Section):
    """What `attnlab probe` and `train.probe_every` measure, and on how much data."""

    num_sequences: PositiveInt = Field(64, description="repeated random sequences scored")
    seq_len: int | None = Field(None, ge=4, description="their length; unset: data.seq_len")
    seed: int = Field(0, description="seed of the probe set (fixed across runs)")
    tokens: Literal["all", "frequent"] = Field(
        "all",
        description="draw the probe tokens from every id, or from a text's `pool` most "
        "frequent tokens (a small model never trains the embeddings of rare ones)",
    )
    pool: PositiveInt = Field(512, description="tokens: frequent: how many")
    batch_size: PositiveInt = 16
    layers: list[int] | None = Field(
        None, description="attention layers whose patterns are built and scored (unset: all)"
    )
    icl_batches: int | None = Field(
        50, gt=0, description="validation batches for the ICL score (unset: whole split)"
    )
    copying: bool = Field(True, description="compute the activation copying score")
    ablation: bool = Field(
        False, description="ablate each head (and the previous-token / induction heads together)"
    )
    ablation_how: Literal["mean", "mean_pos", "resample", "zero"] = Field(
        "mean",
        description="ablate a head to its mean output, its mean at each position, another "
        "input's output (resample; both over a reference set other than the scored one), "
        "or zero",
    )
    lengths: list[PositiveInt] | None = Field(
        None, description="synthetic tasks: evaluate at these sequence lengths too"
    )
    grid_len: int = Field(32, ge=4, description="tokens in the attention-grid sequences")
    label_tokens: PositiveInt = Field(30, description="tokens labelled in the embedding plot")
    words: list[str] = Field(
        ["brown", "conditioning", "is"], description="Pig Latin: words whose attention is drawn"
    )


class RunConfig(Section):
    """The root config saved as `config.yaml` in every run directory."""

    name: str = "run"
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)

    @model_validator(mode="after")
    def _format_fits_model(self) -> RunConfig:
        """Pig Latin's layout follows the model: pairs for seq2seq, prefix_lm otherwise."""
        if isinstance(self.data, PigLatinData):
            want = "pairs" if self.model.arch == "seq2seq" else "prefix_lm"
            if self.data.format is None:
                self.data.format = want
            elif self.data.format != want:
                raise ValueError(
                    f"data.format {self.data.format!r} does not fit model.arch "
                    f"{self.model.arch!r} (use {want!r})"
                )
            if self.data.equal_length and self.train.devices * self.train.num_nodes > 1:
                raise ValueError(
                    "data.equal_length runs on one device (a length group can be smaller "
                    "than the process count)"
                )
        elif self.model.arch == "seq2seq":
            raise ValueError("model.arch seq2seq needs a source/target task (data.task piglatin)")
        if (self.model.arch == "classifier") != isinstance(self.data, ClassificationData):
            raise ValueError("data.task classification and model.arch classifier go together")
        if self.model.init_from is not None and isinstance(self.data, ClassificationData):
            if self.data.tokenizer == "word" and self.data.tokenizer_path is None:
                self.data.tokenizer_path = self.model.init_from  # validated one by one:
                self.data.tokenizer = "run"  # the path first
            elif self.data.tokenizer_path != self.model.init_from:
                raise ValueError(
                    "model.init_from reads texts with the language model's tokenizer: leave "
                    "data.tokenizer and data.tokenizer_path unset"
                )
        if self.train.probe_every and isinstance(self.data, ClassificationData):
            raise ValueError("train.probe_every is for token tasks, not classification")
        if self.train.probe_every and isinstance(self.data, PigLatinData):
            raise ValueError(
                "train.probe_every records head scores on random token sequences; for Pig "
                "Latin use `attnlab probe RUN_DIR` after training"
            )
        if self.train.loss_chunk and self.model.arch == "classifier":
            raise ValueError("train.loss_chunk is for token models (a classifier has no vocab)")
        return self
