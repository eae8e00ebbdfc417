"""The three linear scans against a float64 sequential reference, forward and backward.

Tolerances (stated here, and in the README):
- float64, any length here: every method within 1e-10 of `scan_ref` (absolute, on values
  of order 1..10), outputs and gradients.
- float32 up to L = 4096, a in [0.9, 1) and b ~ N(0, 1): relative error
  max|h - h64| / max|h64| below 1e-4 for all three methods, gradients likewise, except the
  log scan's gradients at L = 4096: below 2e-4 (measured 1.03e-4 for da: its error grows
  with |Σ log a| ≈ 200 there, see `attnlab.models.scan`).
- the log scan is not usable with a near 0 over long sequences (its error grows with
  |Σ log a|); the test shows it stays exact in float64 and states the float32 limit.
"""

from __future__ import annotations

import pytest
import torch

from attnlab.models.scan import METHODS, scan, scan_log, scan_ref


def _inputs(L: int, dtype=torch.float64, low: float = 0.8, seed: int = 0, shape=(2, 3, 4)):
    g = torch.Generator().manual_seed(seed)
    B, D, N = shape
    a = torch.rand(B, L, D, N, generator=g, dtype=dtype) * (1 - low) + low
    b = torch.randn(B, L, D, N, generator=g, dtype=dtype)
    return a, b


def _grads(method: str, a: torch.Tensor, b: torch.Tensor, seed: int = 1):
    a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
    h = scan(a, b, method)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(h.shape, generator=g, dtype=torch.float64).to(h.dtype)  # one w per seed
    da, db = torch.autograd.grad((h * w).sum(), (a, b), allow_unused=True, materialize_grads=True)
    return h.detach(), da, db


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("L", [1, 2, 3, 7, 8, 64, 100, 257])
def test_scans_equal_the_loop_in_float64(method, L):
    a, b = _inputs(L)
    want = _grads("sequential", a, b)
    got = _grads(method, a, b)
    for w, g in zip(want, got, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-10)


def test_reference_is_the_recurrence():
    a, b = _inputs(5, shape=(1, 1, 1))
    h = scan_ref(a, b)
    assert h[0, 0] == b[0, 0]  # h_0 = b_0: a_0 is never read
    for t in range(1, 5):
        assert torch.allclose(h[0, t], a[0, t] * h[0, t - 1] + b[0, t])


@pytest.mark.parametrize("method", ["parallel", "log"])
def test_negative_and_zero_coefficients(method):
    """a in (-1, 1) with exact zeros in a and b: both methods give the right h and the
    true gradient (the log scan's autograd used to give 0 at a = 0 and b = 0)."""
    a, b = _inputs(50, low=0.0)
    a = a * 2 - 1
    a[:, 10], b[:, 20], a[:, 30], b[:, 30] = 0.0, 0.0, 0.0, 0.0
    torch.testing.assert_close(scan(a, b, method), scan_ref(a, b), rtol=0, atol=1e-10)
    want, got = _grads("sequential", a, b), _grads(method, a, b)
    for w, g in zip(want, got, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-10)
    assert want[1][:, 10].abs().min() > 0 and want[2][:, 20].abs().min() > 0  # not trivial


def test_log_scan_with_negative_a_has_the_right_gradient():
    a, b = _inputs(40, low=0.3)
    a = a * torch.where(
        torch.rand(a.shape, generator=torch.Generator().manual_seed(3)) < 0.5, -1, 1
    )
    for w, g in zip(_grads("sequential", a, b), _grads("log", a, b), strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-10)


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.double() - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("L", [256, 4096])
def test_float32_precision_against_float64(method, L):
    a, b = _inputs(L, dtype=torch.float32, low=0.9, shape=(1, 4, 4))
    ref = _grads("sequential", a.double(), b.double())
    got = _grads(method, a, b)
    for i, (r, g) in enumerate(zip(ref, got, strict=True)):
        tol = 2e-4 if (method, L, i > 0) == ("log", 4096, True) else 1e-4
        assert _rel(g, r) < tol


def test_log_scan_precision_limit_is_real():
    """With a near 0 the log scan's float32 error grows with |Σ log a| (the stated limit);
    the parallel scan's does not."""
    a, b = _inputs(1024, dtype=torch.float32, low=0.0, shape=(1, 4, 4))
    a = a * 1e-3  # log a ≈ -9 per step: |Σ log a| reaches ~9000
    ref = scan_ref(a.double(), b.double())
    assert _rel(scan(a, b, "parallel"), ref) < 1e-5
    assert _rel(scan(a, b, "log"), ref) > 1e-4


def test_scan_log_takes_log_a_directly():
    a, b = _inputs(30)
    torch.testing.assert_close(scan_log(a.log(), b), scan_ref(a, b), rtol=0, atol=1e-10)


def test_bad_input_is_an_error():
    a, b = _inputs(4)
    with pytest.raises(ValueError, match="one shape"):
        scan(a, b[:, :3])
    with pytest.raises(ValueError, match="unknown scan method"):
        scan(a, b, "magic")
    with pytest.raises(ValueError, match="length dimension"):
        scan(a[0, 0, 0, :1], b[0, 0, 0, :1])


def test_mambapy_pscan_agrees():
    """Integration: the outside reference (mambapy's Blelloch pscan) gives the same h."""
    from mambapy.pscan import pscan  # the test extra installs it: a missing reference fails

    a, b = _inputs(100, dtype=torch.float32, low=0.9)
    torch.testing.assert_close(scan(a, b, "parallel"), pscan(a, b), rtol=1e-5, atol=1e-5)
