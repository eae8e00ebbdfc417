"""A measurement in a child process of its own: the helper every benchmark shares.

Each variant runs in a fresh Python process, so its peak memory (the process's maximum
resident set, or CUDA's peak allocation) and its thread count are its own and no variant
warms another's caches or allocator. The child prints one JSON object as its last line
of output; `run_child` returns it (or the error the child died with).
"""

from __future__ import annotations

import json
import resource
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
    that fails gives `{"error": its last stderr line}` (or raises with `check`)."""
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if done.returncode != 0:
        if check:
            raise RuntimeError(f"benchmark child {args} failed: {done.stderr.strip()[-500:]}")
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])
