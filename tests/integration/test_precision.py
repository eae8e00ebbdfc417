"""`train.precision: auto`: a measured bf16 check cached per machine decides a CPU run's
precision; the choice is printed, logged and kept on resume."""

from __future__ import annotations

import json
import time

import pytest
import torch

from attnlab.errors import ConfigError
from attnlab.run_dir import RunDir, read_metrics
from attnlab.train import precision as prec
from tests.helpers import run_cli, tiny_file


@pytest.fixture(autouse=True)
def _measure(monkeypatch):
    """These tests measure (the suite's conftest fixes auto at float32)."""
    monkeypatch.delenv("ATTNLAB_AUTO_PRECISION", raising=False)


def _fake_cpu(
    monkeypatch, flags: set[str], f32: float, bf16: float, step_speedup: float = 2.0
) -> list:
    """This CPU's flags and matmul speeds, and the model check's bf16 speed-up."""
    calls = []

    def peak(device, dtype, n, repeats=5):
        calls.append(dtype)
        return bf16 if "bfloat16" in str(dtype) else f32

    def step(signature, fwd_bwd, repeats=2):
        return {"float32_s": 1.0, "bf16_s": 1 / step_speedup, "speedup": step_speedup,
                "fast": step_speedup >= prec.STEP_FAST}  # fmt: skip

    monkeypatch.setattr(prec, "cpu_flags", lambda: flags)
    monkeypatch.setattr(prec, "matmul_peak", peak)
    monkeypatch.setattr(prec, "step_check", step)
    return calls


def test_auto_picks_bf16_where_the_measured_check_says_fast(monkeypatch):
    _fake_cpu(monkeypatch, {"amx_bf16", "avx512_bf16"}, 100e9, 1000e9)
    chosen, why = prec.choose("auto", "cpu")
    assert chosen == "bf16-mixed" and "10.0x" in why and "amx_bf16" in why


def test_auto_keeps_float32_where_bf16_is_slow_or_emulated(monkeypatch):
    _fake_cpu(monkeypatch, {"avx512_bf16"}, 100e9, 120e9)  # native but only 1.2x
    assert prec.choose("auto", "cpu")[0] == "32-true"
    monkeypatch.setenv("ATTNLAB_CACHE", str(prec._cache_file().parent / "other"))
    _fake_cpu(monkeypatch, set(), 100e9, 300e9)  # no flags: a flag list is needed too
    assert prec.choose("auto", "cpu")[0] == "32-true"


def test_auto_keeps_float32_where_the_models_own_step_is_slow_in_bf16(monkeypatch):
    """Large matmuls gain, but a small model's step loses to autocast's casts."""
    _fake_cpu(monkeypatch, {"amx_bf16"}, 100e9, 800e9, step_speedup=0.53)
    chosen, why = prec.choose("auto", "cpu", ("model", lambda bf16: None))
    assert chosen == "32-true" and "8.0x" in why and "(0.53x) < 1.2x" in why
    _fake_cpu(monkeypatch, {"amx_bf16"}, 100e9, 800e9, step_speedup=2.5)
    chosen, why = prec.choose("auto", "cpu", ("model", lambda bf16: None))
    assert chosen == "bf16-mixed" and "(2.5x) >= 1.2x" in why


def test_the_model_check_is_cached_per_shape_and_restores_the_random_state():
    calls = []

    def fwd_bwd(bf16: bool) -> None:
        calls.append(bf16)
        torch.rand(3)  # dropout draws
        time.sleep(0.002 if bf16 else 0.004)

    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = prec.step_check("d64 (32, 64)", fwd_bwd)
    assert torch.equal(torch.get_rng_state(), before)
    assert calls == [False] * 3 + [True] * 3  # one warm-up and two timed calls each
    assert first["float32_s"] > first["bf16_s"] and first["fast"] == (first["speedup"] >= 1.2)
    assert prec.step_check("d64 (32, 64)", fwd_bwd) == first and len(calls) == 6
    prec.step_check("d64 (16, 64)", fwd_bwd)  # another shape is measured
    assert len(calls) == 12


