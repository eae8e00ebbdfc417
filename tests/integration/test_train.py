"""Training: reproducibility, exact resume, gradient accumulation, refusing leaky models."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from attnlab import models
from attnlab.config import validate
from attnlab.errors import LeakageError, UserError
from attnlab.run_dir import read_metrics
from attnlab.runs import resume, train
from attnlab.train.optim import lr_at, plateau_update
from tests.helpers import curve, tiny_raw


def test_run_directory_contents(tiny_cfg, tmp_path):
    s = train(tiny_cfg(), tmp_path / "run")
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "model.safetensors",
        "best.safetensors",
        "state.pt",
    } <= names
    for key in (
        "params",
        "final_val_loss",
        "best_subset_val_loss",
        "eval_sets",
        "leak_check",
        "final_val_accuracy",
        "val_perplexity",
        "test_loss",
        "test_accuracy",
        "tokens_per_s",
        "wall_s",
        "seed",
        "steps",
    ):
        assert key in s, key
    assert s["steps"] == 12 and s["seed"] == 42
    assert s["train_tokens"] == 12 * 8 * 24  # steps x batch x seq_len: nothing trimmed
    from attnlab.config import load_config

    resolved = load_config(tmp_path / "run" / "config.yaml")
    assert resolved.model.vocab_size == 16 and resolved.model.max_seq_len == 24
    assert s["params"] == sum(p.numel() for p in models.build(resolved.model).parameters())
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["final_val_loss"] == s["final_val_loss"]
    assert s["val_perplexity"] == pytest.approx(torch.tensor(s["final_val_loss"]).exp().item())


def test_same_seed_same_metrics_other_seed_differs(tiny_cfg, tmp_path):
    a = train(tiny_cfg(), tmp_path / "a")
    b = train(tiny_cfg(), tmp_path / "b")
    c = train(tiny_cfg(train__seed=7), tmp_path / "c")
    assert curve(tmp_path / "a") == curve(tmp_path / "b")
    assert a["test_loss"] == b["test_loss"]
    assert c["test_loss"] != a["test_loss"]


def test_resume_equals_uninterrupted_run(tiny_cfg, tmp_path):
    cfg = tiny_cfg(model__dropout=0.1, train__checkpoint_every=1)  # dropout: RNG state matters
    full = train(cfg, tmp_path / "full")
    assert train(cfg, tmp_path / "cut", stop_after=5) is None
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert resume(tmp_path / "cut", stop_after=3) is None
    resumed = resume(tmp_path / "cut")
    assert curve(tmp_path / "cut") == curve(tmp_path / "full")
    for key in ("final_val_loss", "test_loss", "best_subset_val_loss", "best_step", "steps"):
        assert resumed[key] == full[key], key


def test_resume_after_a_kill_drops_records_past_the_checkpoint(tiny_cfg, tmp_path):
    cfg = tiny_cfg(train__checkpoint_every=4)
    train(cfg, tmp_path / "full")
    train(cfg, tmp_path / "cut", stop_after=6)  # checkpoint at 4 and at the stop (6)
    # simulate a kill after step 6 whose last checkpoint is step 4: rewind the state
    import shutil

    shutil.copy(tmp_path / "full" / "metrics.jsonl", tmp_path / "cut" / "metrics.jsonl")
    train(cfg, tmp_path / "four", stop_after=4)
    for name in ("state.pt", "model.safetensors"):
        shutil.copy(tmp_path / "four" / name, tmp_path / "cut" / name)
    resume(tmp_path / "cut")
    assert curve(tmp_path / "cut") == curve(tmp_path / "full")


def test_a_killed_runs_wall_time_is_kept_at_its_checkpoints(tiny_cfg, tmp_path, monkeypatch):
    """Each checkpoint records the wall time so far in its state, so a run killed between
    checkpoints (no clean stop), or resumed from committed checkpoint files alone, still
    reports the time of its earlier segments once resumed."""
    import time

    from attnlab.train.loop import Trainer

    fit = Trainer.fit

    def killed(self, stop_after=None):
        fit(self, 4)  # checkpoints at 2 and 4 ...
        time.sleep(0.2)
        raise KeyboardInterrupt  # ... then dies without a clean stop

    monkeypatch.setattr(Trainer, "fit", killed)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(train__checkpoint_every=2), tmp_path / "run")
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    saved = state["wall_s"]
    assert state["step"] == 4 and saved > 0  # at the step-4 checkpoint, not lost with the process
    assert {p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")} == set()
    monkeypatch.setattr(Trainer, "fit", fit)
    summary = resume(tmp_path / "run")
    assert summary["wall_s"] > saved  # the earlier segment's time is counted


def _step_gradients(cfg, run_dir, steps: int = 3) -> list[list[torch.Tensor]]:
    """The gradients each of the first `steps` optimizer steps applies (after any
    accumulation and clipping), read at the optimizer's step."""
    import attnlab.train.run as run_mod
    from attnlab.tasks import task_for

    run_dir.mkdir()
    _, trainer = run_mod._setup(cfg, run_dir, True, task_for(cfg))
    params = [p for g in trainer.opt.param_groups for p in g["params"]]
    seen, real_step = [], trainer.opt.step

    def recording_step(*a, **k):
        seen.append([p.grad.detach().clone() for p in params])
        return real_step(*a, **k)

    trainer.opt.step = recording_step
    for step in range(steps):
        trainer.step(step)
    return seen


