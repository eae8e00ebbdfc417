"""Models: one decoder-only stack with many mixers, the encoder-decoder, the causality
check and generation.

`build(cfg.model, vocab_size)` returns a `DecoderLM`, a `Seq2Seq`, an
`EncoderClassifier` or (with `init_from`) an `LMClassifier`; `check_causal` proves
it does not see the future. This package knows nothing of data or training.
"""

from __future__ import annotations

from attnlab.config.schema import ModelConfig
from attnlab.models.classifier import EncoderClassifier, LMClassifier
from attnlab.models.leakage import LeakageError, check_causal
from attnlab.models.seq2seq import Seq2Seq
from attnlab.models.stack import MIXERS, DecoderLM

__all__ = [
    "MIXERS",
    "DecoderLM",
    "EncoderClassifier",
    "LMClassifier",
    "LeakageError",
    "Seq2Seq",
    "build",
    "check_causal",
]


def build(
    cfg: ModelConfig, vocab_size: int | None = None
) -> DecoderLM | Seq2Seq | EncoderClassifier | LMClassifier:
    """The model a config describes; `vocab_size` fills `cfg.vocab_size` when that is unset."""
    v = cfg.vocab_size or vocab_size
    if v is None:
        raise ValueError("model.vocab_size is unset and no vocab_size was given")
    if cfg.arch == "classifier":
        if cfg.n_classes is None:
            raise ValueError("model.n_classes is unset (the data sets it)")
        if cfg.init_from is not None:
            return LMClassifier(cfg, v, cfg.n_classes)
        return EncoderClassifier(cfg, v, cfg.n_classes)
    return Seq2Seq(cfg, v) if cfg.arch == "seq2seq" else DecoderLM(cfg, v)
