"""`train.precision: auto`: which precision a run trains in, and why.

- CUDA: `16-mixed` (the write-ups' AMP).
- CPU: `bf16-mixed` when bf16 makes this run's own step fast, else `32-true`. The CPU
  flags (`avx512_bf16`, `amx_bf16`) only say bf16 is native; two short measured checks
  decide. The machine's: an (n, n) @ (n, n) matmul in bf16 against float32 with the run's
  threads, at least `FAST` times faster. Then the model's (`step_check`): the run's
  forward and backward on a batch of its own shape (up to `CHECK_TOKENS` tokens), float32
  against bf16 autocast, at least `STEP_FAST` times faster — small models lose to
  autocast's casts (a 2-layer d64 model on this 2-core CPU: 0.30 s float32 against
  0.57 s bf16 a step, docs/LOG.md) even where large matmuls gain 3-8x. Both results are
  cached in `$ATTNLAB_CACHE/precision.json` (`~/.cache/attnlab`): per machine (CPU model,
  torch version, threads), and per machine and model shape, so the runs of a sweep make
  the same choice without measuring again. Multi-process (DDP) runs skip the model's
  check, so their processes cannot disagree.

`ATTNLAB_AUTO_PRECISION=32-true` (or `bf16-mixed`) fixes what `auto` means on a CPU
instead of measuring: the test suite and `attnlab reproduce` (the write-ups' figures are
float32) set it to `32-true`.

The choice is written to the run's `metrics.jsonl` (a `setup` record at step 0) and its
`summary.json` (`precision`, `precision_choice`), and printed. A resumed run keeps the
precision it started with (a run from before `auto` measured anything resumes in float32,
which `auto` then meant).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from attnlab.data.cache import cache_root
from attnlab.errors import ConfigError

FAST = 1.5  # bf16 matmul speed-up over float32 that makes `auto` pick bf16-mixed on a CPU
STEP_FAST = 1.2  # and the speed-up of the model's own forward and backward it needs too
CHECK_TOKENS = 2048  # tokens in the model check's batch (fewer when the run's batch is smaller)
CHECK_N = 1024  # the check's matmul size (a d512 model's feed-forward is this large)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
AUTO_ENV = "ATTNLAB_AUTO_PRECISION"  # 32-true | bf16-mixed: auto on a CPU without measuring


def cpu_flags() -> set[str]:
    """This CPU's feature flags (Linux `/proc/cpuinfo`; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def speed_flags() -> list[str]:
    """The CPU flags that matter for the benchmarks' speeds, in a fixed order."""
    have = cpu_flags()
    return [f for f in SPEED_FLAGS if f in have]


