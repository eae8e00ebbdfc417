"""On-disk cache of token arrays, keyed by content hash and tokenizer fingerprint.

Arrays are stored as `.npy` and opened memory-mapped, so a second run neither tokenizes
again nor holds a copy of the corpus in memory. Writes go to a temporary file that is
renamed into place, so a killed run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_root(cache_dir: str | None) -> Path:
    """`cache_dir`, else `$ATTNLAB_CACHE`, else `~/.cache/attnlab`."""
    root = cache_dir or os.environ.get("ATTNLAB_CACHE") or "~/.cache/attnlab"
    return Path(root).expanduser()


def content_hash(*parts: str | bytes) -> str:
    """A short sha256 of several strings (the cache key's content part)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8") if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:20]


def cached_array(root: Path, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
    """Load `root/key.npy` memory-mapped, or compute it with `make` and store it first."""
    path = root / f"{key}.npy"
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        arr = np.ascontiguousarray(make())
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def smallest_uint(max_value: int) -> type:
    """The narrowest unsigned dtype that holds ids up to `max_value`."""
    return np.uint16 if max_value < 2**16 else np.uint32
