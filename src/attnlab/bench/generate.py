"""`attnlab bench generate`: cached against uncached greedy decoding, side by side.

Two models (untrained: the time does not depend on the weights): a 4-layer d128 attention
LM (4 heads, learned positions, MLP) and a 2-layer d128 Mamba. Each decodes `batch`
prompts of `prompt` tokens for `new` tokens (no end token, so every row runs to the end),
with the cache and without, each in a child process of its own (its peak memory is its
own). Recorded per run: tokens/s (`greedy`'s new tokens of all rows over its wall time),
peak memory, and for the cached run, stepped again with a clock around each step, the
per-token time early (the first 64 new tokens) and late (the last 64): flat for Mamba,
whose step is O(1), growing for attention, whose step reads every cached key. Nothing is
asserted; `bench_generate.json` and `.md` hold the figures, with the CPU's flags that
matter for speed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from attnlab.bench.child import peak_memory_mb, run_child
from attnlab.report.tables import markdown_table
from attnlab.train.precision import speed_flags

MODELS = {
    "attention (4 layers, d128)": {
        "d_model": 128,
        "n_layers": 4,
        "mixer": {"name": "attention", "n_heads": 4},
        "mlp": True,
    },
    "mamba (2 layers, d128)": {
        "d_model": 128,
        "n_layers": 2,
        "pos": "none",
        "mixer": {"name": "mamba"},
    },
}
VOCAB = 256
EDGE = 64  # new tokens in the early and late per-token means


def _child(spec: dict) -> dict:
    """One decoding run (in a child process): its tokens/s, per-token times and peak."""
    from attnlab.config import validate
    from attnlab.models import build
    from attnlab.models.generate import _Cached, greedy

    torch.manual_seed(0)
    torch.set_num_threads(spec["threads"])
    raw = {
        "data": {"task": "repeat_tokens", "vocab_size": VOCAB},
        "model": {**MODELS[spec["model"]], "max_seq_len": spec["prompt"] + spec["new"]},
    }
    model = build(validate(raw, "bench").model, VOCAB).eval()
    B, P, new = spec["batch"], spec["prompt"], spec["new"]
    prompt = torch.randint(1, VOCAB, (B, P), generator=torch.Generator().manual_seed(1))
    lengths = torch.full((B,), P)
    t0 = time.perf_counter()
    greedy(model, prompt, lengths, new, eos=-1, cache=spec["cache"])  # never ends early
    wall = time.perf_counter() - t0
    out = {"tokens_s": B * new / wall, "wall_s": wall, "peak_mb": peak_memory_mb()}
    if spec["cache"]:  # the per-token time along the sequence, step by step
        times = []
        with torch.no_grad():
            dec = _Cached(model, None, torch.arange(B))
            tok = prompt[:, 0]
            for t in range(P + new - 1):
                s = time.perf_counter()
                pred = dec.logits(tok, t).argmax(-1)
                times.append(time.perf_counter() - s)
                tok = prompt[:, t + 1] if t + 1 < P else pred
        k = min(EDGE, new)
        out["early_ms"] = 1e3 * sum(times[P - 1 : P - 1 + k]) / k
        out["late_ms"] = 1e3 * sum(times[-k:]) / k
    return out


def bench_generate(
    out: Path, batch: int = 8, prompt: int = 16, new: int = 512, threads: int = 1, echo=print
) -> dict:
    """Run every (model, cache) pair; write and return the results."""
    out.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    for name in MODELS:
        pair = {}
        for cache in (True, False):
            spec = {"model": name, "cache": cache, "batch": batch, "prompt": prompt}
            spec.update(new=new, threads=threads)
            r = run_child(["-m", "attnlab.bench.generate", json.dumps(spec)])
            pair[cache] = r
            results.append({**spec, **r})
            echo(f"{name}, cache={cache}: {r}")
        ok = all("tokens_s" in r for r in pair.values())
        speedup = pair[True]["tokens_s"] / pair[False]["tokens_s"] if ok else None
        for cache, r in pair.items():
            if "tokens_s" not in r:
                rows.append([name, str(cache), f"not run: {r.get('error', '')}", *[""] * 4])
                continue
            rows.append(
                [
                    name,
                    "cached" if cache else "full recomputation",
                    f"{r['tokens_s']:,.0f}",
                    f"{r['early_ms']:.2f} / {r['late_ms']:.2f}" if cache else "–",
                    f"{r['peak_mb']:,.0f}",
                    f"{speedup:.1f}x" if cache and speedup else "",
                ]
            )
    flags = speed_flags()
    meta = {
        "batch": batch,
        "prompt": prompt,
        "new": new,
        "threads": threads,
        "torch": torch.__version__,
        "cpu_flags": flags,
    }
    (out / "bench_generate.json").write_text(json.dumps({**meta, "results": results}, indent=1))
    text = (
        f"# Generation: cached vs full recomputation\n\nGreedy decoding, batch {batch}, "
        f"prompt {prompt}, {new} new tokens, {threads} thread(s), torch {torch.__version__}, "
        f"CPU flags: {', '.join(flags) or 'unknown'}.\n\n"
        + markdown_table(
            [
                "model",
                "decoding",
                "new tokens/s",
                f"ms/token, first / last {EDGE}",
                "peak MiB",
                "speed-up",
            ],
            rows,
        )
    )
    (out / "bench_generate.md").write_text(text + "\n", encoding="utf-8")
    echo(text)
    return {**meta, "results": results}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
