"""A measurement in a child process of its own: the helper every benchmark shares.

Each variant runs in a fresh Python process, so its peak memory (the process's maximum
resident set, or CUDA's peak allocation) and its thread count are its own and no variant
warms another's caches or allocator. The child prints one JSON object as its last line
of output; `run_child` returns it (or the error the child died with).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys


def peak_memory_mb(device: str = "cpu") -> float:
    """This process's peak memory in MiB: CUDA's peak allocation on a GPU, else the peak
    resident set size (Linux reports KiB)."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args: list[str], check: bool = False) -> dict:
    """Run `python ARGS` and return the JSON object its last output line holds; a child
    that fails gives `{"error": why}` (`death`: its signal and likely cause, or its exit
    status and last stderr line), or raises with `check`."""
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if done.returncode != 0:
        why = death(done.returncode, done.stderr)
        if check:
            raise RuntimeError(f"benchmark child {args} failed: {why}")
        return {"error": why}
    return json.loads(done.stdout.strip().splitlines()[-1])


def death(returncode: int, stderr: str) -> str:
    """Why a child process ended with `returncode`: the signal that killed it and its
    likely cause (SIGKILL with nothing on stderr: the kernel's out-of-memory killer), or
    its exit status and last stderr line."""
    last = (stderr.strip().splitlines() or [""])[-1]
    if returncode >= 0:
        return f"exit status {returncode}" + (f": {last}" if last else "")
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    cause = {
        "SIGKILL": "most likely the kernel's out-of-memory killer (memory "
        f"{_total_memory_gib():.0f} GiB; `dmesg` shows it)",
        "SIGSEGV": "a crash in native code",
        "SIGTERM": "stopped from outside",
    }.get(name, "")
    return f"killed by {name}" + (f": {cause}" if cause else "") + (f" ({last})" if last else "")


def _total_memory_gib() -> float:
    """The machine's memory in GiB (0 where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0
