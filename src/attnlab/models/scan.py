"""The linear scan `h_t = a_t * h_{t-1} + b_t` (`h_0 = b_0`) of a selective state space.

Legend: B batch, L length, D channels, N state size (any trailing shape works; the scan
runs along dim 1).

`scan(a, b, method)` takes `a`, `b` of shape (B, L, D, N) and returns `h` of the same
shape. Three methods, all differentiable:

- `sequential` (`scan_ref`): the plain loop over L, autograd through every step. The
  reference: obviously right, and L small kernels one after the other.
- `parallel`: Blelloch's work-efficient scan (an up-sweep that combines pairs, then a
  down-sweep that hands each left neighbour's prefix on), 2·log2(L) vectorised steps of
  in-place fused multiply-adds on strided views of one padded copy. The backward pass is
  the mirrored scan run right-to-left on the output gradient (`g_t = dh_t + a_{t+1} g_{t+1}`,
  `da_t = g_t h_{t-1}`, `db_t = g_t`) inside a custom `autograd.Function`, so memory is
  O(B·L·D·N) whatever L is. It differs from `mambapy`'s `pscan` (the same algorithm) by
  fusing each multiply-add (`addcmul_`), by skipping the down-sweep's products of `a`
  (the forward result never reads them), and by any length (zero padding to a power of 2).
- `log`: Heinsen's (2023) log-space scan, `h_t = A*_t · Σ_{s≤t} b_s / A*_s` with
  `log A*_t = cumsum(log a)` and the sum taken by `logcumsumexp`. Real arithmetic only:
  signs are carried apart (`b_s / A*_s` is split into its positive and negative terms,
  two log-sums, then a difference), so negative `b` and negative `a` work; `a = 0` is
  clamped to `TINY`. Precision limit: `logcumsumexp` returns `log Σ` with an absolute
  error of about eps·|log A*_t|, so the relative error of `h_t` grows like
  eps·|Σ_{s≤t} log|a_s||, amplified by the cancellation between the two signed sums.
  With float32 (eps 6e-8) and `a` in (0.9, 1) that is ~1e-5 at L = 4096; with `a` near 0
  (|log a| ~ 70) it is ~1e-2 by L = 4096 and the method is not usable there. `scan_log`
  takes `log a` directly, which Mamba has (`ΔA`), skipping the `exp` and `log`. Its
  gradient is the mirrored log-space scan (`LogScan`), exact where `a` or `b` is 0.

`scan_ref` and the tests use float64 as the truth; see `tests/unit/test_scan.py` for the stated
tolerances.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

ScanMethod = Literal["sequential", "parallel", "log"]
METHODS: tuple[str, ...] = ("sequential", "parallel", "log")
TINY = 1e-30  # |a| below this is taken as TINY by the log scan (log 0 = -inf otherwise)


def scan(a: torch.Tensor, b: torch.Tensor, method: ScanMethod = "parallel") -> torch.Tensor:
    """h (B, L, ...) with `h_t = a_t * h_{t-1} + b_t`, `h_0 = b_0`, for a, b (B, L, ...)."""
    if a.shape != b.shape:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must have one shape")
    if a.dim() < 2:
        raise ValueError(f"a and b need a batch and a length dimension (got {a.dim()} dims)")
    if method == "sequential":
        return scan_ref(a, b)
    if method == "parallel":
        return ParallelScan.apply(a, b)
    if method == "log":
        return LogScan.apply(a, b)
    raise ValueError(f"unknown scan method {method!r}; choose from {METHODS}")


def scan_ref(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The sequential loop over L: the reference every other method is tested against."""
    a_steps, b_steps = a.unbind(1), b.unbind(1)  # L × (B, ...): one backward op, not L
    h = b_steps[0]  # (B, ...)
    out = [h]
    for a_t, b_t in zip(a_steps[1:], b_steps[1:], strict=True):
        h = a_t * h + b_t  # (B, ...)
        out.append(h)
    return torch.stack(out, dim=1)  # (B, L, ...)


# ---------------------------------------------------------------- parallel (Blelloch)


