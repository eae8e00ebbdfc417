"""The Mamba mixer: attnlab's fused selective scan vs autograd through the formulas vs
mambapy's block, forward + backward.

    python benchmarks/bench_mamba.py [--repeats 5] [--out FILE.json]

Shapes: the Pig Latin prefix LM's (batch 128 words x 40 characters, d_model 64, d_state
16, expand 2) and a long one (batch 4 x 1024 tokens). Variants, each in its own process
(so peak RSS is its own):
- `fused/sequential`, `fused/parallel`: `Mamba.forward` (one autograd function with a
  hand-written backward, in-place scans);
- `autograd/parallel`: the naive reference, the same formulas through autograd
  (`Mamba.discretize` → `scan(..., "parallel")` → einsum), as a write-up would write it;
- `mambapy`: mambapy's `MambaBlock` (its pscan), when installed (`attnlab[bench]`).
Reports ms per forward + backward (median), tokens/s and the process's peak RSS. Nothing
is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from attnlab.bench.child import peak_memory_mb, run_child

SHAPES = {"piglatin": (128, 40), "long": (4, 1024)}
D, N = 64, 16


def _autograd_forward(m, u: torch.Tensor) -> torch.Tensor:
    """The mixer's formulas through autograd (no fused function)."""
    from attnlab.models.scan import scan

    Bsz, T, _ = u.shape
    x, z = m.in_proj(u).chunk(2, dim=-1)  # (B, T, E)
    x = F.silu(m.conv(x))
    dt_in, B_in, C = m._split(x)
    dt = m._delta(dt_in, (Bsz, T))  # (B, T, E)
    _, a_bar, b_bar = m.discretize(dt, B_in)  # (B, T, E, N)
    h = scan(a_bar, b_bar * x[..., None], "parallel")
    y = torch.einsum("bten,btn->bte", h, C) + m.D * x
    return m.out(y * F.silu(z))


def _build(variant: str):
    if variant == "mambapy":
        from mambapy.mamba import MambaBlock, MambaConfig

        block = MambaBlock(MambaConfig(d_model=D, n_layers=1, d_state=N))
        return block, block
    from attnlab.models.mamba import Mamba

    kind, scan = variant.split("/")
    m = Mamba(D, d_state=N, scan=scan)
    if kind == "autograd":
        return m, lambda u: _autograd_forward(m, u)
    return m, m


def measure(variant: str, shape: str, repeats: int) -> dict:
    """One variant at one shape, in this process."""
    torch.manual_seed(0)
    B, T = SHAPES[shape]
    _, fn = _build(variant)
    u = torch.randn(B, T, D)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        fn(u).sum().backward()
        if i:
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000
    return {
        "variant": variant,
        "shape": shape,
        "batch": B,
        "length": T,
        "ms": round(ms, 1),
        "tokens_per_s": round(B * T / (ms / 1000)),
        "peak_rss_mb": round(peak_memory_mb()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # variant shape, in a child
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.repeats)))
        return
    variants = ["fused/sequential", "fused/parallel", "autograd/parallel"]
    try:
        import mambapy  # noqa: F401

        variants.append("mambapy")
    except ImportError:
        print("mambapy not installed: pip install 'attnlab[bench]'")
    rows = []
    for shape in SHAPES:
        for v in variants:
            res = run_child([__file__, "--one", v, shape, "--repeats", str(args.repeats)], True)
            rows.append(res)
            print(
                f"{shape:9s} {v:18s} {res['ms']:9.1f} ms  {res['tokens_per_s']:>9,} tok/s  "
                f"peak RSS {res['peak_rss_mb']:,} MB"
            )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"threads": torch.get_num_threads(), "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
