"""The slow tier of tests/integration/test_bench.py: end-to-end runs of minutes or
several processes, or tests of more than a few seconds."""

from __future__ import annotations

import json

import pytest

from attnlab.bench.train import bench_train
from attnlab.config import validate
from tests.helpers import run_cli, tiny_raw


@pytest.mark.slow  # starts several processes
def test_bench_train_measures_each_variant(tmp_path):
    cfg = validate(tiny_raw(), "tiny")
    variants = ["naive", "32-true", "chunked", "16-mixed"]
    report = bench_train(cfg, tmp_path, variants, steps=2, warmup=1, echo=lambda _: None)
    assert "bf16:" in (tmp_path / "bench_train.md").read_text()  # the CPU's bf16 capability
    saved = json.loads((tmp_path / "bench_train.json").read_text())
    assert saved["results"] == report["results"]
    assert report["matmul_peak"]["float32_flops"] > 0
    by = {r["variant"]: r for r in report["results"]}
    assert "CUDA" in by["16-mixed"]["skipped"]
    for v in ("naive", "32-true", "chunked"):
        r = by[v]
        assert r["tokens_per_s"] > 0 and r["peak_memory_mb"] > 0 and 0 <= r["data_share"] < 1
        assert len(r["losses"]) == 3 and r["share_of_peak"] > 0
    assert by["chunked"]["loss_chunk"] == 1024 and by["32-true"]["probe_s"] > 0
    # same seed, same data, same model: the chunked loss follows float32's
    assert abs(by["chunked"]["final_loss"] / by["32-true"]["final_loss"] - 1) < 1e-4
    assert by["32-true"]["speed_vs_naive"] > 0
    assert "| chunked |" in (tmp_path / "bench_train.md").read_text()


@pytest.mark.slow  # starts several processes
def test_bench_train_runs_variants_in_turn_for_rounds(tmp_path):
    cfg = validate(tiny_raw(), "tiny")
    lines: list[str] = []
    report = bench_train(cfg, tmp_path, ["32-true", "naive"], 1, 0, echo=lines.append, rounds=2)
    order = [line.split(" ")[0] for line in lines if line.endswith("…")]
    assert order == ["matmul", "32-true", "naive", "matmul", "32-true", "naive"]
    assert report["rounds"] == 2
    assert all(len(r["round_step_s"]) == 2 for r in report["results"])


def test_bench_generate_cli(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bg"
    args = ["bench", "generate", "--batch", "2", "--prompt", "3", "--new", "5", "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    res = json.loads((out / "bench_generate.json").read_text())
    assert len(res["results"]) == 4 and all(r["tokens_s"] > 0 for r in res["results"])
    assert all("early_ms" in r for r in res["results"] if r["cache"])
    assert "speed-up" in (out / "bench_generate.md").read_text()