def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo`), else `platform.processor()`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_bf16() -> bool | None:
    """Whether this CPU computes bf16 natively (avx512_bf16 or AMX); None if unknown."""
    flags = cpu_flags()
    return bool(flags & set(BF16_FLAGS)) if flags else None


def matmul_peak(device: str, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """Median FLOP/s of an (n, n) @ (n, n) matmul on `device` in `dtype`."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    times = []
    for i in range(repeats + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def _cache_file() -> Path:
    return cache_root(None) / "precision.json"


def _machine_key() -> str:
    return f"{cpu_model()}|torch {torch.__version__}|{torch.get_num_threads()} threads"


def _cached(key: str, measure: Callable[[], dict]) -> dict:
    """`measure()`, or its earlier result under `key` in the precision cache."""
    path = _cache_file()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return cached[key]
    cached[key] = result = measure()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cached, indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache: measure again next time
    return result


def bf16_check() -> dict:
    """The measured bf16-vs-float32 matmul check on this CPU (cached per machine): its
    GFLOP/s, speed-up, flags and verdict `fast`."""

    def measure() -> dict:
        flags = sorted(cpu_flags() & set(BF16_FLAGS))
        f32 = matmul_peak("cpu", torch.float32, CHECK_N)
        bf16 = matmul_peak("cpu", torch.bfloat16, CHECK_N)
        return {
            "float32_gflops": round(f32 / 1e9, 1),
            "bf16_gflops": round(bf16 / 1e9, 1),
            "speedup": round(bf16 / f32, 2),
            "flags": flags,
            "fast": bool(flags) and bf16 / f32 >= FAST,
        }

    return _cached(_machine_key(), measure)


def step_check(signature: str, fwd_bwd: Callable[[bool], None], repeats: int = 2) -> dict:
    """The model's check (cached per machine and `signature`, the model's shape): the
    fastest of `repeats` calls of `fwd_bwd(bf16)` after one warm-up, in float32 and under
    bf16 autocast; its seconds, speed-up and verdict `fast`. torch's random state is
    restored afterwards (dropout draws), so the run's own draws do not depend on whether
    the check ran or was read back."""

    def measure() -> dict:
        best = {}
        with torch.random.fork_rng(devices=[]):
            for bf16 in (False, True):
                fwd_bwd(bf16)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    fwd_bwd(bf16)
                    times.append(time.perf_counter() - t0)
                best[bf16] = min(times)
        speedup = best[False] / best[True]
        return {
            "float32_s": round(best[False], 4),
            "bf16_s": round(best[True], 4),
            "speedup": round(speedup, 2),
            "fast": speedup >= STEP_FAST,
        }

    digest = hashlib.sha1(signature.encode()).hexdigest()[:16]
    return _cached(f"{_machine_key()}|model {digest}", measure)


def choose(
    precision: str, device: str, step: tuple[str, Callable[[bool], None]] | None = None
) -> tuple[str, str]:
    """(the precision to train in, why) for the config's `precision` on `device`; `step`
    = (signature, fwd_bwd) of the run's model for `step_check` (None: the machine's check
    alone)."""
    if precision != "auto":
        return precision, "set in the config"
    if device == "cuda":
        return "16-mixed", "auto on CUDA: fp16 mixed precision (the write-ups' AMP)"
    if device != "cpu":
        return "32-true", f"auto on {device}: float32"
    forced = os.environ.get(AUTO_ENV)
    if forced:
        if forced not in ("32-true", "bf16-mixed"):
            raise ConfigError(f"{AUTO_ENV}={forced!r}: use 32-true or bf16-mixed")
        return forced, f"auto on this CPU, fixed by {AUTO_ENV}={forced}"
    check = bf16_check()
    numbers = (
        f"bf16 matmul {check['bf16_gflops']:,} GFLOP/s against float32 "
        f"{check['float32_gflops']:,} ({check['speedup']}x; flags: "
        f"{', '.join(check['flags']) or 'no avx512_bf16 / amx_bf16'})"
    )
    if not check["fast"]:
        return "32-true", f"auto on this CPU: {numbers} < {FAST}x or no native bf16"
    if step is None:
        return "bf16-mixed", f"auto on this CPU: {numbers} >= {FAST}x"
    s = step_check(*step)
    model = (
        f"this model's forward and backward {s['float32_s']:.3g} s in float32, "
        f"{s['bf16_s']:.3g} s in bf16 ({s['speedup']}x)"
    )
    if s["fast"]:
        return "bf16-mixed", f"auto on this CPU: {numbers} >= {FAST}x; {model} >= {STEP_FAST}x"
    return "32-true", f"auto on this CPU: {numbers}, but {model} < {STEP_FAST}x"


def announce(precision: str, reason: str) -> None:
    """Print the run's precision and why (stderr, beside Fabric's own lines)."""
    print(f"precision: {precision} ({reason})", file=sys.stderr)


def warn_emulated_bf16(precision: str, device: str) -> None:
    """Warn when bf16-mixed is asked for on a CPU without native bf16."""
    if precision == "bf16-mixed" and device == "cpu" and cpu_has_bf16() is False:
        warnings.warn(
            "bf16-mixed on a CPU without avx512_bf16 / AMX: bf16 matmuls are emulated and "
            "were measured 2-3x slower than float32 (see `attnlab bench train`)",
            stacklevel=3,
        )