def test_the_model_check_runs_the_runs_own_loss_path(tiny_cfg):
    """`precision_probe` runs forward and backward in both precisions and leaves no
    gradients behind."""
    from attnlab import data as data_mod
    from attnlab import models
    from attnlab.tasks import task_for
    from attnlab.train.loop import precision_probe
    from attnlab.train.run import resolve

    cfg = tiny_cfg()
    ds = data_mod.build(cfg.data)
    cfg = resolve(cfg, ds, task_for(cfg).model_fields(cfg, ds))
    model = models.build(cfg.model)
    signature, fwd_bwd = precision_probe(model, ds, cfg.train, cfg.model.model_dump_json(), 64)
    for bf16 in (False, True):
        fwd_bwd(bf16)
        assert all(p.grad is None for p in model.parameters())
    assert cfg.model.model_dump_json() in signature and f"{64 // ds.seq_len}," in signature


def test_the_check_is_cached_per_machine(monkeypatch):
    calls = _fake_cpu(monkeypatch, {"amx_bf16"}, 100e9, 1000e9)
    first = prec.bf16_check()
    assert len(calls) == 2
    assert prec.bf16_check() == first and len(calls) == 2  # read back, not measured
    cached = json.loads(prec._cache_file().read_text())
    assert list(cached.values()) == [first]


def test_explicit_and_cuda_choices():
    assert prec.choose("32-true", "cpu") == ("32-true", "set in the config")
    assert prec.choose("auto", "cuda")[0] == "16-mixed"


def test_the_environment_can_fix_auto(monkeypatch):
    calls = _fake_cpu(monkeypatch, {"amx_bf16"}, 100e9, 1000e9)
    monkeypatch.setenv("ATTNLAB_AUTO_PRECISION", "32-true")
    chosen, why = prec.choose("auto", "cpu")
    assert chosen == "32-true" and "ATTNLAB_AUTO_PRECISION" in why and not calls
    monkeypatch.setenv("ATTNLAB_AUTO_PRECISION", "fp8")
    with pytest.raises(ConfigError, match="32-true or bf16-mixed"):
        prec.choose("auto", "cpu")


@pytest.mark.parametrize("fast", [True, False])
def test_a_run_shows_and_keeps_its_choice(tmp_path, monkeypatch, capsys, fast):
    if fast:
        _fake_cpu(monkeypatch, {"amx_bf16"}, 100e9, 1000e9)
    else:
        _fake_cpu(monkeypatch, {"avx2"}, 100e9, 50e9)
    want = "bf16-mixed" if fast else "32-true"
    run = tmp_path / "run"
    args = ["train", str(tiny_file(tmp_path)), "--out", str(run), "--stop-after", "4"]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, out + err
    assert f"precision: {want} (auto on this CPU" in err
    setup = [r for r in read_metrics(RunDir(run).metrics) if r["split"] == "setup"]
    assert [r["precision"] for r in setup] == [want]
    # the machine's answer changes; the resumed run keeps the precision it started with
    _fake_cpu(monkeypatch, {"amx_bf16"}, 100e9, 1000e9 if not fast else 10e9)
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path / "new-cache"))
    code, out, err = run_cli(["train", "--resume", str(run)], monkeypatch, capsys)
    assert code == 0, out + err
    summary = RunDir(run).read_summary()
    assert summary["precision"] == want
    assert summary["precision_choice"].startswith("kept from the run's start: auto on this CPU")


def test_a_run_from_before_auto_measured_resumes_in_float32(tmp_path, monkeypatch, capsys):
    _fake_cpu(monkeypatch, {"amx_bf16"}, 100e9, 1000e9)
    run = tmp_path / "run"
    args = ["train", str(tiny_file(tmp_path)), "--out", str(run), "--stop-after", "4"]
    assert run_cli(args, monkeypatch, capsys)[0] == 0
    rd = RunDir(run)
    old = [r for r in read_metrics(rd.metrics) if r["split"] != "setup"]  # as such runs were
    rd.metrics.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert run_cli(["train", "--resume", str(run)], monkeypatch, capsys)[0] == 0
    assert rd.read_summary()["precision"] == "32-true"


def test_bf16_mixed_is_reproducible_on_a_cpu(tiny_cfg, tmp_path):
    """Same config and seed, same metrics, in bf16-mixed as in float32."""
    from attnlab.runs import train

    a = train(tiny_cfg(train__precision="bf16-mixed"), tmp_path / "a")
    b = train(tiny_cfg(train__precision="bf16-mixed"), tmp_path / "b")
    losses = [
        [r["loss"] for r in read_metrics(RunDir(d).metrics) if r["split"] == "train"]
        for d in (tmp_path / "a", tmp_path / "b")
    ]
    assert losses[0] == losses[1] and a["final_val_loss"] == b["final_val_loss"]
