"""Leakage check: a causal model's outputs at position t must not depend on any token s > t.

Legend: L check length, C output columns (the padded vocabulary), R rows in one pass.

The check is exhaustive over the pairs of one random sequence of L tokens: for every
s = 1 … L − 1 a variant changes token s alone (to another id), and the log-probabilities
at every position t < s, over every column the model returns, must stay put. A change
names the pair (t, s). Log-probabilities over all columns, not raw logits cut to the
vocabulary: a future signal hidden in a padded column still moves the normaliser, and so
every real token's probability.

Each model is checked in eval and in train mode. In train mode dropout draws new masks
on every call, so (when two train-mode passes of the unchanged sequence differ) each chunk
of variants is compared with a chunk of unchanged copies run from the same RNG state: row
r of both gets the same masks, and only the changed token differs. The RNG state is
restored afterwards, so a check never changes training.

It runs twice: on the model, and on a copy whose parameters are perturbed (each tensor
plus Gaussian noise of 0.1 × its RMS + 0.02), so that a path to the future behind a
parameter that starts at zero (a gate, a residual scale) carries signal and shows.

Cost: about 2 models × 2 modes × L sequences of L tokens, forward only (twice that in
train mode with dropout), each compared with the unchanged sequence over the positions
before the changed token. Unless `length` is given (`train.leak_check_len`), L is the
longest length up to `seq_len` whose cost fits `BUDGET` (`auto_length`: a few seconds on
the project's 2-core CPU): the whole sequence for the small models; 29 of 256 positions
for the first write-up's d 512 model with its 50,257-token vocabulary, 52 for its quick
d 128 variant (times in `docs/LOG.md`). Pairs past L are not checked, and the result
says how many positions were.
"""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import nn

from attnlab.errors import LeakageError

ROWS = 8  # variants per forward pass (memory: ROWS x L x C floats)
BUDGET = 3e10  # the automatic check length's budget in cost units (a few seconds here)
MIN_AUTO_LEN = 16
COLUMN_COST = 80  # cost units per output column: the comparisons pass over each ~that often


def token_cost(model: nn.Module) -> int:
    """Cost units of one token through the check: the parameters that take part in a
    matmul (an untied embedding table is a lookup) plus `COLUMN_COST` per output column
    (fitted to the check's times on the project's CPU for d 128 and d 512 at vocabulary
    50,257: the log-probability comparison is memory-bound, and at d 128 it costs more
    than the unembedding matmul)."""
    n = sum(p.numel() for p in model.parameters())
    embed, unembed = getattr(model, "embed", None), getattr(model, "unembed", None)
    tied = unembed is not None and getattr(unembed, "weight", None) is getattr(embed, "weight", 0)
    if isinstance(embed, nn.Embedding) and not tied:
        n -= embed.weight.numel()
    return n + COLUMN_COST * int(getattr(model, "padded_vocab", getattr(model, "vocab_size", 0)))


def auto_length(model: nn.Module, seq_len: int) -> int:
    """The longest check length <= seq_len whose cost (L² x `token_cost`) fits `BUDGET`,
    but at least `MIN_AUTO_LEN` (or seq_len when shorter)."""
    fit = int((BUDGET / max(token_cost(model), 1)) ** 0.5)
    return min(seq_len, max(MIN_AUTO_LEN, fit))


def future_reads(model: nn.Module) -> str:
    """The modules that read tokens after the current one by construction (a centred
    conv's `future_offsets`), as one sentence; "" when none does."""
    parts = [
        f"{name} reads offsets {', '.join(f'+{o}' for o in m.future_offsets)}"
        for name, m in model.named_modules()
        if getattr(m, "future_offsets", None)
    ]
    if not parts:
        return ""
    return "by construction: " + "; ".join(parts) + " (conv_padding: same)"