@pytest.mark.parametrize("clip", [None, 1.0])
def test_gradient_accumulation_gives_the_big_batch_gradients(tiny_cfg, tmp_path, clip):
    """Compare the gradients, not the losses: Adam and clipping hide a constant factor
    in the gradient from the loss curve (an injected x4 moved it by 1e-7)."""
    one = _step_gradients(tiny_cfg(train__grad_clip=clip), tmp_path / "one")
    acc = _step_gradients(tiny_cfg(train__grad_clip=clip, train__grad_accum=4), tmp_path / "acc")
    for g1, g4 in zip(one, acc, strict=True):
        for a, b in zip(g1, g4, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_gradient_norm_is_logged_before_clipping(tiny_cfg, tmp_path):
    train(tiny_cfg(train__grad_clip=1e-3), tmp_path / "run")
    norms = [r["grad_norm"] for r in curve(tmp_path / "run") if r["split"] == "train"]
    assert len(norms) == 6 and min(norms) > 1e-3  # the norm clipping saw, not 1e-3


def test_refuses_to_train_a_leaking_model(tiny_cfg, tmp_path, monkeypatch):
    real_build = models.build

    def leaky(cfg, vocab_size=None):
        model = real_build(cfg, vocab_size)
        model.blocks[0].mixer.causal = False  # attention without its mask
        return model

    monkeypatch.setattr(models, "build", leaky)
    with pytest.raises(LeakageError):
        train(tiny_cfg(), tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_existing_run_directory_is_not_overwritten(tiny_cfg, tmp_path):
    train(tiny_cfg(), tmp_path / "run")
    before = (tmp_path / "run" / "summary.json").read_text()
    with pytest.raises(UserError, match="already exists"):
        train(tiny_cfg(), tmp_path / "run")
    assert (tmp_path / "run" / "summary.json").read_text() == before


def test_batch_must_split_over_accumulation(tmp_path):
    cfg = validate(tiny_raw(train__grad_accum=3))
    with pytest.raises(UserError, match="divisible"):
        train(cfg, tmp_path / "run")


def test_cosine_schedule_with_warmup():
    cfg = validate(tiny_raw(train__lr=1.0, train__warmup_steps=10, train__min_lr_ratio=0.1)).train
    lrs = [lr_at(s, 110, cfg) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.55, abs=0.01)
    assert min(lrs[10:]) >= 0.1 - 1e-9
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))


