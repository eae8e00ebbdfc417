"""The slow tier of tests/integration/test_fast_paths.py: end-to-end runs of minutes or
several processes, or tests of more than a few seconds."""

from __future__ import annotations

import shutil

import pytest

from attnlab.config import validate
from attnlab.runs import train
from tests.helpers import curve, tiny_raw


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="torch.compile's CPU backend needs a C++ compiler (none on PATH)",
)
def test_compiled_training_follows_the_same_curve(tmp_path):
    over = {"train__max_steps": 4, "train__eval_every": 2}
    plain = train(validate(tiny_raw(**over), "tiny"), tmp_path / "plain")
    compiled = train(validate(tiny_raw(train__compile=True, **over), "tiny"), tmp_path / "c")
    assert compiled["compile_s"] > 0
    c = [r for r in curve(tmp_path / "c") if r["split"] != "compile"]
    for r1, r2 in zip(curve(tmp_path / "plain"), c, strict=True):
        assert r1["step"] == r2["step"] and r1["split"] == r2["split"]
        if "loss" in r1:  # the setup record (the precision) has none
            assert r1["loss"] == pytest.approx(r2["loss"], rel=1e-4, abs=1e-5)
    assert compiled["test_loss"] == pytest.approx(plain["test_loss"], rel=1e-4)
