"""`train(cfg, run_dir, task)` and `resume(run_dir, task)`: config to run directory.

config → data.build → models.build → check_causal → Trainer.fit → final evals →
check_causal on the trained weights → `summary.json`. The run directory holds everything
needed to resume or report. `task` (an `attnlab.tasks.Task`) adds what its kind needs
(model fields, extra evaluations, summary fields); this module never asks which task it
runs. Most callers use `attnlab.runs.train`, which picks the task from the config.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import torch

import attnlab
from attnlab import data as data_mod
from attnlab import models
from attnlab.config import load_config, save_config
from attnlab.config.schema import RunConfig
from attnlab.data.splits import subset_note
from attnlab.errors import LeakageError, UserError
from attnlab.run_dir import RunDir
from attnlab.train import memory
from attnlab.train.loggers import make_loggers
from attnlab.train.loop import Trainer, precision_probe
from attnlab.train.optim import make_optimizer
from attnlab.train.precision import CHECK_TOKENS, announce, choose, warn_emulated_bf16


def resolve(cfg: RunConfig, dataset, fields: dict | None = None) -> RunConfig:
    """Fill what the data decides: vocabulary size, the model's maximum length, and the
    task's own model `fields` (`Task.model_fields`)."""
    longest = max(dataset.seq_len, dataset.src_len or 0)
    update = {
        "vocab_size": cfg.model.vocab_size or dataset.vocab_size,
        "max_seq_len": cfg.model.max_seq_len or longest,
        **(fields or {}),
    }
    model = cfg.model.model_copy(update=update)
    if model.vocab_size < dataset.vocab_size:
        raise UserError(
            f"model.vocab_size ({model.vocab_size}) < the data's vocabulary ({dataset.vocab_size})"
        )
    if model.max_seq_len < longest:
        raise UserError(
            f"model.max_seq_len ({model.max_seq_len}) < the data's longest sequence ({longest})"
        )
    return cfg.model_copy(update={"model": model})


def device_kind(cfg: RunConfig) -> str:
    """`cuda` when the config asks for it (or `auto`) and a GPU is there, else `cpu`
    (`mps` when asked for)."""
    acc = cfg.train.accelerator
    if acc in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "mps" if acc == "mps" else "cpu"


def _fabric(cfg: RunConfig, precision: str, loggers: list | None = None):
    """Lightning Fabric for the run in `precision` (`train.precision.choose`): one process,
    or DDP over devices x nodes; `loggers` are its experiment trackers (`train.loggers`,
    made by the main process only).

    With `devices > 1` on one machine Fabric spawns the processes itself. Across machines
    the launcher starts one process per device (torchrun, or srun under SLURM) and Fabric
    reads its rank from the environment.
    """
    from lightning_fabric import Fabric

    t = cfg.train
    warn_emulated_bf16(precision, device_kind(cfg))
    fabric = Fabric(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy="ddp" if t.devices * t.num_nodes > 1 else "auto",
        precision=precision,
        loggers=loggers or None,
    )
    if t.devices * t.num_nodes > 1:
        fabric.launch()
    return fabric


