"""Pinned numbers: a silent change in a probe's or a scan's arithmetic fails here.

Values were computed once (2026-12-01, torch 2.13.0, CPU) from a fixed-seed tiny model
whose attention is sharpened (query/key/value weights x 25, so no score sits at its
uniform baseline) and from a fixed scan problem, as TransformerLens pins its head
detector's scores. A deliberate change of a definition updates them, with a LOG entry.
"""

from __future__ import annotations

import pytest
import torch

from attnlab import models
from attnlab.config import validate
from attnlab.models.scan import METHODS, scan
from attnlab.probes.heads import head_scores
from attnlab.probes.sequences import repeated_sequences
from tests.helpers import tiny_raw

HEADS = {
    "previous_token": [
        [0.071945, 0.069353, 0.080016, 0.060789],
        [0.03674, 0.076771, 0.083766, 0.05238],
    ],
    "duplicate_token": [
        [0.097193, 0.139633, 0.068735, 0.172897],
        [0.078637, 0.085428, 0.112655, 0.106247],
    ],
    "induction": [
        [0.071009, 0.13941, 0.049306, 0.099555],
        [0.121338, 0.105813, 0.089981, 0.113669],
    ],
    "copying": [[0.222222, 0.31746, 0.269841, 0.492063], [0.301587, 0.428571, 0.492063, 0.349206]],
    "ov_copying": [
        [0.075595, -0.200539, 0.028963, -0.141652],
        [0.136274, -0.068431, -0.01447, -0.304865],
    ],
}
SCAN_LAST = [0.8226368526, -2.2756002766, -1.3667412606, -0.9531324785]


def test_head_scores_of_a_fixed_tiny_model():
    torch.manual_seed(0)
    model = models.build(validate(tiny_raw()).model, 16)
    with torch.no_grad():
        for block in model.blocks:
            block.mixer.qkv.weight.mul_(25.0)
    res = head_scores(model, repeated_sequences(16, 8, 24, seed=0))
    for name, want in HEADS.items():
        assert res["scores"][name] == [pytest.approx(row, abs=2e-5) for row in want], name
    assert res["repeat_loss"] == pytest.approx(2.769052, abs=2e-5)
    assert res["max_induction"] == {
        "score": pytest.approx(0.13941, abs=2e-5),
        "layer": 0,
        "head": 1,
    }


@pytest.mark.parametrize("method", METHODS)
def test_scan_of_a_fixed_problem(method):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 32, 2, 2, generator=g, dtype=torch.float64) * 0.2 + 0.8
    b = torch.randn(1, 32, 2, 2, generator=g, dtype=torch.float64)
    h = scan(a, b, method)
    assert h[0, -1].flatten().tolist() == pytest.approx(SCAN_LAST, abs=1e-9)
