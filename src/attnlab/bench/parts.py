"""`attnlab bench data CONFIG` and `attnlab bench probe CONFIG`: the two parts of a run
beside the training step, each timed alone.

- data: building the data set (tokenizing, or opening the memory-mapped cache), then
  training batches from it — attnlab's one fancy index into the token array against the
  per-token Python loop a write-up would write (token streams only).
- probe: each probe of an untrained model of the config on its device — the head scores
  with and without the copying score, with patterns for one layer only, and the ICL score.

Nothing is asserted: the figures are written to `bench_data.json` / `bench_probe.json`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from attnlab.config.schema import RunConfig
from attnlab.errors import UserError


def _median_s(fn: Callable[[int], object], repeats: int) -> float:
    """Median seconds of fn(0), …, fn(repeats - 1) after one untimed call."""
    fn(repeats)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def loop_batch(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> torch.Tensor:
    """The per-token Python loop: (B, T + 1) windows of a token stream."""
    rows = [[int(tokens[s + j]) for j in range(seq_len + 1)] for s in starts]
    return torch.tensor(rows, dtype=torch.long)


def bench_data(
    cfg: RunConfig, out: Path, batches: int = 50, echo: Callable[[str], None] = print
) -> dict:
    """Time `data.build` and training batches; writes `out/bench_data.json`."""
    from attnlab import data as data_mod
    from attnlab.data.splits import StreamSplit, train_ids

    t0 = time.perf_counter()
    ds = data_mod.build(cfg.data)
    build_s = time.perf_counter() - t0
    split, B = ds.splits["train"], ds.batch_size

    def ids(i: int) -> np.ndarray:
        return train_ids(split.num_sequences, B, cfg.train.seed, i)

    fast = _median_s(lambda i: split.get(ids(i)), batches)
    res = {
        "config": cfg.name,
        "task": cfg.data.task,
        "build_s": build_s,
        "batch_size": B,
        "tokens_per_batch": int(split.get(ids(0)).x.numel()),
        "batch_ms": fast * 1e3,
    }
    res["tokens_per_s"] = res["tokens_per_batch"] / fast
    if isinstance(split, StreamSplit):
        T = split.seq_len
        got = loop_batch(split.tokens, ids(0) * T, T)
        ref = split.get(ids(0))
        if not (torch.equal(got[:, :-1], ref.x) and torch.equal(got[:, 1:], ref.y)):
            raise RuntimeError("the loop and the fancy index built different batches")
        slow = _median_s(lambda i: loop_batch(split.tokens, ids(i) * T, T), max(3, batches // 10))
        res.update(loop_batch_ms=slow * 1e3, speedup_vs_loop=slow / fast)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_data.json").write_text(json.dumps(res, indent=2) + "\n")
    line = (
        f"data {cfg.data.task}: built in {build_s:.2f} s; a batch of {res['tokens_per_batch']:,} "
        f"tokens in {res['batch_ms']:.3f} ms ({res['tokens_per_s']:,.0f} tokens/s)"
    )
    if "loop_batch_ms" in res:
        line += (
            f"; the per-token Python loop {res['loop_batch_ms']:.1f} ms "
            f"(x{res['speedup_vs_loop']:.0f})"
        )
    echo(line)
    return res


def bench_probe(
    cfg: RunConfig, out: Path, repeats: int = 3, echo: Callable[[str], None] = print
) -> dict:
    """Time each probe of an untrained model of `cfg`; writes `out/bench_probe.json`."""
    from attnlab import data as data_mod
    from attnlab import models
    from attnlab.probes.heads import attention_layers, head_scores
    from attnlab.probes.icl import icl_score
    from attnlab.probes.run import probe_set_for
    from attnlab.tasks import task_for
    from attnlab.train.run import device_kind, resolve

    if cfg.model.arch != "decoder":
        raise UserError("bench probe times the decoder probes (head scores, ICL)")
    ds = data_mod.build(cfg.data)
    cfg = resolve(cfg, ds, task_for(cfg).model_fields(cfg, ds))
    torch.manual_seed(cfg.train.seed)
    device = device_kind(cfg)
    model = models.build(cfg.model).to(device)
    p = cfg.probes
    pset = probe_set_for(cfg, model.vocab_size)
    layers = attention_layers(model)
    timed: dict[str, Callable[[int], object]] = {
        "icl_score": lambda _: icl_score(model, ds.splits["validation"], ds.batch_size, 10),
    }
    if layers:
        timed["head_scores"] = lambda _: head_scores(model, pset, p.batch_size, True)
        timed["head_scores_no_copying"] = lambda _: head_scores(model, pset, p.batch_size, False)
        timed["head_scores_last_layer"] = lambda _: head_scores(
            model, pset, p.batch_size, True, layers[-1:]
        )
    res = {
        "config": cfg.name,
        "device": device,
        "probe_sequences": len(pset.tokens),
        "probe_seq_len": int(pset.tokens.shape[1]),
        "icl_batches": 10,
        "seconds": {name: _median_s(fn, repeats) for name, fn in timed.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_probe.json").write_text(json.dumps(res, indent=2) + "\n")
    echo(
        f"probes of {cfg.name} on {device} ({res['probe_sequences']} x {res['probe_seq_len']}): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in res["seconds"].items())
    )
    return res
