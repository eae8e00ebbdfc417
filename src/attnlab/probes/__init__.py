"""Probes: everything that looks inside a trained model. Knows nothing of training.

- `capture(model)`: TransformerLens-style named activations (`blocks.0.attn.hook_pattern`).
- `intervene`, `ablate`, `patch`: edit activations at hook points, ablate heads (zero or
  mean), activation patching (`head_patching`, `resid_patching` heat maps).
- `head_scores`: previous-token, duplicate-token, induction and copying scores per head.
- `icl_score`: late-token minus early-token loss (Olsson et al. 2022).
- `static`: convolution kernel profiles, smear gates, embedding geometry (parameters only).
- `lm_probes`: all of it for a token model, as data (`attnlab.runs.probe(run_dir)` writes
  it to `probes.json`; the report draws the figures).
- `translation`: word translation, alignment and embedding probes of Pig Latin models.
"""

from attnlab.probes.capture import Cache, capture, hook_points
from attnlab.probes.heads import head_scores, pattern_score, target_masks
from attnlab.probes.icl import icl_positions, icl_score, per_position_loss
from attnlab.probes.intervene import (
    Patched,
    ablate,
    head_patching,
    intervene,
    patch,
    resid_patching,
)
from attnlab.probes.run import TrainingProbe, lm_probes, load_trained
from attnlab.probes.sequences import ProbeSet, repeated_sequences

__all__ = [
    "Cache",
    "Patched",
    "ProbeSet",
    "TrainingProbe",
    "ablate",
    "capture",
    "head_patching",
    "head_scores",
    "hook_points",
    "icl_positions",
    "icl_score",
    "intervene",
    "lm_probes",
    "load_trained",
    "patch",
    "pattern_score",
    "per_position_loss",
    "repeated_sequences",
    "resid_patching",
    "target_masks",
]
