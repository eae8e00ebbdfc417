"""Host-memory allocator settings for CPU training.

glibc serves allocations above 32 MiB with fresh `mmap`s and gives them back on free, so
every step of a large-vocabulary model page-faults its logits (hundreds of MB) in again:
measured here, a 412 MB `clone` took 0.4 s against 0.065 s for an in-place add. Turning
off mmap'd allocations keeps freed blocks in the heap for the next step, as PyTorch's
CUDA caching allocator does on GPUs. Measured on a 2-core CPU: 4.2 s → 2.7 s per step of
the quick Attn-Attn (vocabulary 50257, batch 16 x 128). Memory is not returned to the OS
until the process ends, which suits one training run per process.

It changes the whole process, so a library call of `attnlab.train.train` leaves it alone
unless `train.keep_freed_memory` asks for it; the `attnlab` command turns it on for its
own process and the workers it starts (`CLI_ENV`), and a run's summary says which.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_done = False
CLI_ENV = "ATTNLAB_CLI"  # set by the `attnlab` command; its child processes inherit it


def wanted(setting: bool | None) -> bool:
    """`train.keep_freed_memory`, or when unset: whether the `attnlab` command runs us."""
    return setting if setting is not None else os.environ.get(CLI_ENV) == "1"


def active() -> bool:
    """Whether this process kept freed memory (`keep_freed_memory` took effect)."""
    return _done


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed large blocks (Linux only); True when it took effect."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # not glibc
        return False
    _done = ok
    return ok
