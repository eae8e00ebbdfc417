"""The slow tier of tests/integration/test_mamba_run.py: end-to-end runs of minutes or
several processes, or tests of more than a few seconds."""

from __future__ import annotations

from attnlab.experiments.sweep import run_sweep
from tests.helpers import grid_spec
from tests.integration.test_mamba_run import _mamba_pig


def test_discretization_sweep_table(tmp_path):
    """Three discretisations of one tiny model → one sweep table with every row filled."""
    discs = ("zoh_approx", "zoh", "bilinear")
    raws = {d: _mamba_pig(tmp_path, discretization=d) for d in discs}
    spec = grid_spec(tmp_path, raws, metric="final_val_word_accuracy", direction="maximize")
    text = (run_sweep(spec, tmp_path / "sw", echo=lambda *_: None) / "report.md").read_text()
    for disc in discs:
        assert f"| {disc} | 1 |" in text
    assert "test word acc" in text
