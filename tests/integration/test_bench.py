"""`attnlab bench train`: the FLOP count, which configs the naive model stands in for, and
one small end-to-end bench (each variant in its own process)."""

from __future__ import annotations

import pytest
import torch

from attnlab import models
from attnlab.bench.train import flops_per_token, naive_fits
from attnlab.config import validate
from tests.helpers import tiny_raw


def test_flops_per_token_counts_matmul_weights_and_attention():
    cfg = validate(tiny_raw(), "tiny")
    model = models.build(cfg.model, 16)  # d 32, 2 layers, vocab 16 padded to 64
    D, L, Vp, T = 32, 2, 64, 24
    n = L * 4 * D * D + Vp * D  # qkv + out per layer, the unembedding; no embeddings
    got = flops_per_token(model, T)
    assert got["matmul_params"] == n and got["attention_layers"] == L
    assert got["flops_per_token"] == 6 * n + 12 * L * D * T


def test_naive_reference_only_for_the_models_it_implements():
    assert naive_fits(validate(tiny_raw(), "t")) is None
    conv = tiny_raw(model__n_layers=1, model__mixer={"n_heads": 4, "conv_kernel": 3})
    assert naive_fits(validate(conv, "t")) is None
    mlp = tiny_raw(model__mlp=True)
    assert "MLP" in naive_fits(validate(mlp, "t"))


@pytest.mark.parametrize(
    ("variant", "precision", "chunk", "tied"),
    [
        ("32-true", "32-true", None, False),
        ("bf16-mixed", "bf16-mixed", None, False),
        ("chunked", "32-true", 1024, False),
        ("bf16-chunked", "bf16-mixed", 1024, False),
        ("32-tied", "32-true", None, True),
        ("chunked-tied", "32-true", 1024, True),
        ("bf16-chunked-tied", "bf16-mixed", 1024, True),
        ("compile", "32-true", None, False),
    ],
)
def test_each_variant_is_the_config_it_names(variant, precision, chunk, tied):
    from attnlab.bench.train import _variant_config

    cfg = _variant_config(validate(tiny_raw(), "tiny"), variant, 5)
    assert cfg.train.precision == precision and cfg.train.loss_chunk == chunk
    assert cfg.model.tie_embeddings is tied and cfg.train.max_steps == 5


def test_rounds_take_each_variants_median_round():
    from attnlab.bench.train import _merge_rounds

    rounds = [
        {"variant": "32-true", "step_s": s, "data_share": d, "peak_memory_mb": m, "losses": [loss]}
        for s, d, m, loss in ((3.0, 0.1, 100, 1.5), (1.0, 0.3, 300, 1.6), (2.0, 0.2, 200, 1.7))
    ]
    merged = _merge_rounds(rounds)
    assert merged["step_s"] == 2.0 and merged["data_share"] == 0.2
    assert merged["peak_memory_mb"] == 300 and merged["losses"] == [1.5]
    assert merged["round_step_s"] == [3.0, 1.0, 2.0]
    failed = [{"variant": "32-true", "error": "killed by SIGKILL"}, *rounds[:1]]
    assert _merge_rounds(failed)["step_s"] == 3.0  # a failed round does not count
    assert _merge_rounds(failed[:1]) == failed[0]


def test_bench_data_and_probe_on_the_tiny_task(tmp_path):
    from attnlab.bench.parts import bench_data, bench_probe

    cfg = validate(tiny_raw(), "tiny")
    data = bench_data(cfg, tmp_path, batches=3, echo=lambda _: None)
    assert data["tokens_per_batch"] == 8 * 24 and data["tokens_per_s"] > 0
    probe = bench_probe(cfg, tmp_path, repeats=1, echo=lambda _: None)
    assert set(probe["seconds"]) == {
        "icl_score",
        "head_scores",
        "head_scores_no_copying",
        "head_scores_last_layer",
    }
    assert (tmp_path / "bench_data.json").is_file() and (tmp_path / "bench_probe.json").is_file()


def test_loop_batch_equals_the_fancy_index():
    import numpy as np

    from attnlab.bench.parts import loop_batch
    from attnlab.data.splits import StreamSplit

    tokens = np.arange(100, dtype=np.uint16)
    split = StreamSplit(tokens, 9)
    ids = np.array([3, 0, 7])
    got, ref = loop_batch(tokens, ids * 9, 9), split.get(ids)
    assert (got[:, :-1] == ref.x).all() and (got[:, 1:] == ref.y).all()


def test_a_child_that_dies_says_how():
    from attnlab.bench.child import death, run_child

    assert death(-9, "").startswith("killed by SIGKILL: most likely the kernel's out-of-memory")
    assert death(1, "Traceback\nValueError: bad") == "exit status 1: ValueError: bad"
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert "SIGKILL" in run_child(["-c", code])["error"]


def test_the_gpt_reference_learns_and_fits_only_its_models():
    import torch

    from attnlab.bench.gpt_ref import GPTRef, gpt_optimizer, gpt_step
    from attnlab.bench.train import gpt_fits

    assert gpt_fits(validate(tiny_raw(), "t")) is None
    conv = tiny_raw(model__mixer={"n_heads": 4, "conv_kernel": 3})
    assert "conv" in gpt_fits(validate(conv, "t"))
    torch.manual_seed(0)
    model = GPTRef(16, 32, 4, 2, 24, mlp=True)
    assert model.lm_head.weight is model.wte.weight and model.wte.weight.shape[0] == 64
    opt = gpt_optimizer(model, 3e-3, 0.01, (0.9, 0.95))
    x = torch.randint(0, 16, (8, 24))
    y = torch.roll(x, -1, dims=1)
    losses = [gpt_step(model, opt, x, y) for _ in range(30)]
    assert losses[-1] < losses[0] - 0.5  # it trains


@pytest.mark.parametrize("native, bf16_n", [(True, 2048), (False, 512), (None, 2048)])
def test_the_bf16_peak_is_measured_small_where_the_cpu_emulates_bf16(monkeypatch, native, bf16_n):
    """An emulated bf16 matmul of 2,048 took minutes a round (CI's bench tests 1,008 s and
    557 s on a CPU without bf16 units); where bf16 is emulated the peak measures n = 512."""
    import attnlab.bench.train as bench

    sizes = {}
    monkeypatch.setattr(bench, "cpu_has_bf16", lambda: native)
    monkeypatch.setattr(bench, "matmul_peak", lambda d, dtype, n: sizes.setdefault(dtype, n))
    peak = bench.child({"what": "peak", "config": tiny_raw()})
    assert peak["n"] == 2048 and peak["bf16_n"] == bf16_n
    assert sizes == {torch.float32: 2048, torch.bfloat16: bf16_n}
