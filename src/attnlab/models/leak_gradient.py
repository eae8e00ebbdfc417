"""The leak check's full-length half: the gradient of the past with respect to the future.

Legend: L check length (the model's whole `max_seq_len`), R rows in one pass, D width.

A model is causal when the state it reads out at position t depends on no input after t.
For a cut c, one backward pass of a random projection of the final states at every
position t <= c, Σ_t <w_t, h_t>, gives its gradient with respect to the embedding of every
position; at each position s > c it must be exactly zero (a causal mask, a left-padded
conv and a scan all give structural zeros, so no tolerance hides a small leak: anything
above `REL_TOL` of the past's gradient counts). One row per cut c = 0 … L − 2 covers every
pair (t < s) of the whole length, R rows a pass. A random w makes a cancellation a
measure-zero event; the check runs on the perturbed copy (`leakage`), in eval and
train mode (a train-mode batch also shows coupling through the batch: BatchNorm over
(batch, time) gives a row's past a gradient at another row's future, and is a leak).

What it proves and what it does not: the final states of a token model (`hidden=True`)
feed a per-position head (the final norm is applied before; the unembedding is a Linear),
so the log-probabilities at t depend on the future only through h_t. A model without
`hidden` is checked on a random projection of its logits (the same proof, at the cost of
the vocabulary). A path from the token ids that bypasses the embedding (a model that reads
raw ids) is not differentiable and is left to the token check (`leakage`), which changes
ids.

Cost: 2 modes (3 with the explicit attention path, 5 under a mixed precision) × L rows of
L tokens, forward and backward to the embeddings only (no weight gradients), measured in
`docs/LOG.md` for the first write-up's d 512 model.
"""

from __future__ import annotations

import contextlib
import inspect

import torch
from torch import nn

from attnlab.errors import LeakageError

GRAD_ROWS = 8  # cuts per backward pass (memory: R x L activations with their graph)
REL_TOL = 1e-6  # a future gradient above this share of the past's largest is a leak


def embedding_of(model: nn.Module) -> nn.Module | None:
    """The module whose output is the differentiable input of the check: `model.embed`,
    else the first token embedding inside (a wrapper's); None when there is none."""
    embed = getattr(model, "embed", None)
    if isinstance(embed, nn.Module):
        return embed
    return next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)


@contextlib.contextmanager
def _leaf_embeddings(embed: nn.Module, tokens: torch.Tensor):
    """While open, `embed`'s output for exactly `tokens` is replaced by a leaf tensor that
    requires grad; the leaves are appended to the yielded list (an encoder-decoder embeds
    its source through the same module: that call is left alone)."""
    leaves: list[torch.Tensor] = []

    def hook(_module, args, out):
        if args and args[0] is tokens:
            leaf = out.detach().requires_grad_(True)
            leaves.append(leaf)
            return leaf
        return out

    handle = embed.register_forward_hook(hook)
    try:
        yield leaves
    finally:
        handle.remove()


def takes_hidden(model: nn.Module) -> bool:
    """Whether `model.forward` returns its final states with `hidden=True`."""
    return "hidden" in inspect.signature(model.forward).parameters


def gradient_check(
    model: nn.Module,
    x: torch.Tensor,
    src: torch.Tensor | None,
    where: str,
    seed: int = 0,
) -> float:
    """Check every cut of the (1, L) sequence `x` on `model` as it is (mode, precision
    context: the caller's); the largest future gradient relative to the past's. Raises
    `LeakageError` naming the earliest position t and the token s > t it depends on."""
    device = next(model.parameters()).device
    L = x.shape[1]
    embed = embedding_of(model)
    if embed is None:
        raise TypeError(f"{type(model).__name__} has no token embedding to differentiate")
    hidden = takes_hidden(model)
    g = torch.Generator().manual_seed(seed + 7)
    worst = 0.0
    cuts = torch.arange(L - 1)
    pos = torch.arange(L)[None, :]  # (1, L)
    for lo in range(0, L - 1, GRAD_ROWS):
        c = cuts[lo : lo + GRAD_ROWS, None]  # (R, 1)
        rows = x.expand(len(c), L).contiguous().to(device)  # (R, L), a tensor of its own
        extra = {} if src is None else {"src": src.expand(len(c), -1).to(device)}
        with torch.enable_grad(), _leaf_embeddings(embed, rows) as leaves:
            out = model(rows, hidden=True, **extra) if hidden else model(rows, **extra)
            out = out.float()  # (R, L, D) final states, or (R, L, C) logits
            if not leaves:
                raise TypeError(f"{type(model).__name__}: its embedding did not see the tokens")
            w = torch.randn(out.shape, generator=g).to(device)  # (R, L, D|C)
            past = (pos <= c).to(device)  # (R, L): the positions whose states are scored
            loss = (out.nan_to_num() * w * past[..., None]).sum()
            (grad,) = torch.autograd.grad(loss, leaves[0], allow_unused=True)
        if grad is None:  # nothing scored depends on the embeddings at all
            continue
        size = grad.float().abs().amax(-1).cpu()  # (R, L)
        if not torch.isfinite(size).all():
            raise LeakageError(f"a gradient of the past became non-finite ({where})")
        scale = float(torch.where(pos <= c, size, 0.0).amax())
        future = torch.where(pos > c, size, 0.0)  # (R, L)
        rel = float(future.amax()) / max(scale, 1e-30)
        if rel > REL_TOL:
            flagged = future > REL_TOL * scale  # (R, L)
            r = int(flagged.any(1).nonzero()[0])  # the earliest cut that reads its future
            t, s = int(c[r]), int(flagged[r].nonzero()[0])  # t reads s (cut t - 1 did not)
            raise LeakageError(
                f"the states up to position {t} have a gradient with respect to token {s} "
                f"({rel:.3g} of the past's; {where}): the model sees the future"
            )
        worst = max(worst, rel)
    return worst