def _blelloch_(a: torch.Tensor, x: torch.Tensor, reverse: bool = False) -> None:
    """In place: x (B, L, M) becomes its scan with coefficients a (B, L, M); L a power of 2.

    Left to right, `h_t = a_t h_{t-1} + x_t`; with `reverse`, right to left,
    `g_t = a_t g_{t+1} + x_t` (the mirror image: segments start at p instead of ending
    there, and the left member of each pair is the one updated). a is overwritten with
    partial products. After the up-sweep, position p holds the combination of the segment
    that ends at p and is as long as p + 1's lowest set bit; the down-sweep then adds to
    each segment the prefix just before it.
    """
    L = x.shape[1]
    steps = int(math.log2(L))
    dst, src = (0, 1) if reverse else (1, 0)  # pair member updated, member read
    aa, xx = a, x
    for level in range(steps):  # up-sweep: pair (2i, 2i+1) at stride 2^level
        aa, xx = aa.unflatten(1, (-1, 2)), xx.unflatten(1, (-1, 2))  # (B, T/2, 2, M) views
        xx[:, :, dst].addcmul_(aa[:, :, dst], xx[:, :, src])
        if level < steps - 1:  # the last level's product is never read
            aa[:, :, dst].mul_(aa[:, :, src])
        aa, xx = aa[:, :, dst], xx[:, :, dst]
    for level in range(steps - 2, -1, -1):  # down-sweep at stride s = 2^level
        s = 2**level
        # forward: pairs (2s-1, 3s-1), (4s-1, 5s-1), ... up to L-s-1, the second updated;
        # reverse: pairs (s, 2s), (3s, 4s), ... up to L-2s, the first updated
        window = slice(s, L - s, s) if reverse else slice(2 * s - 1, L - s, s)
        aa = a[:, window].unflatten(1, (-1, 2))  # (B, P, 2, M)
        xx = x[:, window].unflatten(1, (-1, 2))
        xx[:, :, dst].addcmul_(aa[:, :, dst], xx[:, :, src])


def _padded(t: torch.Tensor, length: int) -> torch.Tensor:
    """A contiguous copy of t (B, L, M) zero-padded to (B, length, M) along dim 1."""
    if t.shape[1] == length:
        return t.clone(memory_format=torch.contiguous_format)
    out = t.new_zeros(t.shape[0], length, t.shape[2])
    out[:, : t.shape[1]] = t
    return out


def _pow2(n: int) -> int:
    """The smallest power of 2 >= n."""
    return 1 << max(0, (n - 1).bit_length())


