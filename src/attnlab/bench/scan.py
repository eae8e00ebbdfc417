"""`attnlab bench scan`: speed and precision of the linear scans, with and without
`torch.compile`, beside mambapy's `pscan` (the outside reference, when installed).

For each length L it draws a (batch, L, channels, state) problem like a trained Mamba's
(a in [0.9, 1), b ~ N(0, 1), float32, a fixed seed), and records per method:
- `ms`: forward + backward time in milliseconds, the median of `repeats` timed calls after
  one warm-up call (a compiled method's first call, its compile time, is `compile_s`);
- `rel_error`: max |h - h64| / max |h64| of the output against the float64 sequential
  scan, and `grad_rel_error` the same for the gradients of a and b (the larger).

Nothing is asserted: the numbers are measured and written (`scan_bench.json`,
`scan_time.png`, `scan_precision.png`). Compiled variants (`METHOD+compile`) run at
`compile_lengths` only (Dynamo specialises on L, so every length is a new compilation of
20-80 s on a 2-core CPU); the sequential loop is not compiled beyond
`max_compile_sequential` (Dynamo unrolls it: compile time grows with L), and the log scan
not run beyond `max_log` (CPU logcumsumexp is slow); skipped cells say why.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from attnlab.models.scan import scan, scan_ref
from attnlab.report.plots import line_plot

LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096)
COMPILE_LENGTHS = (256, 1024, 4096)  # each (method, length) compiles anew: 20-80 s on a CPU


def _methods() -> dict[str, Callable | str]:
    """Method name → scan function, or the reason it is unavailable."""
    out: dict[str, Callable | str] = {
        m: (lambda a, b, m=m: scan(a, b, m)) for m in ("sequential", "parallel", "log")
    }
    try:
        from mambapy.pscan import pscan

        out["mambapy"] = pscan
    except ImportError:
        out["mambapy"] = "not installed (pip install 'attnlab[bench]')"
    return out


def _problem(L: int, batch: int, channels: int, state: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, L, channels, state, generator=g) * 0.1 + 0.9  # (B, L, D, N)
    b = torch.randn(batch, L, channels, state, generator=g)
    w = torch.randn(batch, L, channels, state, generator=g)  # the loss is Σ w·h
    return a, b, w


def _run(fn: Callable, a: torch.Tensor, b: torch.Tensor, w: torch.Tensor):
    """h, dL/da, dL/db for L = Σ w·h."""
    a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
    h = fn(a, b)
    (h * w).sum().backward()
    return h.detach(), a.grad, b.grad


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.double() - ref).abs().max() / ref.abs().max())


def _measure(fn: Callable, a, b, w, ref, repeats: int) -> dict:
    t0 = time.perf_counter()
    h, da, db = _run(fn, a, b, w)  # warm-up (and compilation)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _run(fn, a, b, w)
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000
    return {
        "ms": round(ms, 3),
        "first_call_s": round(first, 3),
        "rel_error": _rel(h, ref[0]),
        "grad_rel_error": max(_rel(da, ref[1]), _rel(db, ref[2])),
    }


def bench_scan(
    out: Path,
    lengths: tuple[int, ...] = LENGTHS,
    batch: int = 2,
    channels: int = 64,
    state: int = 16,
    repeats: int = 3,
    compile: bool = True,
    compile_lengths: tuple[int, ...] = COMPILE_LENGTHS,
    max_compile_sequential: int = 256,
    max_log: int = 4096,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> dict:
    """Measure every method at every length; write JSON and two plots into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    methods = _methods()
    result: dict = {
        "shape": {"batch": batch, "channels": channels, "state": state},
        "dtype": "float32",
        "repeats": repeats,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "lengths": list(lengths),
        "compile_lengths": list(compile_lengths) if compile else [],
        "results": {},
    }
    compiled: dict[str, Callable] = {}
    if compile:
        for name, fn in methods.items():
            if callable(fn):
                compiled[f"{name}+compile"] = torch.compile(fn, dynamic=False)
    for L in lengths:
        a, b, w = _problem(L, batch, channels, state, seed)
        ref = _run(scan_ref, a.double(), b.double(), w.double())
        row: dict = {}
        for name, fn in {**methods, **compiled}.items():
            base = name.removesuffix("+compile")
            if isinstance(fn, str):
                row[name] = {"skipped": fn}
            elif name.endswith("+compile") and L not in compile_lengths:
                continue
            elif base == "log" and max_log < L:
                row[name] = {"skipped": f"L > max_log ({max_log})"}
            elif name == "sequential+compile" and max_compile_sequential < L:
                row[name] = {"skipped": f"unrolls {L} steps (> {max_compile_sequential})"}
            else:
                try:
                    row[name] = _measure(fn, a, b, w, ref, repeats)
                except Exception as e:  # a compile failure is a result, not a crash
                    row[name] = {"skipped": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
                if name.endswith("+compile") and "ms" in row[name]:
                    row[name]["compile_s"] = row[name].pop("first_call_s")
            cell = row[name]
            shown = f"{cell['ms']:.1f} ms, err {cell['rel_error']:.1e}" if "ms" in cell else "-"
            echo(f"L={L:5d} {name:20s} {shown}")
        result["results"][str(L)] = row
    (out / "scan_bench.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    _plots(result, out)
    return result


def _series(result: dict, key: str) -> dict[str, tuple[list, list]]:
    names = {n for row in result["results"].values() for n in row}
    series = {}
    for name in sorted(names):
        xs, ys = [], []
        for L, row in result["results"].items():
            if key in row.get(name, {}):
                xs.append(int(L))
                ys.append(max(row[name][key], 1e-12))
        if xs:
            series[name] = (xs, ys)
    return series


def _plots(result: dict, out: Path) -> None:
    s = result["shape"]
    shape = f"batch {s['batch']}, {s['channels']} channels x state {s['state']}, float32"
    line_plot(
        _series(result, "ms"),
        "sequence length L",
        "forward + backward (ms)",
        f"linear scan time ({shape})",
        out / "scan_time.png",
        logy=True,
        logx=True,
    )
    line_plot(
        _series(result, "rel_error"),
        "sequence length L",
        "max |h - h64| / max |h64|",
        f"linear scan error vs float64 sequential ({shape})",
        out / "scan_precision.png",
        logy=True,
        logx=True,
    )
