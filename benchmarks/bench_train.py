"""Training throughput and peak memory: attnlab's Attn-Attn / Conv-Attn vs the naive model.

    python benchmarks/bench_train.py [--steps 8] [--warmup 3] [--batch 8] [--out FILE.json]

With --allocators it also measures `naive+reuse` (the naive model with attnlab's
`keep_freed_memory`) and `attnlab-freeing` (attnlab without it), to separate the
allocator's share from the model code's. Each measurement runs in its own process (so peak RSS is
its own) at the write-up's width:
d_model 512, 8 heads, vocabulary 50257, seq 256, batch 8; Attn-Attn = 4 attention layers,
Conv-Attn = 1 layer after a k=5 depth-wise conv. attnlab runs its real training step
(`Trainer.step`: Fabric, padded vocabulary, SDPA, summed loss, AdamW, clipping); the naive
model runs `naive_step`. Tokens/s counts input tokens of optimizer steps after warm-up.
Nothing here asserts a time: it measures and prints.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ARCHS = {"attn_attn": {"n_layers": 4, "conv": None}, "conv_attn": {"n_layers": 1, "conv": 5}}
V, D, H, T = 50257, 512, 8, 256


def run_naive(arch: str, batch: int, steps: int, warmup: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from naive import NaiveLM, naive_step

    torch.manual_seed(0)
    a = ARCHS[arch]
    model = NaiveLM(V, D, H, a["n_layers"], T, a["conv"])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (batch, T + 1), generator=g)
    times, losses = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        losses.append(naive_step(model, opt, x[:, :-1].contiguous(), x[:, 1:].contiguous()))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"times": times, "losses": losses}


def run_attnlab(
    arch: str, batch: int, steps: int, warmup: int, precision: str, heap_reuse: bool = True
) -> dict:
    from attnlab import models
    from attnlab.config import validate
    from attnlab.data import Dataset
    from attnlab.data.splits import StreamSplit
    from attnlab.train.loop import Trainer
    from attnlab.train.memory import keep_freed_memory
    from attnlab.train.optim import make_optimizer
    from attnlab.train.run import _fabric, resolve

    a = ARCHS[arch]
    mixer = {"n_heads": H, **({"conv_kernel": a["conv"]} if a["conv"] else {})}
    cfg = validate(
        {
            "data": {"task": "lm_text", "path": "-", "seq_len": T, "batch_size": batch},
            "model": {"d_model": D, "n_layers": a["n_layers"], "mixer": mixer},
            "train": {
                "max_steps": warmup + steps,
                "precision": precision,
                "lr": 3e-4,
                "accelerator": "cpu",
                "progress": False,
            },
        }
    )
    if heap_reuse:
        keep_freed_memory()
    tokens = np.random.default_rng(0).integers(0, V, batch * 64 * T + 1).astype(np.uint16)
    split = StreamSplit(tokens, T)
    ds = Dataset({"train": split, "validation": split, "test": split}, V, T, batch)
    cfg = resolve(cfg, ds)
    torch.manual_seed(0)
    model = models.build(cfg.model)
    fabric = _fabric(cfg)
    wrapped, opt = fabric.setup(model, make_optimizer(model, cfg.train))
    trainer = Trainer(fabric, wrapped, model, opt, ds, cfg.train, Path("."))
    times, losses = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        losses.append(trainer.step(i))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"times": times, "losses": losses}


def child(args) -> None:
    if args.impl.startswith("naive"):
        if args.impl == "naive+reuse":
            from attnlab.train.memory import keep_freed_memory

            keep_freed_memory()
        res = run_naive(args.arch, args.batch, args.steps, args.warmup)
    else:
        res = run_attnlab(
            args.arch,
            args.batch,
            args.steps,
            args.warmup,
            args.precision,
            heap_reuse=args.impl == "attnlab",
        )
    med = float(np.median(res["times"]))
    res.update(
        impl=args.impl,
        arch=args.arch,
        precision=args.precision,
        batch=args.batch,
        step_s_median=med,
        tokens_per_s=args.batch * T / med,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
    )
    print(json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--bf16", action="store_true", help="also measure attnlab in bf16-mixed")
    p.add_argument(
        "--no-heap-reuse",
        action="store_true",
        help="also measure attnlab with glibc's default allocator settings",
    )
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", default="attnlab", help=argparse.SUPPRESS)
    p.add_argument("--arch", default="attn_attn", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="32-true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    runs = []
    plan = [(impl, arch, "32-true") for arch in ARCHS for impl in ("naive", "attnlab")]
    if args.bf16:
        plan += [("attnlab", arch, "bf16-mixed") for arch in ARCHS]
    if args.allocators:
        plan += [
            (impl, arch, "32-true") for arch in ARCHS for impl in ("naive+reuse", "attnlab-freeing")
        ]
    for impl, arch, prec in plan:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--impl",
            impl,
            "--arch",
            arch,
            "--precision",
            prec,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--batch",
            str(args.batch),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        res = json.loads(out.strip().splitlines()[-1])
        runs.append(res)
        print(
            f"{impl:8s} {arch:10s} {prec:10s} {res['tokens_per_s']:8.0f} tok/s "
            f"step {res['step_s_median']:.3f} s  peak RSS {res['peak_rss_mb']:,.0f} MB",
            flush=True,
        )
    base = {r["arch"]: r for r in runs if r["impl"] == "naive"}
    print("\nratio to the naive implementation (tokens/s, peak RSS):")
    for r in runs:
        if r["impl"] != "naive":
            b = base[r["arch"]]
            speed = r["tokens_per_s"] / b["tokens_per_s"]
            memory = r["peak_rss_mb"] / b["peak_rss_mb"]
            name = f"{r['impl']:15s} {r['arch']:10s} {r['precision']:10s}"
            print(f"  {name} x{speed:.2f} speed, x{memory:.2f} memory")
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
