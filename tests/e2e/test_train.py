"""The slow tier of tests/integration/test_train.py: end-to-end runs of minutes or
several processes, or tests of more than a few seconds."""

from __future__ import annotations

import json

import pytest

from tests.helpers import curve, tiny_raw
from tests.integration.test_train import repeat_run


@pytest.mark.slow
def test_conv_gives_one_layer_an_induction_mechanism(tmp_path):
    """Acceptance: with the same steps, 1 attention layer + conv far beats 1 attention layer.

    A single attention layer cannot attend "to the token after the earlier copy of the
    current token" (segment lengths vary, so no positional offset does it either); a
    causal conv on the input puts the previous token into each key, which makes it one
    attention step.
    """
    conv = repeat_run(tmp_path, "conv", 400, conv_kernel=3)
    plain = repeat_run(tmp_path, "plain", 400)
    assert conv["final_val_accuracy"] > 0.7
    assert conv["final_val_accuracy"] > plain["final_val_accuracy"] + 0.3


@pytest.mark.slow  # starts several processes
def test_two_process_ddp_equals_one_process(tmp_path):
    """`--devices 2` on CPU (gloo): same global batch, so the same gradient norm before
    clipping at every logged step, and the same losses (the 2-process run also takes the
    chunked loss, whose unembedding gradient DDP must still reduce)."""
    import subprocess
    import sys

    import yaml

    raw = tiny_raw(train__max_steps=6)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw))
    for devices in (1, 2):
        out = tmp_path / f"d{devices}"
        cmd = [
            sys.executable,
            "-m",
            "attnlab",
            "train",
            str(tmp_path / "tiny.yaml"),
            "--devices",
            str(devices),
            "--out",
            str(out),
        ]
        cmd += ["--set", "train.loss_chunk=7"] if devices == 2 else []
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count("run directory:") == 1  # only rank 0 reports
    one, two = curve(tmp_path / "d1"), curve(tmp_path / "d2")
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for r1, r2 in zip(one, two, strict=True):  # the gradient itself, not only the loss
        if r1["split"] == "train":
            assert r1["grad_norm"] == pytest.approx(r2["grad_norm"], rel=1e-5)
        if r1["split"] == "setup":  # the precision record: the same choice, no loss
            assert r1["precision"] == r2["precision"]
            continue
        assert r1["loss"] == pytest.approx(r2["loss"], rel=1e-5)
    assert json.loads((tmp_path / "d2" / "summary.json").read_text())["world_size"] == 2
