"""What the repository may hold: no file over 512 KB under docs/ (committed results are
summaries, figures and compact probe data, not raw matrices), no weights or optimizer
state anywhere, and JSON written compactly (a matrix on one line, or as float16 bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attnlab.run_dir import decode_matrix, dumps, encode_matrix
from tests.helpers import ROOT, tracked

MAX_DOC_BYTES = 512 * 1024
WEIGHTS = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".npz")


def _tracked() -> list[Path]:
    return [ROOT / p for p in sorted(tracked())]


def test_no_file_under_docs_is_over_512_kb():
    big = [
        f"{p.relative_to(ROOT)} ({p.stat().st_size:,} bytes)"
        for p in _tracked()
        if p.is_file()
        and "docs" in p.relative_to(ROOT).parts[:1]
        and p.stat().st_size > MAX_DOC_BYTES
    ]
    assert not big, big


def test_no_weights_are_tracked():
    weights = [str(p.relative_to(ROOT)) for p in _tracked() if p.name.endswith(WEIGHTS)]
    assert not weights, weights


def test_json_keeps_lists_inline_and_matrices_compact():
    obj = {"a": [[0.5, 1.0], [2.0, 3.0]], "b": {"c": [1, 2, 3]}, "d": [{"e": 1}]}
    text = dumps(obj, 1)
    assert json.loads(text) == obj
    assert '"a": [[0.5, 1.0], [2.0, 3.0]]' in text and '"c": [1, 2, 3]' in text
    m = np.linspace(-1, 1, 256 * 256).reshape(256, 256)
    enc = encode_matrix(m)
    assert len(json.dumps(enc)) < 200_000  # 65,536 numbers in 2 bytes each, base64
    np.testing.assert_allclose(decode_matrix(enc), m, atol=1e-3)
    np.testing.assert_array_equal(decode_matrix([[1, 2]]), np.array([[1, 2]], dtype=np.float32))