class ParallelScan(torch.autograd.Function):
    """Blelloch scan forward; the mirrored scan right-to-left for the gradient.

    Zero padding to a power of 2 after the end never reaches positions t < L: forward,
    nothing flows leftwards; backward, the coefficient c at L - 1 is a_L = 0.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shape = b.shape
        B, L = shape[0], shape[1]
        a3, b3 = a.reshape(B, L, -1), b.reshape(B, L, -1)  # (B, L, M)
        L2 = _pow2(L)
        h = _padded(b3, L2)  # (B, L2, M), scanned in place
        if L2 > 1:
            _blelloch_(_padded(a3, L2), h)
        h = h[:, :L]
        ctx.save_for_backward(a3, h)
        ctx.shape = shape
        return h.reshape(shape)

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a3, h = ctx.saved_tensors  # (B, L, M) each
        g = reverse_scan_(a3, grad_h.reshape(h.shape).clone(), "parallel")  # (B, L, M) dL/db
        da = torch.zeros_like(h)  # h_{-1} = 0: a_0 is never read
        torch.mul(g[:, 1:], h[:, :-1], out=da[:, 1:])
        return da.reshape(ctx.shape), g.reshape(ctx.shape)


# ---------------------------------------------------------------- in place, no autograd


def scan_(a: torch.Tensor, b: torch.Tensor, method: ScanMethod, keep_a: bool = False):
    """The scan without autograd, reusing b's storage where it can: b is clobbered, and a
    too unless `keep_a` (then the parallel scan works on a copy of a).

    For fused callers (the Mamba mixer's `SelectiveScan`) that write their own backward.
    """
    B, L = b.shape[:2]
    if method == "sequential":
        for t in range(1, L):
            b[:, t].addcmul_(a[:, t], b[:, t - 1])  # (B, ...)
        return b
    if method == "log":
        return scan(a, b, "log")
    a3, b3 = a.reshape(B, L, -1), b.reshape(B, L, -1)  # (B, L, M) views of contiguous a, b
    L2 = _pow2(L)
    if L2 != L or keep_a:
        a3 = _padded(a3, L2)  # a copy
    if L2 != L:
        b3 = _padded(b3, L2)
    if L2 > 1:
        _blelloch_(a3, b3)
    return b3[:, :L].reshape(b.shape)


def reverse_scan_(a: torch.Tensor, g: torch.Tensor, method: ScanMethod) -> torch.Tensor:
    """Right to left without autograd: `g_t <- g_t + a_{t+1} g_{t+1}` (the gradient of a
    scan with coefficients a, from the output gradient g); g is clobbered."""
    B, L = g.shape[:2]
    if method == "sequential":
        for t in range(L - 2, -1, -1):
            g[:, t].addcmul_(a[:, t + 1], g[:, t + 1])  # (B, ...)
        return g
    if method == "log":
        c = torch.zeros_like(a)  # c_t = a_{t+1}, 0 at the end
        c[:, :-1] = a[:, 1:]
        return scan(c.flip(1), g.flip(1), "log").flip(1)
    a3, g3 = a.reshape(B, L, -1), g.reshape(B, L, -1)  # (B, L, M)
    L2 = _pow2(L)
    c = a3.new_zeros(B, L2, a3.shape[2])  # c_t = a_{t+1}, 0 from L - 1 on
    c[:, : L - 1] = a3[:, 1:]
    if L2 != L:
        g3 = _padded(g3, L2)
    if L2 > 1:
        _blelloch_(c, g3, reverse=True)
    return g3[:, :L].reshape(g.shape)


# ---------------------------------------------------------------- log space (Heinsen)


class LogScan(torch.autograd.Function):
    """The log-space scan forward; the mirrored scan (also in log space) for the gradient.

    Autograd through `scan_log` would differentiate log|a| and log|b|, whose slopes are
    infinite at 0 and get masked to a zero gradient there: a = 0 (a reset) or b = 0 (no
    input) would then receive no gradient at all. The recurrence's own backward
    (`g_t = dh_t + a_{t+1} g_{t+1}`, `da_t = g_t h_{t-1}`, `db_t = g_t`) has no such point.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        sign = torch.where(a < 0, -1.0, 1.0).to(a.dtype)
        h = scan_log(a.abs().clamp_min(TINY).log(), b, sign)  # (B, L, ...)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, h = ctx.saved_tensors
        g = reverse_scan_(a, grad_h.clone(), "log")  # (B, L, ...) dL/db
        da = torch.zeros_like(h)  # h_{-1} = 0: a_0 is never read
        torch.mul(g[:, 1:], h[:, :-1], out=da[:, 1:])
        return da, g


def scan_log(
    log_a: torch.Tensor, b: torch.Tensor, sign_a: torch.Tensor | None = None
) -> torch.Tensor:
    """Heinsen's log-space scan from log|a| (B, L, ...) and b; `sign_a` ±1 where a < 0.

    h_t = s*_t · exp(cumlog_t) · (P_t - N_t), where P_t and N_t are the log-sum-exps of
    the positive and negative terms b_s · s*_s / |A*_s|, s ≤ t, and s* the running sign.
    """
    cumlog = torch.cumsum(log_a[:, 1:], dim=1)  # (B, L-1, ...) log|A*_t| for t >= 1
    cumlog = torch.cat([torch.zeros_like(log_a[:, :1]), cumlog], dim=1)  # A*_0 = 1: h_0 = b_0
    if sign_a is None:
        star = torch.ones_like(b)
    else:
        star = torch.cat([torch.ones_like(sign_a[:, :1]), sign_a[:, 1:]], dim=1).cumprod(dim=1)
    term_sign = torch.sign(b) * star  # sign of b_s / A*_s
    safe_b = torch.where(b == 0, torch.ones_like(b), b.abs())  # no -inf slope at 0
    log_term = safe_b.log() - cumlog  # (B, L, ...) log|b_s / A*_s|
    neg_inf = torch.full_like(log_term, float("-inf"))
    pos = torch.logcumsumexp(torch.where(term_sign > 0, log_term, neg_inf), dim=1)
    neg = torch.logcumsumexp(torch.where(term_sign < 0, log_term, neg_inf), dim=1)
    return star * (_exp_finite(pos + cumlog) - _exp_finite(neg + cumlog))  # (B, L, ...)


def _exp_finite(x: torch.Tensor) -> torch.Tensor:
    """exp(x) with exp(-inf) = 0 and a zero (not NaN) gradient there."""
    finite = torch.isfinite(x)
    return torch.where(finite, torch.where(finite, x, torch.zeros_like(x)).exp(), 0.0)