def test_plateau_schedule_halves_after_patience_and_stops_at_the_floor():
    raw = tiny_raw(train__lr=1.0, train__schedule="plateau", train__min_lr_ratio=0.2)
    cfg = validate(raw).train  # patience 2, factor 0.5
    scale, bad, seen = 1.0, 0, []
    for improved in [True, False, False, False, True, False, False, False, False, False, False]:
        scale, bad = plateau_update(scale, bad, improved, cfg)
        seen.append(scale)
    assert seen == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2]
    assert lr_at(500, 1000, cfg, 0.25) == pytest.approx(0.25)


def test_plateau_training_lowers_the_lr_it_logs(tmp_path):
    raw = tiny_raw(
        train__schedule="plateau",
        train__plateau_patience=0,
        train__lr=3.0,  # far too high: validation does not improve every time
        train__max_steps=40,
        train__eval_every=5,
        train__grad_clip=None,
    )
    run = tmp_path / "run"
    train(validate(raw), run)
    lrs = [r["lr"] for r in read_metrics(run / "metrics.jsonl") if r["split"] == "train"]
    assert lrs[0] == pytest.approx(3.0) and min(lrs) < 3.0


def repeat_run(tmp_path, name: str, steps: int, **mixer) -> dict:
    cfg = validate(
        tiny_raw(
            model__d_model=64,
            model__n_layers=1,
            model__mixer={"n_heads": 4, **mixer},
            train__max_steps=steps,
            train__lr=3e-3,
            train__eval_every=50,
            data__num_train=4000,
            data__batch_size=32,
        )
    )
    return train(cfg, tmp_path / name)


def test_training_learns_the_repeat(tmp_path):
    """Quick: one Conv-Attn layer copies repeated tokens far above chance (1/16)."""
    s = repeat_run(tmp_path, "run", 200, conv_kernel=3)
    assert s["final_val_accuracy"] > 0.4
    first = next(
        r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"
    )
    assert s["final_val_loss"] < first["loss"] - 1.0


def test_bf16_mixed_precision_trains_close_to_float32(tiny_cfg, tmp_path):
    f32 = train(tiny_cfg(), tmp_path / "f32")
    bf16 = train(tiny_cfg(train__precision="bf16-mixed"), tmp_path / "bf16")
    assert bf16["precision"] == "bf16-mixed"
    assert bf16["final_val_loss"] == pytest.approx(f32["final_val_loss"], rel=0.05)


def test_resume_keeps_the_fp16_loss_scaler(tiny_cfg, tmp_path, monkeypatch):
    """fp16 mixed precision scales the loss by a factor that grows and backs off as it
    trains; a resume must continue from the saved factor, not from its initial value.
    (On CPU, Fabric's own `16-mixed` means bf16 without a scaler, so the test hands Fabric
    an fp16 plugin with a CPU GradScaler that doubles every 2 steps.)"""
    from lightning_fabric import Fabric
    from lightning_fabric.plugins.precision import MixedPrecision

    import attnlab.train.run as run_mod

    scalers = []

    def fp16_fabric(cfg, *_args, **_kwargs):
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=2)
        scalers.append(scaler)
        plugin = MixedPrecision("16-mixed", device="cpu", scaler=scaler)
        return Fabric(accelerator="cpu", devices=1, plugins=[plugin])

    monkeypatch.setattr(run_mod, "_fabric", fp16_fabric)
    cfg = tiny_cfg(model__dropout=0.1, train__checkpoint_every=1, train__precision="16-mixed")
    full = train(cfg, tmp_path / "full")
    end_state = scalers[-1].state_dict()
    train(cfg, tmp_path / "cut", stop_after=5)
    saved = torch.load(tmp_path / "cut" / "state.pt", weights_only=False)["precision"]
    assert saved == scalers[-1].state_dict() and saved["scale"] > 2.0**12
    resumed = resume(tmp_path / "cut")
    assert scalers[-1].state_dict() == end_state
    assert resumed["final_val_loss"] == full["final_val_loss"]
    assert curve(tmp_path / "cut") == curve(tmp_path / "full")