def check_causal(
    model: nn.Module,
    vocab_size: int,
    seq_len: int,
    tol: float = 1e-4,
    seed: int = 0,
    length: int | None = None,
    perturb: bool = True,
) -> dict:
    """Check every pair (t < s) of a sequence of L = min(seq_len, length) tokens (`length`
    unset: `auto_length`), in eval and train mode, on the model and (with `perturb`) on a
    perturbed copy.

    Raises `LeakageError` naming the pair, the mode and the model (as given or perturbed)
    when a log-probability at t moves by more than `tol` after only token s changed, or
    when an output is not finite. Returns what was checked: `positions`, `pairs`,
    `max_change`, `modes`, `perturbed`, `seconds`. An encoder-decoder is checked on its
    decoder, with one fixed random source (ids >= 1, no padding) of `seq_len` tokens.
    """
    if seq_len < 2:
        raise ValueError("seq_len must be >= 2 to check causality")
    t0 = time.perf_counter()
    L = auto_length(model, seq_len) if length is None else max(2, min(seq_len, length))
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (1, L), generator=g)  # (1, L)
    shift = torch.randint(1, vocab_size, (L,), generator=g)  # every change is to another id
    variants = x.repeat(L - 1, 1)  # (L-1, L): row r changes token s = r + 1 alone
    s = torch.arange(1, L)
    variants[s - 1, s] = (x[0, s] + shift[1:]) % vocab_size
    src = None
    if getattr(model, "is_encoder_decoder", False):
        src = torch.randint(1, vocab_size, (1, seq_len), generator=g)  # (1, S)
    models = [("model", model)]
    if perturb:
        models.append(("perturbed copy", perturbed(model, seed)))
    worst = 0.0
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    try:
        for which, m in models:
            for mode in ("eval", "train"):
                m.train(mode == "train")
                worst = max(worst, _check(m, x, variants, src, tol, seed, f"{mode} mode, {which}"))
    except LeakageError as e:
        reads = future_reads(model)
        raise LeakageError(f"{e}; {reads}" if reads else str(e)) from None
    finally:
        model.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return {
        "positions": L,
        "of_seq_len": seq_len,
        "pairs": L * (L - 1) // 2,
        "max_change": worst,
        "tolerance": tol,
        "modes": ["eval", "train"],
        "perturbed": perturb,
        "seconds": time.perf_counter() - t0,
    }


def perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy with every parameter moved by N(0, (0.1 RMS + 0.02)^2) noise."""
    twin = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in twin.parameters():
            scale = 0.1 * p.detach().float().square().mean().sqrt().item() + 0.02
            noise = torch.randn(p.shape, generator=g) * scale
            p.add_(noise.to(device=p.device, dtype=p.dtype))
    return twin


@torch.no_grad()
def _check(model, x, variants, src, tol: float, seed: int, where: str) -> float:
    """Largest change at t < s over all variant rows; raises on a leak.

    Each pass runs the unchanged sequence as row 0 beside ROWS - 1 variants, so both go
    through kernels of one shape: rounding then differs only where the inputs do, and the
    noise floor is far below `tol` (a batch of 1 against a batch of 8 differed by up to
    1e-4 in the log-probabilities of a trained Mamba).
    """
    device = next(model.parameters()).device
    n, L = variants.shape
    step = ROWS - 1
    random = model.training and not torch.equal(
        _outputs(model, x, src, device), _outputs(model, x, src, device)
    )
    worst = 0.0
    for lo in range(0, n, step):
        rows = torch.cat([x, variants[lo : lo + step]])  # (R, L): row 0 unchanged
        P = lo + len(rows) - 1  # positions the chunk compares: t < s <= P
        if random:  # same RNG state: row r of both passes draws the same dropout masks
            torch.manual_seed(seed + lo)
            ref = _outputs(model, x.expand(len(rows), L), src, device)[1:, :P]  # (R-1, P, C)
            torch.manual_seed(seed + lo)
            out = _outputs(model, rows, src, device)[1:, :P]
        else:
            both = _outputs(model, rows, src, device)[:, :P]  # (R, P, C)
            ref, out = both[:1], both[1:]
        diff = _logprob_change(out, ref, torch.logsumexp(ref, -1))  # (R-1, P)
        s = torch.arange(lo + 1, P + 1, device=device)[:, None]  # (R-1, 1)
        t = torch.arange(P, device=device)[None, :]  # (1, P)
        diff = torch.where(t < s, diff, torch.zeros_like(diff))  # only the past of s
        m = float(diff.max())
        if m > tol:
            r, tt = divmod(int(diff.argmax()), P)
            moved = "became non-finite" if m == float("inf") else f"moved by {m:.3g} (> {tol})"
            raise LeakageError(
                f"log-probabilities at position {tt} {moved} when only token {lo + r + 1} "
                f"changed ({where}): the model sees the future"
            )
        worst = max(worst, m)
    return worst


def _outputs(model, x: torch.Tensor, src, device) -> torch.Tensor:
    """(R, L, C) float32: every column the model returns."""
    extra = {} if src is None else {"src": src.expand(len(x), -1).to(device)}
    return model(x.to(device), **extra).float()


def _logprob_change(out: torch.Tensor, ref: torch.Tensor, ref_lse: torch.Tensor):
    """max over columns of |log_softmax(out) - log_softmax(ref)|, (R, P), without forming
    either: (out - ref) - (lse(out) - lse(ref)). A column that is -inf in both (a padded
    id) is no change; one that is -inf in one only, or any NaN, is an infinite change."""
    lse = torch.logsumexp(out, -1)  # (R, P); NaN if any column is NaN
    d = out - ref  # (R, P, C): NaN where both are -inf
    d.sub_((lse - ref_lse)[..., None]).nan_to_num_(nan=0.0, posinf=math.inf, neginf=-math.inf)
    change = d.abs_().amax(-1)  # (R, P)
    return torch.where(torch.isfinite(lse), change, torch.full_like(change, math.inf))
