"""The training loop: Lightning Fabric for device, precision and DDP; nothing model-specific.

One optimizer step consumes one global batch of `data.batch_size` sequences, cut into
`grad_accum` micro-batches (or as the split cuts it: `micro_batches`, e.g. Pig Latin's
equal-length groups) and, under DDP, each micro-batch into one slice per process.
Losses are sums divided by the scored targets of the whole global batch, so the gradient
is the same for any split into micro-batches and processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from attnlab.config.schema import TrainConfig
from attnlab.data import Dataset, eval_batches, train_ids
from attnlab.data.splits import steps_per_epoch
from attnlab.errors import ConfigError, DataError, TrainingDiverged
from attnlab.models.stack import output_head
from attnlab.run_dir import RunDir
from attnlab.train import checkpoint as ckpt
from attnlab.train.loggers import mirror
from attnlab.train.losses import chunked_token_stats, token_stats
from attnlab.train.optim import lr_at, plateau_update


@dataclass
class LoopState:
    """Bookkeeping that a checkpoint carries across a resume."""

    step: int = 0
    best_val_loss: float = math.inf
    best_val_accuracy: float = -math.inf
    best_step: int = -1  # the evaluation that best.safetensors holds (`train.select_by`)
    train_tokens: int = 0
    train_seconds: float = 0.0
    data_seconds: float = 0.0  # of train_seconds, building batches
    plateau_scale: float = 1.0  # schedule plateau: the lr multiplier so far
    plateau_bad: int = 0  # evaluations since the last new best validation loss
    wall_s: float = 0.0  # wall time up to the checkpoint (a resume counts on from it)


def planned_steps(data: Dataset, cfg: TrainConfig) -> int:
    """The steps the lr schedule is planned for: `max_steps` when set, else `epochs`
    passes over the training split."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * steps_per_epoch(data.splits["train"], data.batch_size)))


class LossStats:
    """(model, batch) → (loss sum, scored targets, correct or None): from the full logits,
    or with `train.loss_chunk` from the hidden states, `chunk` tokens at a time."""

    def __init__(self, raw_model, chunk: int | None):
        self.head = output_head(raw_model) if chunk else None
        self.chunk = chunk if self.head is not None else None

    def __call__(self, model, batch, accuracy: bool = True):
        if self.chunk is None:
            logits = model(*batch.inputs())  # (B, T, Vp)
            return token_stats(logits, batch.y, batch.mask, accuracy)
        h = model(*batch.inputs(), hidden=True)  # (B, T, D)
        weight, bias = self.head
        return chunked_token_stats(h, weight, bias, batch.y, batch.mask, self.chunk, accuracy)