def test_leak_check_runs_again_on_the_trained_weights(tiny_cfg, tmp_path, monkeypatch):
    """Both checks are in the summary; a model that leaks once trained (here: its mask
    dropped after the last step) fails the run, with the finding recorded."""
    from attnlab.train.loop import Trainer

    ok = train(tiny_cfg(), tmp_path / "ok")
    for when in ("initial", "final"):
        check = ok["leak_check"][when]
        assert check["positions"] == 24 and check["pairs"] == 276 and check["max_change"] < 1e-4
    real_fit = Trainer.fit

    def fit_then_unmask(self, *a, **k):
        done = real_fit(self, *a, **k)
        self.raw_model.blocks[1].mixer.causal = False
        return done

    monkeypatch.setattr(Trainer, "fit", fit_then_unmask)
    with pytest.raises(LeakageError, match="the trained model leaks"):
        train(tiny_cfg(), tmp_path / "bad")
    saved = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert "sees the future" in saved["leak_check"]["final"]["error"]


def test_allow_leak_trains_a_leaky_model_and_says_so(tmp_path, tiny_cfg):
    from attnlab.runs import report

    cfg = tiny_cfg(train__max_steps=4, train__allow_leak=True)
    cfg.model.mixer.conv_kernel, cfg.model.mixer.conv_padding = 3, "same"
    with pytest.warns(UserWarning, match="sees the future"):
        summary = train(cfg, tmp_path / "run")
    assert summary["allow_leak"] and summary["leak_check"]["initial"]["allowed"]
    assert "reads offsets +1" in summary["leak_check"]["final"]["error"]
    assert "**This model sees the future**" in report(tmp_path / "run").read_text()


def test_a_leaky_model_does_not_train_without_allow_leak(tmp_path, tiny_cfg):
    from attnlab.errors import LeakageError

    cfg = tiny_cfg(train__max_steps=4)
    cfg.model.mixer.conv_kernel, cfg.model.mixer.conv_padding = 3, "same"
    with pytest.raises(LeakageError, match="conv_padding: same"):
        train(cfg, tmp_path / "run")


def test_logged_training_steps_record_their_batch_accuracy(tmp_path, tiny_cfg):
    train(tiny_cfg(train__max_steps=6, train__log_every=2), tmp_path / "run")
    recs = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in recs] == [2, 4, 6]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in recs)


def test_adamw_is_fused_except_under_the_fp16_loss_scaler(tiny_cfg):
    from attnlab.train.optim import make_optimizer

    cfg = tiny_cfg()
    model = models.build(cfg.model, 16)
    for precision, fused in (("32-true", True), ("bf16-mixed", True), ("16-mixed", False)):
        opt = make_optimizer(model, cfg.train, precision)
        assert bool(opt.defaults["fused"]) is fused, precision


def test_stop_step_runs_the_first_part_of_the_planned_schedule(tmp_path, tiny_cfg):
    """`train.stop_step` ends the run early with the lr schedule of the full run: the
    learning rates it logs are the full run's at the same steps."""
    full = train(tiny_cfg(train__max_steps=12, train__log_every=1), tmp_path / "full")
    part = train(
        tiny_cfg(train__max_steps=12, train__stop_step=5, train__log_every=1), tmp_path / "part"
    )
    assert part["steps"] == 5 and part["planned_steps"] == 12 and full["planned_steps"] == 12

    def lrs(run):
        recs = read_metrics(tmp_path / run / "metrics.jsonl")
        return [r["lr"] for r in recs if r["split"] == "train"]

    assert lrs("part") == lrs("full")[:5]
