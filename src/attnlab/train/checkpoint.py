"""Checkpoints: weights as safetensors, and the state that makes a resume exact.

`model.safetensors` holds the last weights, `best.safetensors` the best by validation
loss, `state.pt` the optimizer, the loss scaler (fp16), the step, the RNG states (CPU,
CUDA, numpy, Python) and the running bookkeeping.
Each file is written to a temporary name and renamed, so a kill mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_model
from torch import nn

from attnlab.errors import UserError
from attnlab.run_dir import RunDir


def save_weights(model: nn.Module, path: Path) -> None:
    """Atomically write the model's weights (shared tensors stored once)."""
    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp))
    os.replace(tmp, path)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load weights written by `save_weights` into a model of the same config."""
    load_model(model, str(path), device=str(next(model.parameters()).device))


def init_from_run(model: nn.Module, run_dir: str | Path) -> None:
    """Start a fine-tuned classifier (`model.init_from`): load the language model run's
    final weights into its stack (`model.lm`); the unembedding is left out, the class
    head keeps its fresh start. Raises `UserError` if the weights do not fit."""
    rd = RunDir(run_dir)
    if not rd.weights.is_file():
        raise UserError(f"model.init_from: {rd.weights} not found (is {rd.path} a finished run?)")
    sd = load_file(str(rd.weights))
    if "embed.weight" not in sd and "unembed.weight" in sd:  # tied, stored once
        sd["embed.weight"] = sd["unembed.weight"]
    sd.pop("unembed.weight", None)
    missing, unexpected = model.lm.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise UserError(
            f"model.init_from: {rd.weights} does not fit the classifier's stack "
            f"(missing {missing[:4]}, unexpected {unexpected[:4]})"
        )


def rng_states() -> dict:
    """Every RNG state training draws from: torch's CPU and CUDA ones, numpy's, Python's."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_states(rng: dict) -> None:
    """Put back states from `rng_states` (the CUDA ones only where a GPU is there)."""
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def save_state(path: Path, optimizer: torch.optim.Optimizer, **extra) -> None:
    """Atomically write optimizer state, RNG states and `extra` bookkeeping (the loop adds
    the precision plugin's state: fp16's loss scaler)."""
    state = {"optimizer": optimizer.state_dict(), "rng": rng_states(), **extra}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path, optimizer: torch.optim.Optimizer) -> dict:
    """Restore optimizer and RNG states; returns the bookkeeping saved beside them."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state.pop("optimizer"))
    set_rng_states(state.pop("rng"))
    return state
