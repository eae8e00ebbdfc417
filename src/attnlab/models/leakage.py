"""Leakage check: a causal model's outputs at position t must not depend on any token s > t.

Legend: L check length, C output columns (the padded vocabulary), R rows in one pass.

The check is exhaustive over the pairs of one random sequence of L tokens: for every
s = 1 … L − 1 a variant changes token s alone (to another id), and the log-probabilities
at every position t < s, over every column the model returns, must stay put. A change
names the pair (t, s). Log-probabilities over all columns, not raw logits cut to the
vocabulary: a future signal hidden in a padded column still moves the normaliser, and so
every real token's probability.

Each model is checked in eval and in train mode. Each pass compares the variants with a
batch of unchanged copies of the same shape, run from the same RNG state, never with a row
of their own batch: a model that couples the rows of a batch (BatchNorm over (batch,
time) in train mode) moves an unchanged row beside its variants, so a reference in the
variants' batch would move with them and hide the leak. Row r of both batches gets the
same dropout masks, and only the changed token differs. The RNG state is restored
afterwards, and so are the model's buffers (a BatchNorm's running statistics), so a
check never changes training.

It runs on the model and on a copy whose parameters are perturbed (each tensor plus
Gaussian noise of 0.1 × its RMS + 0.02), so that a path to the future behind a parameter
that starts at zero (a gate, a residual scale) carries signal and shows; and again in each
setting the model trains in: under the run's precision context (bf16 autocast), through
the explicit attention path that probes use (`HookPoint.always`), compiled (the module
`torch.compile` returned), and on a sequence whose second half is padding. The settings
run on the perturbed copy (the model itself when `perturb` is off), compiled on the
compiled module.

The changed-token check covers L positions; the gradient check (`leak_gradient`) covers
the model's whole `max_seq_len`, every pair, on the perturbed copy in eval and train mode,
and under the run's precision context and the explicit attention path (eval). The copy
alone suffices there: its noise leaves a leak of the model in place (a structural path
does not vanish under noise except on a measure-zero set) and opens the ones a zero
weight hides; the model itself gets the changed-token check.

Cost of the changed-token half: about 2 models × 2 modes × L sequences of L tokens, twice
(variants and reference), forward only, each compared over the positions before the
changed token. Unless `length` is given (`train.leak_check_len`), L is the longest length
up to `seq_len` whose cost fits `BUDGET` (`auto_length`: a few seconds on the project's
2-core CPU). The gradient half's cost is in `leak_gradient`; both are reported in
`seconds`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from attnlab.errors import LeakageError
from attnlab.models.hooks import HookPoint
from attnlab.models.leak_gradient import REL_TOL, embedding_of, gradient_check

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
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    compiled: nn.Module | None = None,
    full: bool = True,
) -> dict:
    """Check every pair (t < s) of a sequence of L = min(seq_len, length) tokens (`length`
    unset: `auto_length`) by changing tokens, and (with `full`) every pair of the model's
    whole `max_seq_len` (or `seq_len`) by the gradient (`leak_gradient`), in eval and
    train mode, on the model and (with `perturb`) a perturbed copy (the gradient: on the
    copy only, see the module doc); then again in each setting given: `autocast` (a
    function returning the run's precision context, e.g. `fabric.autocast`), `compiled`
    (the module `torch.compile` returned: changed tokens only), the explicit attention
    path, and a padded sequence.

    Raises `LeakageError` naming the pair, the mode, the setting and the model (as given
    or perturbed) when a log-probability at t moves by more than `tol` after only token s
    changed (or an unchanged row moved when others in its batch changed), when the states
    up to t have a gradient with respect to a later token, or when an output is not
    finite. Returns what was checked: `positions`, `pairs`, `max_change`, `full`
    (positions, pairs, largest relative gradient, seconds), `settings`, `modes`,
    `perturbed`, `seconds`. An encoder-decoder is checked on its decoder, with one fixed
    random source (ids >= 1, no padding) of `seq_len` tokens.
    """
    if seq_len < 2:
        raise ValueError("seq_len must be >= 2 to check causality")
    t0 = time.perf_counter()
    full = full and embedding_of(model) is not None  # a model of raw ids: tokens only
    L = auto_length(model, seq_len) if length is None else max(2, min(seq_len, length))
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (1, L), generator=g)  # (1, L)
    padded = x.clone()
    padded[:, L // 2 :] = getattr(model, "pad_id", 0)  # (1, L): a padded second half
    src = None
    if getattr(model, "is_encoder_decoder", False):
        src = torch.randint(1, vocab_size, (1, seq_len), generator=g)  # (1, S)
    full_len = max(seq_len, getattr(model, "max_seq_len", None) or 0)
    xf = torch.randint(0, vocab_size, (1, full_len), generator=g)  # (1, Lf)
    base = [("model", model)] + ([("perturbed copy", perturbed(model, seed))] if perturb else [])
    # the gradient half and the later settings run on the perturbed copy where there is
    # one: its noise opens every path a zero weight closes, so it proves the model's too
    opened = base[-1:]
    none = contextlib.nullcontext
    both, grad = ("eval", "train"), ("eval", "train") if full else ()
    # (setting, [(which, module, the gradient check's modes)], context, sequence)
    settings = [("", [(w, m, grad if (w, m) in opened else ()) for w, m in base], none, x)]
    if autocast is not None:
        settings.append(("under the run's precision", _with(opened, grad), autocast, x))
    if _hook_points(model):  # the same mask as the fast path: its gradient in eval only
        settings.append(("explicit attention path", _with(opened, grad[:1]), _explicit_path, x))
    settings.append(("padded sequence", _with(opened, ()), none, padded))
    if compiled is not None:
        settings.append(("compiled", [("model", compiled, ())], autocast or none, x))
    worst, worst_grad, grad_s = 0.0, 0.0, 0.0
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    buffers = [(b, b.detach().clone()) for b in model.buffers()]  # BatchNorm's statistics
    try:
        for setting, models, context, seq in settings:
            for which, m, grad_modes in models:
                for mode in both:
                    m.train(mode == "train")
                    where = ", ".join(w for w in (f"{mode} mode", which, setting) if w)
                    with context():
                        worst = max(worst, _check(m, seq, vocab_size, src, tol, seed, where))
                        if mode in grad_modes:
                            t1 = time.perf_counter()
                            rel = gradient_check(_eager(m), xf, src, where, seed)
                            worst_grad, grad_s = max(worst_grad, rel), grad_s + _since(t1)
    except LeakageError as e:
        reads = future_reads(model)
        raise LeakageError(f"{e}; {reads}" if reads else str(e)) from None
    finally:
        model.train(was_training)
        with torch.no_grad():
            for b, kept in buffers:
                b.copy_(kept)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return {
        "positions": L,
        "of_seq_len": seq_len,
        "pairs": L * (L - 1) // 2,
        "max_change": worst,
        "tolerance": tol,
        "full": {
            "positions": full_len,
            "pairs": full_len * (full_len - 1) // 2,
            "max_relative_gradient": worst_grad,
            "tolerance": REL_TOL,
            "seconds": grad_s,
        }
        if full
        else None,
        "settings": ["as built", *(s[0] for s in settings[1:])],
        "modes": ["eval", "train"],
        "perturbed": perturb,
        "seconds": time.perf_counter() - t0,
    }


def _with(models: list[tuple[str, nn.Module]], grad: tuple[str, ...]) -> list[tuple]:
    """(which, module, gradient modes) for each model of a setting."""
    return [(w, m, grad) for w, m in models]


def _since(t: float) -> float:
    return time.perf_counter() - t


def _eager(m: nn.Module) -> nn.Module:
    """The module a compiled wrapper holds (the gradient check hooks the eager model)."""
    return getattr(m, "_orig_mod", m)


def _hook_points(model: nn.Module) -> list[HookPoint]:
    """The model's attention-pattern hook points (whose `active` switches the path)."""
    return [m for n, m in model.named_modules() if isinstance(m, HookPoint) and "pattern" in n]


@contextlib.contextmanager
def _explicit_path():
    """Every hook point active while open: attention takes its explicit (probe) path."""
    before = HookPoint.always
    HookPoint.always = True
    try:
        yield
    finally:
        HookPoint.always = before


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
def _check(model, x, vocab_size: int, src, tol: float, seed: int, where: str) -> float:
    """Largest change at t < s over all variants of the (1, L) sequence x (ids below
    `vocab_size`); raises on a leak.

    Each pass runs ROWS - 1 variants after the unchanged sequence (row 0), and compares
    them with ROWS unchanged copies run from the same RNG state: the same kernel shapes
    (rounding then differs only where the inputs do: a batch of 1 against a batch of 8
    differed by up to 1e-4 in a trained Mamba), the same dropout masks row by row, and no
    row shared with the variants' batch (row 0 must not move either: if it does, the
    batch couples its rows).
    """
    device = next(model.parameters()).device
    L = x.shape[1]
    g = torch.Generator().manual_seed(seed + 3)
    shift = torch.randint(1, vocab_size, (L,), generator=g)  # every change is to another id
    variants = x.repeat(L - 1, 1)  # (L-1, L): row r changes token s = r + 1 alone
    s_idx = torch.arange(1, L)
    variants[s_idx - 1, s_idx] = (x[0, s_idx] + shift[1:]) % vocab_size
    n, step = L - 1, ROWS - 1
    worst = 0.0
    for lo in range(0, n, step):
        rows = torch.cat([x, variants[lo : lo + step]])  # (R, L): row 0 unchanged
        P = lo + len(rows) - 1  # positions the chunk compares: t < s <= P
        torch.manual_seed(seed + lo)  # row r of both passes draws the same dropout masks
        ref = _outputs(model, x.expand(len(rows), L), src, device)[:, :P]  # (R, P, C)
        torch.manual_seed(seed + lo)
        out = _outputs(model, rows, src, device)[:, :P]
        diff = _logprob_change(out, ref, torch.logsumexp(ref, -1))  # (R, P)
        s = torch.cat([torch.tensor([P]), torch.arange(lo + 1, P + 1)])[:, None].to(device)
        t = torch.arange(P, device=device)[None, :]  # (1, P)
        diff = torch.where(t < s, diff, torch.zeros_like(diff))  # only the past of s
        m = float(diff.max())
        if m > tol:
            r, tt = divmod(int(diff.argmax()), P)
            moved = "became non-finite" if m == float("inf") else f"moved by {m:.3g} (> {tol})"
            if r == 0:
                raise LeakageError(
                    f"log-probabilities at position {tt} of an unchanged row {moved} when "
                    f"tokens of other rows in its batch changed ({where}): the batch couples "
                    "its rows, and a row sees other rows' future"
                )
            raise LeakageError(
                f"log-probabilities at position {tt} {moved} when only token {lo + r} "
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