def precision_probe(
    model, data: Dataset, cfg: TrainConfig, model_json: str, tokens: int
) -> tuple[str, Callable[[bool], None]]:
    """(signature, fwd_bwd) for `precision.step_check`: `fwd_bwd(bf16)` runs this run's
    loss path forward and backward (under bf16 autocast when asked) on the first training
    sequences, as many as one micro-batch holds up to `tokens` tokens, and drops the
    gradients; the signature is the model config and that batch's shape."""
    split = data.splits["train"]
    micro = max(1, data.batch_size // cfg.grad_accum)
    n = max(1, min(micro, split.num_sequences, tokens // max(1, data.seq_len)))
    batch = split.get(np.arange(n))
    stats = LossStats(model, cfg.loss_chunk)

    def fwd_bwd(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss_sum, _, _ = stats(model, batch, accuracy=False)
        loss_sum.backward()
        model.zero_grad(set_to_none=True)

    signature = f"{model_json}|{tuple(batch.x.shape)}|chunk {cfg.loss_chunk}"
    return signature, fwd_bwd


def evaluate(
    fabric, model, split, batch_size: int, max_batches: int | None, stats: LossStats | None = None
) -> dict:
    """Loss, accuracy and perplexity over a split (a fixed random subset of `max_batches`
    batches when that is fewer than the split holds)."""
    stats = stats or LossStats(model, None)
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=fabric.device)  # loss, n, correct
    with torch.no_grad():
        for i, batch in enumerate(eval_batches(split, batch_size, max_batches)):
            if i % fabric.world_size != fabric.global_rank:
                continue
            batch = batch.to(fabric.device)
            with fabric.autocast():
                loss, n, correct = stats(model, batch)
            sums += torch.stack([loss.double(), n.double(), correct.double()])
    model.train()
    sums = fabric.all_reduce(sums, reduce_op="sum") if fabric.world_size > 1 else sums
    loss_sum, n, correct = sums.tolist()
    loss = loss_sum / max(n, 1)
    return {
        "loss": loss,
        "accuracy": correct / max(n, 1),
        "perplexity": math.exp(min(loss, 50)),
        "tokens": int(n),
    }


class Trainer:
    """Runs optimizer steps, evaluations and checkpoints for one run directory."""

    def __init__(
        self, fabric, model, raw_model, optimizer, data: Dataset, cfg: TrainConfig, run_dir: Path
    ):
        self.fabric, self.model, self.raw_model = fabric, model, raw_model
        self.opt, self.data, self.cfg, self.run_dir = optimizer, data, cfg, run_dir
        self.planned = planned_steps(data, cfg)  # the schedule's horizon
        self.total = min(self.planned, cfg.stop_step or self.planned)  # the steps run
        self.files = RunDir(run_dir)
        send = mirror(fabric.loggers) if fabric.loggers else None  # train.loggers
        self.log = self.files.metrics_log(enabled=fabric.global_rank == 0, mirror=send)
        self.state = LoopState()
        self.probe_fn = None  # step → metrics record (train.probe_every), set by the caller
        self.task_eval = None  # (split, max_batches) → extra eval metrics, e.g. word accuracy
        self.step_tokens = 0  # input tokens of the last step
        self.step_data_s = 0.0  # seconds of the last step spent building batches
        self.wall_from = time.perf_counter()  # wall_s = now − wall_from; a resume moves it
        # back by the earlier segments' wall time (the checkpoint's state: kills lose none)
        self.step_accuracy: float | None = None  # the last step's batch accuracy, if asked
        self.grad_norm = torch.zeros(())  # the last step's gradient norm before clipping
        self.stats = LossStats(raw_model, cfg.loss_chunk)
        self.compile_s = None  # seconds torch.compile took (train.compile), else None
        self.leak_checks: dict = {}  # "initial" / "final": what `check_causal` covered
        self.precision: dict = {}  # {"precision", "why"}: train.precision's choice
        self.per_epoch = steps_per_epoch(data.splits["train"], data.batch_size)
        # train.eval_per_epoch: evaluate at every epoch's end, a train subset too
        self.eval_every = self.per_epoch if cfg.eval_per_epoch else cfg.eval_every
        world = fabric.world_size * cfg.grad_accum
        if data.batch_size % world:
            raise ConfigError(
                f"data.batch_size ({data.batch_size}) must be divisible by train.grad_accum x "
                f"devices ({cfg.grad_accum} x {fabric.world_size})"
            )
        if data.splits["train"].num_sequences < data.batch_size:
            raise ConfigError("the training split holds fewer sequences than one batch")

    def step(self, step: int, accuracy: bool = False) -> float:
        """One optimizer step; returns the mean training loss over the global batch.

        `self.step_tokens` is left at the input tokens the step ran (this process's times
        the process count: batches of word tasks are cut to their longest word); with
        `accuracy`, `self.step_accuracy` at the share of the batch's targets the model
        predicted right before the update (train mode), else None.
        """
        split, cfg, f = self.data.splits["train"], self.cfg, self.fabric
        t_data = time.perf_counter()
        ids = train_ids(split.num_sequences, self.data.batch_size, cfg.seed, step)  # (B,)
        # a batch with no scored target (blank rows with their padding masked) adds no
        # gradient; the optimizer still steps, as it would on any batch
        n_total = max(self._scored(split, ids), 1)
        lr = lr_at(step, self.planned, cfg, self.state.plateau_scale)
        for group in self.opt.param_groups:
            group["lr"] = lr
        loss_total = torch.zeros((), device=f.device)
        correct_total = torch.zeros((), device=f.device)
        self.step_tokens, self.step_data_s = 0, time.perf_counter() - t_data
        parts = self._micro_batches(split, ids)
        for m, part in enumerate(parts):
            t_data = time.perf_counter()
            batch = split.get(part[f.global_rank :: f.world_size]).to(f.device)
            self.step_data_s += time.perf_counter() - t_data
            self.step_tokens += batch.x.numel() * f.world_size
            last = m == len(parts) - 1
            with f.no_backward_sync(self.model, enabled=not last):
                with f.autocast():  # the chunked loss's matmuls in the run's precision
                    loss_sum, _, correct = self.stats(self.model, batch, accuracy=accuracy)
                # DDP averages gradients over processes: scale back to a global-batch mean
                f.backward(loss_sum * (f.world_size / n_total))
            loss_total += loss_sum.detach()
            if correct is not None:
                correct_total += correct.detach()
        # the global gradient norm before clipping (unscaled under fp16; inf clips nothing);
        # a non-finite norm is fp16's overflow, which the loss scaler skips, not an error
        clip = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        self.grad_norm = f.clip_gradients(
            self.model, self.opt, max_norm=clip, error_if_nonfinite=False
        )
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if f.world_size > 1:
            loss_total = f.all_reduce(loss_total, reduce_op="sum")
            correct_total = f.all_reduce(correct_total, reduce_op="sum")
        self.step_accuracy = correct_total.item() / n_total if accuracy else None
        return loss_total.item() / n_total

    def _micro_batches(self, split, ids: np.ndarray) -> list[np.ndarray]:
        """The step's sequence ids cut into micro-batches (each process takes its share of
        each): `grad_accum` equal slices, or the split's own cut."""
        if hasattr(split, "micro_batches"):
            return split.micro_batches(ids, self.cfg.grad_accum)
        return np.split(ids, self.cfg.grad_accum)

    @staticmethod
    def _scored(split, ids: np.ndarray) -> int:
        if hasattr(split, "scored"):  # e.g. one label per example
            return split.scored(ids)
        mask = getattr(split, "mask", None)
        return int(mask[ids].sum()) if mask is not None else len(ids) * split.seq_len

    def evaluate(self, split: str, max_batches: int | None) -> dict:
        """`evaluate` on one split of the data (all of it, or with `max_batches` a fixed
        random subset, `eval_ids`), with this run's loss path."""
        s = self.data.splits[split]
        if s.num_sequences == 0:
            raise DataError(f"the {split} split is empty: there is nothing to evaluate on")
        return evaluate(self.fabric, self.model, s, self.data.batch_size, max_batches, self.stats)

    def run_eval(self, step: int, max_batches: int | None, final: bool = False) -> dict:
        """Evaluate on validation, log it, and keep the best weights."""
        res = self.evaluate("validation", max_batches)
        every = self.cfg.task_eval_every
        if self.task_eval is not None and (final or every is None or step % every == 0):
            res.update(self.task_eval("validation", max_batches))
        rec = {"step": step, "split": "validation", **res}
        if self.cfg.eval_per_epoch:
            rec["epoch"] = step / self.per_epoch
            if not final:  # the accuracy on (as many batches of) the training split
                tr = self.evaluate("train", max_batches)
                self.log.write({"step": step, "split": "train_eval", "epoch": rec["epoch"], **tr})
        if final:
            rec["final"] = True
        else:
            rec["subset_batches"] = max_batches
            s = self.state
            improved = res["loss"] < s.best_val_loss
            more_accurate = res["accuracy"] > s.best_val_accuracy
            best = more_accurate if self.cfg.select_by == "val_accuracy" else improved
            s.best_val_loss = min(s.best_val_loss, res["loss"])
            s.best_val_accuracy = max(s.best_val_accuracy, res["accuracy"])
            if best:
                s.best_step = step
                if self.fabric.global_rank == 0:
                    ckpt.save_weights(self.raw_model, self.files.best)
            if self.cfg.schedule == "plateau":
                s.plateau_scale, s.plateau_bad = plateau_update(
                    s.plateau_scale, s.plateau_bad, improved, self.cfg
                )
        self.log.write(rec)
        return res

    def run_probe(self, step: int) -> None:
        """Record the probe scores of the model at `step` (main process only, no sync)."""
        if self.probe_fn is None or self.fabric.global_rank != 0:
            return
        t0 = time.perf_counter()
        self.log.write({**self.probe_fn(step), "probe_s": time.perf_counter() - t0})

    def save(self, step: int) -> None:
        """Last weights and the resume state at `step`."""
        if self.fabric.global_rank != 0:
            return
        ckpt.save_weights(self.raw_model, self.files.weights)
        s = self.state
        s.wall_s = time.perf_counter() - self.wall_from
        ckpt.save_state(
            self.files.state,
            self.opt,
            precision=self.fabric.strategy.precision.state_dict(),  # fp16: the loss scaler
            step=step,
            best_val_loss=s.best_val_loss,
            best_val_accuracy=s.best_val_accuracy,
            best_step=s.best_step,
            train_tokens=s.train_tokens,
            train_seconds=s.train_seconds,
            data_seconds=s.data_seconds,
            plateau_scale=s.plateau_scale,
            plateau_bad=s.plateau_bad,
            wall_s=s.wall_s,
        )

    def restore(self) -> None:
        """Continue from the checkpoint in the run directory."""
        extra = ckpt.load_state(self.files.state, self.opt)
        if extra.get("precision"):  # fp16 mixed precision: the loss scaler's scale and counts
            self.fabric.strategy.precision.load_state_dict(extra["precision"])
        self.state = LoopState(
            step=extra["step"],
            best_val_loss=extra["best_val_loss"],
            best_val_accuracy=extra.get("best_val_accuracy", -math.inf),
            best_step=extra["best_step"],
            train_tokens=extra["train_tokens"],
            train_seconds=extra["train_seconds"],
            data_seconds=extra.get("data_seconds", 0.0),
            plateau_scale=extra.get("plateau_scale", 1.0),
            plateau_bad=extra.get("plateau_bad", 0),
            wall_s=extra.get("wall_s", 0.0),  # 0: a checkpoint from before 2026-12-06
        )
        self.log.truncate_after(self.state.step)

    def compile_now(self, step: int) -> float:
        """Run the forward and backward of step `step`'s first micro-batch once and drop its
        gradients, so that `torch.compile` compiles before the clock starts; the RNG
        states (CPU, CUDA, numpy, Python) are put back, so training proceeds as it would
        have. Returns the seconds."""
        split, f, cfg = self.data.splits["train"], self.fabric, self.cfg
        rng = ckpt.rng_states()
        t0 = time.perf_counter()
        ids = train_ids(split.num_sequences, self.data.batch_size, cfg.seed, step)  # (B,)
        first = self._micro_batches(split, ids)[0]
        batch = split.get(first[f.global_rank :: f.world_size]).to(f.device)
        loss_sum, _, _ = self.stats(self.model, batch, accuracy=False)
        f.backward(loss_sum)
        self.opt.zero_grad(set_to_none=True)
        ckpt.set_rng_states(rng)
        return time.perf_counter() - t0

    def fit(self, stop_after: int | None = None) -> bool:
        """Train to the last step (or `stop_after` more steps); True when training finished."""
        cfg, s = self.cfg, self.state
        every_ckpt = cfg.checkpoint_every or cfg.eval_every
        end = self.total if stop_after is None else min(self.total, s.step + stop_after)
        bar = tqdm(
            total=self.total,
            initial=s.step,
            disable=not cfg.progress or self.fabric.global_rank != 0,
            desc="train",
            unit="step",
            leave=False,
        )
        self.model.train()
        if cfg.compile and s.step < end:
            self.compile_s = self.compile_now(s.step)
            self.log.write({"step": s.step, "split": "compile", "compile_s": self.compile_s})
        window_tokens, window_s, window_data = 0, 0.0, 0.0
        if s.step == 0:
            self.run_probe(0)
        while s.step < end:
            t0 = time.perf_counter()
            logged = (s.step + 1) % cfg.log_every == 0 or s.step + 1 == self.total
            loss = self.step(s.step, accuracy=logged)
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"training loss is {loss} at step {s.step + 1}; try a lower train.lr, "
                    "more warmup or train.grad_clip (the last checkpoint is kept)"
                )
            dt = time.perf_counter() - t0
            s.step += 1
            seq_tokens = self.step_tokens
            s.train_tokens += seq_tokens
            s.train_seconds += dt
            s.data_seconds += self.step_data_s
            window_tokens += seq_tokens
            window_s += dt
            window_data += self.step_data_s
            bar.update(1)
            if s.step % cfg.log_every == 0 or s.step == self.total:
                tps = window_tokens / max(window_s, 1e-9)
                rec = {"step": s.step, "split": "train", "loss": loss}
                if self.step_accuracy is not None:
                    rec["accuracy"] = self.step_accuracy
                rec.update(
                    grad_norm=float(self.grad_norm),
                    lr=self.opt.param_groups[0]["lr"],
                    tokens_per_s=tps,
                    data_share=window_data / max(window_s, 1e-9),
                )
                window_tokens, window_s, window_data = 0, 0.0, 0.0
                self.log.write(rec)
                bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:,.0f}")
            if s.step % self.eval_every == 0 or s.step == self.total:
                self.run_eval(s.step, cfg.eval_batches)
            if cfg.probe_every and (s.step % cfg.probe_every == 0 or s.step == self.total):
                self.run_probe(s.step)
            if s.step % every_ckpt == 0 or s.step == end:
                self.save(s.step)
        bar.close()
        return s.step >= self.total
