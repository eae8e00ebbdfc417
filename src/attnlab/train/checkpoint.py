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
from safetensors.torch import load_model, save_model
from torch import nn


def save_weights(model: nn.Module, path: Path) -> None:
    """Atomically write the model's weights (shared tensors stored once)."""
    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp))
    os.replace(tmp, path)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load weights written by `save_weights` into a model of the same config."""
    load_model(model, str(path), device=str(next(model.parameters()).device))


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