def _versions() -> dict:
    return {
        "attnlab": attnlab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def is_main_process() -> bool:
    """True outside DDP and in the process of global rank 0 (launcher environment)."""
    return all(int(os.environ.get(k, 0)) == 0 for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def _prepare_dir(run_dir: Path) -> None:
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(
            f"run directory {run_dir} already exists and is not empty; continue it with "
            f"`attnlab train --resume {run_dir}` or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def _setup(cfg: RunConfig, run_dir: Path, fresh: bool, task):
    """Build data, model (checked for leaks), optimizer and a Trainer for `run_dir`."""
    if cfg.train.accelerator in ("auto", "cpu") and memory.wanted(cfg.train.keep_freed_memory):
        memory.keep_freed_memory()
    rd = RunDir(run_dir)
    dataset = data_mod.build(cfg.data)
    cfg = resolve(cfg, dataset, task.model_fields(cfg, dataset))
    torch.manual_seed(cfg.train.seed)
    model = models.build(cfg.model)
    trackers = cfg.train.loggers if is_main_process() else []
    precision, why = _run_precision(cfg, rd, fresh, model, dataset)
    if is_main_process():
        announce(precision, why)
    fabric = _fabric(cfg, precision, make_loggers(trackers, rd.logs, cfg.name))
    if fresh and fabric.global_rank == 0:
        save_config(cfg, rd.config)
        for lg in fabric.loggers:
            with contextlib.suppress(NotImplementedError):  # the CSV logger keeps none
                lg.log_hyperparams(cfg.model_dump(mode="json"))
    # a resumed run writes its tokenizer too: a directory that kept only the training state
    # (a study's committed checkpoint) has none, and its probes need one
    if fabric.global_rank == 0 and dataset.tokenizer is not None and not rd.tokenizer.is_file():
        dataset.tokenizer.save(rd.tokenizer)
    if not fresh:
        from attnlab.train.checkpoint import load_weights

        load_weights(model, rd.weights)
    elif cfg.model.init_from is not None:
        from attnlab.train.checkpoint import init_from_run

        init_from_run(model, cfg.model.init_from)
    optimizer = make_optimizer(model, cfg.train, precision)
    to_wrap = torch.compile(model) if cfg.train.compile else model
    wrapped, optimizer = fabric.setup(to_wrap, optimizer)
    # the model as it trains: on its device, in the run's precision, compiled when asked
    checked = _CheckedAs(fabric, precision, to_wrap if cfg.train.compile else None)
    leak = _leak_check(cfg, task, model, dataset.seq_len, checked)
    trainer = Trainer(fabric, wrapped, model, optimizer, dataset, cfg.train, run_dir)
    trainer.precision = {"precision": precision, "why": why}
    trainer.checked_as = checked
    if fresh:  # the choice, in the run's log; a resumed run reads it back
        trainer.log.write({"step": 0, "split": "setup", "precision": precision,
                           "precision_why": why})  # fmt: skip
    trainer.leak_checks = {"initial": leak} if leak is not None else {}
    task.attach(trainer, cfg, dataset)
    return cfg, trainer


def _run_precision(cfg: RunConfig, rd: RunDir, fresh: bool, model, dataset) -> tuple[str, str]:
    """(precision, why) of a run: chosen at its start (`train.precision.choose`, with the
    model's own check in a one-process CPU run), kept from its `setup` record when it
    resumes (float32 for an `auto` CPU run from before `auto` measured anything, as `auto`
    meant then)."""
    t = cfg.train
    if not fresh:
        setup = next((r for r in rd.read_metrics() if r.get("split") == "setup"), None)
        if setup is not None:
            return setup["precision"], f"kept from the run's start: {setup['precision_why']}"
        if t.precision == "auto" and device_kind(cfg) == "cpu":
            return "32-true", "auto in a run started before auto measured the CPU: float32"
    step = None
    if t.precision == "auto" and device_kind(cfg) == "cpu" and t.devices * t.num_nodes == 1:
        step = precision_probe(model, dataset, t, cfg.model.model_dump_json(), CHECK_TOKENS)
    return choose(t.precision, device_kind(cfg), step)


LEAK_WARNING = (
    "train.allow_leak: this model sees the future ({error}); it trains anyway because "
    "the config asks, and its accuracy and loss are NOT next-token predictions"
)


class _CheckedAs(NamedTuple):
    """How a run's model is checked for leaks as it trains: the run's Fabric (whose
    `autocast` is its precision context), the precision, and the compiled module (None
    without `train.compile`)."""

    fabric: object
    precision: str
    compiled: torch.nn.Module | None


def _leak_check(cfg: RunConfig, task, model, seq_len: int, how: _CheckedAs) -> dict | None:
    """`check_causal` on a causal task's model unless switched off, also under the run's
    precision context (when not float32) and compiled (with `train.compile`); raises
    `LeakageError` on a leak, unless `train.allow_leak`, which warns and records the
    error."""
    if not cfg.train.check_causal or not task.causal:
        return None
    mixed = how.precision not in ("32-true", "64-true")
    try:
        return models.check_causal(
            model,
            cfg.model.vocab_size,
            seq_len,
            length=cfg.train.leak_check_len,
            autocast=how.fabric.autocast if mixed else None,
            compiled=how.compiled,
        )
    except LeakageError as e:
        if not cfg.train.allow_leak:
            raise
        warnings.warn(LEAK_WARNING.format(error=e), stacklevel=2)
        return {"error": str(e), "allowed": True}


def _finish(cfg: RunConfig, trainer: Trainer, wall_s: float, task) -> dict:
    """Full validation and test evaluation with the final weights, then `summary.json`."""
    f, ds, s = trainer.fabric, trainer.data, trainer.state
    cap = cfg.train.final_eval_batches
    n_val = ds.splits["validation"].num_sequences
    val = trainer.run_eval(s.step, cap, final=True)
    test = trainer.evaluate("test", cap)
    trainer.log.write({"step": s.step, "split": "test", "final": True, **test})
    summary = {
        "name": cfg.name,
        "params": trainer.raw_model.num_params(),
        "steps": s.step,
        "planned_steps": trainer.planned,  # the lr schedule's horizon (train.stop_step)
        "final_val_loss": val["loss"],
        "final_val_accuracy": val["accuracy"],
        "val_perplexity": val["perplexity"],
        "best_subset_val_loss": s.best_val_loss,
        "best_step": s.best_step,
        "val_subset_batches": cfg.train.eval_batches,
        "final_eval_batches": cap,
        # what each figure was measured on: periodic evals (the curves, the best loss and
        # best.safetensors) vs the final ones (final_* and test_*)
        "eval_sets": {
            "periodic_validation": subset_note(n_val, ds.batch_size, cfg.train.eval_batches),
            "final_validation": subset_note(n_val, ds.batch_size, cap),
            "final_test": subset_note(ds.splits["test"].num_sequences, ds.batch_size, cap),
        },
        "final_eval_tokens": {"validation": val["tokens"], "test": test["tokens"]},
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "test_perplexity": test["perplexity"],
        "test_weights": "final",
        "tokens_per_s": s.train_tokens / max(s.train_seconds, 1e-9),
        "train_tokens": s.train_tokens,
        "train_s": s.train_seconds,
        "data_share": s.data_seconds / max(s.train_seconds, 1e-9),
        "compile_s": trainer.compile_s,
        "wall_s": wall_s,
        "seed": cfg.train.seed,
        "grad_clip": cfg.train.grad_clip,
        "allow_leak": cfg.train.allow_leak,
        "device": str(f.device),
        "precision": trainer.precision["precision"],
        "precision_choice": trainer.precision["why"],
        "keep_freed_memory": memory.active(),
        "world_size": f.world_size,
        "data": ds.describe(),
        "versions": _versions(),
    }
    summary.update(task.summarise(trainer, val, test, cap))
    leak_error = None
    try:  # the trained weights get the same check the initial ones had
        final = _leak_check(cfg, task, trainer.raw_model, ds.seq_len, trainer.checked_as)
        if final is not None:
            trainer.leak_checks["final"] = final
    except LeakageError as e:
        leak_error = e
        trainer.leak_checks["final"] = {"error": str(e)}
    summary["leak_check"] = trainer.leak_checks
    if f.global_rank == 0:
        RunDir(trainer.run_dir).write_summary(summary)
    if leak_error is not None:
        raise LeakageError(f"the trained model leaks: {leak_error}")
    return summary


def _go(cfg: RunConfig, trainer: Trainer, task, stop_after: int | None):
    # a resumed run counts on from its checkpoint's wall time (checkpoints keep it)
    trainer.wall_from = time.perf_counter() - trainer.state.wall_s
    status = "failed"
    try:
        done = trainer.fit(stop_after)
        wall = time.perf_counter() - trainer.wall_from
        summary = _finish(cfg, trainer, wall, task) if done else None
        status = "success"
        return summary
    finally:
        for lg in trainer.fabric.loggers:  # train.loggers: flush and close
            lg.finalize(status)


def train(cfg: RunConfig, run_dir: str | Path, task, stop_after: int | None = None) -> dict | None:
    """Train a fresh run of `task` into `run_dir`; returns the summary (None when stopped
    early). `stop_after` ends the run after that many steps with a resumable checkpoint."""
    run_dir = Path(run_dir)
    if is_main_process():
        _prepare_dir(run_dir)
    cfg, trainer = _setup(cfg, run_dir, True, task)
    return _go(cfg, trainer, task, stop_after)


def resume(run_dir: str | Path, task, stop_after: int | None = None) -> dict | None:
    """Continue the run in `run_dir` from its last checkpoint, exactly where it stopped."""
    rd = RunDir(run_dir)
    for path in (rd.config, rd.state, rd.weights):
        if not path.is_file():
            raise UserError(f"cannot resume {rd.path}: {path.name} is missing (no checkpoint yet)")
    cfg, trainer = _setup(load_config(rd.config), rd.path, False, task)
    trainer.restore()
    return _go(cfg, trainer, task, stop_after)
