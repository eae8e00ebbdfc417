"""`attnlab playground`: copying, averaging and a changing key, through the models'
attention function."""

from __future__ import annotations

import itertools
import math

import torch

from attnlab.experiments.playground import KEYS, VALUES, attend, run_playground


def test_copying_averaging_and_key_change(tmp_path):
    res = run_playground(tmp_path, echo=lambda *_: None)
    w = torch.tensor(res["copying"]["weights"])
    assert w[2] > 0.9999 and torch.allclose(
        torch.tensor(res["copying"]["output"]), VALUES[2], atol=1e-3
    )
    w = torch.tensor(res["averaging"]["weights"])
    assert torch.allclose(w[:2], torch.tensor([0.5, 0.5]), atol=1e-6)
    assert torch.allclose(torch.tensor(res["averaging"]["output"]), VALUES[:2].mean(0), atol=1e-5)
    rows = res["key_change"]
    w2 = [r["weights"][1] for r in rows]
    assert all(b > a for a, b in itertools.pairwise(w2))  # monotone in |k2|
    for r in rows:  # the logistic law: w2 = σ(q·(k2 − k1)/√E) = σ(50 (s − 1))
        assert math.isclose(
            r["weights"][1], 1 / (1 + math.exp(-50 * (r["scale"] - 1))), abs_tol=1e-5
        )
    for f in ("copying.png", "averaging.png", "key_change.png", "playground.json"):
        assert (tmp_path / f).is_file()


def test_attend_matches_softmax_by_hand():
    q = torch.tensor([1.0, -2.0, 0.5, 3.0])
    out, w = attend(q, KEYS, VALUES)
    want = torch.softmax(KEYS @ q / 2.0, dim=0)
    assert torch.allclose(w, want, atol=1e-6) and torch.allclose(out, want @ VALUES, atol=1e-5)
