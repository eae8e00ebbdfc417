"""Leakage check: a causal model's outputs at positions <= t must not depend on tokens > t."""

from __future__ import annotations

import torch
from torch import nn

from attnlab.errors import LeakageError


@torch.no_grad()
def check_causal(
    model: nn.Module,
    vocab_size: int,
    seq_len: int,
    trials: int = 4,
    tol: float = 1e-5,
    seed: int = 0,
    batch: int = 2,
) -> float:
    """Change the tokens after a position t and require outputs at <= t to stay put.

    Runs `trials` positions (the first, the last but one, and random ones between) in eval
    mode on the model's device, and raises `LeakageError` naming t and the largest change
    if any output at <= t moves by more than `tol`. Returns the largest change seen.
    An encoder-decoder is checked on its decoder, with one fixed random source (ids >= 1,
    no padding) of `seq_len` tokens.
    """
    if seq_len < 2:
        raise ValueError("seq_len must be >= 2 to check causality")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (batch, seq_len), generator=g)  # (B, T)
    extra = {}
    if getattr(model, "is_encoder_decoder", False):
        extra["src"] = torch.randint(1, vocab_size, (batch, seq_len), generator=g).to(device)
    base = model(x.to(device), **extra)[..., :vocab_size].float()  # (B, T, V), pads cut off
    rand_t = torch.randint(0, seq_len - 1, (max(0, trials - 2),), generator=g).tolist()
    worst = 0.0
    try:
        for t in [0, seq_len - 2, *rand_t][:trials]:
            shift = torch.randint(1, vocab_size, (batch, seq_len - t - 1), generator=g)
            x2 = x.clone()
            x2[:, t + 1 :] = (x[:, t + 1 :] + shift) % vocab_size  # every later token differs
            out = model(x2.to(device), **extra)[..., :vocab_size].float()
            moved = (out[:, : t + 1] - base[:, : t + 1]).abs().max().item()
            if moved != moved:  # NaN: a non-finite output can hide a change
                raise LeakageError(f"non-finite outputs at positions <= {t}")
            worst = max(worst, moved)
            if moved > tol:
                raise LeakageError(
                    f"outputs at positions <= {t} moved by {moved:.3g} (> {tol}) when only "
                    f"tokens after {t} changed: the model sees the future"
                )
    finally:
        model.train(was_training)
    return worst
