"""`attnlab bench train CONFIG`: what a training step costs, against this machine's limit
and against the naive write-up-style model (`attnlab.bench.naive_lm`).

Each measurement runs in its own process, so its peak memory is its own:
- `peak`: this machine's matmul peak, the median FLOP/s of an n x n matmul (n = 2048 on
  CPU, 8192 on CUDA) in float32 and in bf16 (n = 512 for bf16 on a CPU without bf16
  units, which emulates it), with the same threads as the training runs;
- one process per variant — `naive` (as a write-up runs it), `naive-reuse` (the same with
  attnlab's CPU allocator setting, `train.memory.keep_freed_memory`, to tell the
  allocator's share from the model code's), `gpt-ref` (the best small-GPT code's model
  and step, `attnlab.bench.gpt_ref`, with that allocator setting), `32-true`,
  `bf16-mixed`, `16-mixed` (CUDA),
  `chunked` (float32 with `train.loss_chunk`), `bf16-chunked`, `32-tied` (float32 with
  tied embeddings, as the usual small-GPT code), `chunked-tied`, `bf16-chunked-tied`,
  `compile` (float32 with `torch.compile`):
  the median step time after warm-up, tokens/s, achieved FLOP/s and its share of the
  peak of the variant's matmul dtype, peak memory (CPU: the process's peak RSS; CUDA:
  peak allocated), the share of step time spent building batches, every step's loss,
  compile time (apart from the steps), and for `32-true` the time of the head-score
  probe (`probes.heads.head_scores`) on the run's probe set.

FLOPs per token (stated, as in the PaLM paper's appendix B): 6 N + 12 L D T, with N the
weights that take part in matmuls (linear and convolution weights, the unembedding
included; embedding and position tables excluded), L attention layers, D the width and T
the sequence length. The attention term counts the whole T x T score matrix; causal
kernels skip about half of it. Mamba's scan is not counted. The same useful FLOPs are
credited to the naive model. Nothing is asserted: the figures are written to
`bench_train.json` and `bench_train.md`.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from attnlab.bench.child import peak_memory_mb, run_child
from attnlab.config import validate
from attnlab.config.schema import RunConfig
from attnlab.errors import UserError
from attnlab.train.precision import cpu_has_bf16, cpu_model, matmul_peak, speed_flags
from attnlab.train.run import device_kind

VARIANTS = (
    "naive",
    "naive-reuse",
    "gpt-ref",
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "chunked",
    "bf16-chunked",
    "32-tied",
    "chunked-tied",
    "bf16-chunked-tied",
    "compile",
)
DEFAULT_CHUNK = 1024


def flops_per_token(model: torch.nn.Module, seq_len: int) -> dict:
    """{"matmul_params": N, "attention_layers": L, "flops_per_token": 6 N + 12 L D T}."""
    from attnlab.models.attention import Attention

    n = sum(
        m.weight.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.Linear | torch.nn.Conv1d)
    )
    layers = sum(isinstance(m, Attention) for m in model.modules())
    d = model.cfg.d_model
    return {
        "matmul_params": n,
        "attention_layers": layers,
        "flops_per_token": 6 * n + 12 * layers * d * seq_len,
    }


def _dataset(cfg: RunConfig, random_vocab: int | None, n_seq: int):
    """The config's data, or a memory-mapped stream of uniform random ids."""
    from attnlab import data as data_mod
    from attnlab.data import Dataset
    from attnlab.data.cache import smallest_uint
    from attnlab.data.splits import StreamSplit

    if random_vocab is None:
        return data_mod.build(cfg.data)
    T, B = getattr(cfg.data, "seq_len", None), cfg.data.batch_size
    if T is None:
        raise UserError(f"--random-data is for token-stream tasks, not {cfg.data.task}")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, random_vocab, n_seq * T + 1).astype(smallest_uint(random_vocab))
    path = Path(tempfile.mkdtemp()) / "tokens.npy"
    np.save(path, ids)
    split = StreamSplit(np.load(path, mmap_mode="r"), T)
    return Dataset({"train": split, "validation": split, "test": split}, random_vocab, T, B)


def _variant_config(cfg: RunConfig, variant: str, steps: int) -> RunConfig:
    """The config of one variant: its precision (`bf16-…` bf16-mixed, else float32), the
    chunked loss for `…chunked…`, tied embeddings for `…tied`."""
    t = {"max_steps": steps, "progress": False, "compile": False, "check_causal": False}
    t["precision"] = "bf16-mixed" if variant.startswith("bf16") else "32-true"
    if variant == "16-mixed":
        t["precision"] = "16-mixed"
    t["loss_chunk"] = (cfg.train.loss_chunk or DEFAULT_CHUNK) if "chunked" in variant else None
    model = cfg.model
    if "tied" in variant:
        model = model.model_copy(update={"tie_embeddings": True})
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=t), "model": model})


def _run_attnlab(cfg: RunConfig, variant: str, steps: int, warmup: int, ds) -> dict:
    from attnlab import models
    from attnlab.tasks import task_for
    from attnlab.train.loop import Trainer
    from attnlab.train.memory import keep_freed_memory
    from attnlab.train.optim import make_optimizer
    from attnlab.train.run import _fabric, resolve

    cfg = _variant_config(cfg, variant, warmup + steps)
    cfg = resolve(cfg, ds, task_for(cfg).model_fields(cfg, ds))
    if device_kind(cfg) == "cpu":
        keep_freed_memory()
    torch.manual_seed(cfg.train.seed)
    model = models.build(cfg.model)
    fabric = _fabric(cfg, cfg.train.precision)
    to_wrap = torch.compile(model) if variant == "compile" else model
    wrapped, opt = fabric.setup(to_wrap, make_optimizer(model, cfg.train))
    out: dict = {"precision": cfg.train.precision, "loss_chunk": cfg.train.loss_chunk}
    out.update(flops_per_token(model, ds.seq_len), params=model.num_params())
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(fabric, wrapped, model, opt, ds, cfg.train, Path(tmp))
        if variant == "compile":
            out["compile_s"] = trainer.compile_now(0)

        def step(i: int) -> tuple[float, float]:
            return trainer.step(i), trainer.step_data_s

        out.update(_timed_steps(step, steps, warmup))
    if variant == "32-true" and cfg.model.arch == "decoder" and cfg.model.mixer.name != "mamba":
        from attnlab.probes.heads import head_scores
        from attnlab.probes.run import probe_set_for

        pset = probe_set_for(cfg, model.vocab_size)
        t0 = time.perf_counter()
        head_scores(model, pset, cfg.probes.batch_size, cfg.probes.copying, cfg.probes.layers)
        out["probe_s"] = time.perf_counter() - t0
        out["probe_sequences"] = len(pset.tokens)
    return out


def naive_fits(cfg: RunConfig) -> str | None:
    """Why the naive model cannot stand in for this config's model (None when it can)."""
    m = cfg.model
    if m.arch != "decoder" or m.mixer.name != "attention":
        return "the naive reference is an attention-only decoder"
    if m.mlp or m.mixer.smear_keys or m.pos != "learned" or m.norm != "layernorm":
        return "the naive reference has no MLP, no smeared keys, learned positions, LayerNorm"
    if m.mixer.conv_kernel and (m.n_layers != 1 or m.mixer.conv_where != "input"):
        return "the naive reference's convolution is one, before a single attention layer"
    return None


def gpt_fits(cfg: RunConfig) -> str | None:
    """Why the nanoGPT-style reference cannot stand in for this config's model (None when
    it can)."""
    m = cfg.model
    if m.arch != "decoder" or m.mixer.name != "attention":
        return "the gpt reference is an attention decoder"
    if m.mixer.conv_kernel or m.mixer.smear_keys or m.pos != "learned" or m.norm != "layernorm":
        return "the gpt reference has no conv or smeared keys, learned positions, LayerNorm"
    if m.mlp and m.ff_width != 4 * m.d_model:
        return "the gpt reference's MLP is 4 x d_model wide"
    return None


def _run_gpt(cfg: RunConfig, steps: int, warmup: int, ds) -> dict:
    from attnlab.bench.gpt_ref import GPTRef, gpt_optimizer, gpt_step
    from attnlab.data.splits import train_ids
    from attnlab.train.memory import keep_freed_memory

    device, m, t = device_kind(cfg), cfg.model, cfg.train
    if device == "cpu":
        keep_freed_memory()  # attnlab's allocator setting: only the model and step differ
    torch.manual_seed(t.seed)
    model = GPTRef(ds.vocab_size, m.d_model, m.mixer.n_heads, m.n_layers, ds.seq_len, m.mlp)
    model = model.to(device)
    opt = gpt_optimizer(model, t.lr, t.weight_decay, t.betas)
    split = ds.splits["train"]

    def step(i: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        batch = split.get(train_ids(split.num_sequences, ds.batch_size, t.seed, i)).to(device)
        data_s = time.perf_counter() - t0
        x, y = batch.x.contiguous(), batch.y.contiguous()  # as nanoGPT's batches are
        return gpt_step(model, opt, x, y), data_s

    return {"precision": "32-true", **_timed_steps(step, steps, warmup)}


def _run_naive(cfg: RunConfig, steps: int, warmup: int, ds, reuse: bool) -> dict:
    from attnlab.bench.naive_lm import NaiveLM, naive_step
    from attnlab.data.splits import train_ids
    from attnlab.train.memory import keep_freed_memory

    device, m, t = device_kind(cfg), cfg.model, cfg.train
    if device == "cpu" and reuse:
        keep_freed_memory()  # the same allocator as attnlab: only the model code differs
    torch.manual_seed(t.seed)
    model = NaiveLM(
        ds.vocab_size, m.d_model, m.mixer.n_heads, m.n_layers, ds.seq_len, m.mixer.conv_kernel
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    split = ds.splits["train"]

    def step(i: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        batch = split.get(train_ids(split.num_sequences, ds.batch_size, t.seed, i)).to(device)
        data_s = time.perf_counter() - t0
        x, y = batch.x.contiguous(), batch.y.contiguous()  # the write-ups' .view needs these
        return naive_step(model, opt, x, y), data_s

    return {"precision": "32-true", **_timed_steps(step, steps, warmup)}


def _timed_steps(step: Callable[[int], tuple[float, float]], steps: int, warmup: int) -> dict:
    times, data, losses = [], [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss, data_s = step(i)  # the loss is read back, so the device has finished
        dt = time.perf_counter() - t0
        losses.append(loss)
        if i >= warmup:
            times.append(dt)
            data.append(data_s)
    return {
        "step_s": statistics.median(times),
        "data_share": sum(data) / sum(times),
        "losses": losses,
    }


def child(spec: dict) -> dict:
    """One measurement (`spec["what"]`: peak or a variant), in this process."""
    cfg = validate(spec["config"], "bench")
    device = device_kind(cfg)
    if spec["what"] == "peak":
        n = 8192 if device == "cuda" else 2048
        # a CPU without bf16 units emulates bf16 matmuls some 50x slower than float32: a
        # small one measures that rate as well, in seconds instead of minutes a round
        bf16_n = n if device == "cuda" or cpu_has_bf16() is not False else 512
        return {
            "device": device,
            "n": n,
            "bf16_n": bf16_n,
            "float32_flops": matmul_peak(device, torch.float32, n),
            "bf16_flops": matmul_peak(device, torch.bfloat16, bf16_n),
        }
    ds = _dataset(cfg, spec["random_vocab"], max(256, 4 * cfg.data.batch_size))
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32
    if spec["what"].startswith("naive"):
        res = _run_naive(cfg, spec["steps"], spec["warmup"], ds, spec["what"] == "naive-reuse")
    elif spec["what"] == "gpt-ref":
        res = _run_gpt(cfg, spec["steps"], spec["warmup"], ds)
    else:
        res = _run_attnlab(cfg, spec["what"], spec["steps"], spec["warmup"], ds)
    res.update(
        variant=spec["what"],
        device=device,
        peak_memory_mb=peak_memory_mb(device),
        tokens_per_step=ds.batch_size * ds.seq_len,
        threads=torch.get_num_threads(),
    )
    return res


def _spawn(spec: dict) -> dict:
    return {"variant": spec["what"], **run_child(["-m", "attnlab.bench.train", json.dumps(spec)])}


def _derive(results: list[dict], peak: dict) -> None:
    """Add tokens/s, FLOP/s, the share of the matmul peak and the ratios, in place."""
    ours = [r for r in results if "flops_per_token" in r]
    fpt = ours[0]["flops_per_token"] if ours else None
    by = {r["variant"]: r for r in results if "step_s" in r}
    for r in by.values():
        r["tokens_per_s"] = r["tokens_per_step"] / r["step_s"]
        r["final_loss"] = r["losses"][-1]
        if fpt is not None:
            r["flops_per_s"] = r["tokens_per_s"] * fpt
            key = "float32_flops" if r["precision"] == "32-true" else "bf16_flops"
            if r["precision"] == "16-mixed":  # fp16 and bf16 share the tensor-core rate
                key = "bf16_flops"
            if key in peak:
                r["share_of_peak"] = r["flops_per_s"] / peak[key]
                r["peak_dtype"] = key.removesuffix("_flops")
    for r in by.values():
        for ref in ("naive", "32-true", "gpt-ref"):
            if ref in by and ref != r["variant"]:
                b = by[ref]
                r[f"speed_vs_{ref}"] = r["tokens_per_s"] / b["tokens_per_s"]
                r[f"memory_vs_{ref}"] = r["peak_memory_mb"] / b["peak_memory_mb"]
                r[f"final_loss_vs_{ref}"] = r["final_loss"] / b["final_loss"] - 1


def table(results: list[dict]) -> str:
    """The Markdown table of a bench's variants."""
    from attnlab.report.tables import markdown_table

    rows = []
    for r in results:
        if "step_s" not in r:
            why = r.get("skipped") or r.get("error", "")
            rows.append([r["variant"], f"not run: {why}", *[None] * 10])
            continue
        rows.append(
            [
                r["variant"],
                round(r["step_s"], 3),
                round(r["tokens_per_s"]),
                r.get("speed_vs_naive"),
                r.get("speed_vs_gpt-ref"),
                round(r["flops_per_s"] / 1e9, 1) if "flops_per_s" in r else None,
                f"{r['share_of_peak']:.0%}" if "share_of_peak" in r else None,
                round(r["peak_memory_mb"]),
                r.get("memory_vs_naive"),
                r["data_share"],
                r["final_loss"],
                r.get("compile_s"),
            ]
        )
    headers = [
        "variant",
        "step s",
        "tokens/s",
        "x naive",
        "x gpt-ref",
        "GFLOP/s",
        "of peak",
        "peak MB",
        "mem x naive",
        "data share",
        "last loss",
        "compile s",
    ]
    return markdown_table(headers, rows)


def _skip_reason(cfg: RunConfig, variant: str, device: str) -> str | None:
    """Why `variant` cannot run for this config on `device` (None when it can)."""
    if variant.startswith("naive"):
        return naive_fits(cfg)
    if variant == "gpt-ref":
        return gpt_fits(cfg)
    if variant == "16-mixed" and device == "cpu":
        return "fp16 with loss scaling is for CUDA"
    return None


def _merge_rounds(rounds: list[dict]) -> dict:
    """One variant's measurement over rounds: the median step time and data share, the
    largest peak memory, the first round's losses, and every round's step time."""
    ok = [r for r in rounds if "step_s" in r]
    if not ok:
        return rounds[0]
    merged = dict(ok[0])
    merged["step_s"] = statistics.median(r["step_s"] for r in ok)
    merged["data_share"] = statistics.median(r["data_share"] for r in ok)
    merged["peak_memory_mb"] = max(r["peak_memory_mb"] for r in ok)
    if len(rounds) > 1:
        merged["round_step_s"] = [r.get("step_s") for r in rounds]
    return merged


def bench_train(
    cfg: RunConfig,
    out: Path,
    variants: list[str],
    steps: int,
    warmup: int,
    random_vocab: int | None = None,
    echo: Callable[[str], None] = print,
    rounds: int = 1,
) -> dict:
    """Measure `variants` of one config, each in its own process; writes
    `out/bench_train.json` and `out/bench_train.md` and returns the JSON.

    With `rounds` > 1 the variants run in turn that many times (A B C, A B C, …), so a
    machine whose speed drifts (a shared host's AMX throughput moved 2x within an hour
    here) slows each variant alike; each variant reports its median round and the matmul
    peak its median over the rounds' measurements."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise UserError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if rounds < 1:
        raise UserError("--rounds must be >= 1")
    device = device_kind(cfg)
    base = {"config": json.loads(cfg.model_dump_json()), "steps": steps, "warmup": warmup}
    base["random_vocab"] = random_vocab
    skipped = {v: _skip_reason(cfg, v, device) for v in variants}
    peaks: list[dict] = []
    measured: dict[str, list[dict]] = {v: [] for v in variants if not skipped[v]}
    for r in range(rounds):
        tag = f" (round {r + 1} of {rounds})" if rounds > 1 else ""
        echo(f"matmul peak on {device}{tag} …")
        peaks.append(_spawn({**base, "what": "peak"}))
        for v in measured:
            echo(f"{v}{tag} …")
            measured[v].append(_spawn({**base, "what": v}))
    peak = dict(peaks[0])
    for key in ("float32_flops", "bf16_flops"):
        if all(key in p for p in peaks):
            peak[key] = statistics.median(p[key] for p in peaks)
    results = [
        {"variant": v, "skipped": skipped[v]} if skipped[v] else _merge_rounds(measured[v])
        for v in variants
    ]
    _derive(results, peak)
    tokens = next((r["tokens_per_step"] for r in results if "tokens_per_step" in r), None)
    flags = speed_flags()
    report = {
        "config": cfg.name,
        "device": device,
        "cpu": cpu_model(),
        "cpu_flags": flags,
        "torch": torch.__version__,
        "steps": steps,
        "warmup": warmup,
        "rounds": rounds,
        "tokens_per_step": tokens,
        "random_data": random_vocab,
        "matmul_peak": peak,
        "flops_formula": "6 N + 12 L D T per token (N matmul weights, L attention layers)",
        "results": results,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_train.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# bench train: {cfg.name} on {device} (torch {torch.__version__})", ""]
    bf16 = [f for f in flags if f in ("avx512_bf16", "amx_bf16")]
    lines.append(
        f"CPU: {cpu_model()}; flags {', '.join(flags) or 'unknown'}; bf16: "
        + ("native (" + ", ".join(bf16) + ")" if bf16 else "no avx512_bf16 / AMX (emulated)")
    )
    if "float32_flops" in peak:
        lines.append(
            f"matmul peak (n = {peak['n']}): float32 {peak['float32_flops'] / 1e9:,.1f} GFLOP/s, "
            f"bf16 {peak['bf16_flops'] / 1e9:,.1f} GFLOP/s"
            + (f" (n = {bn})" if (bn := peak.get("bf16_n", peak["n"])) != peak["n"] else "")
            + f"; {tokens} tokens per step, median "
            f"of {steps} steps after {warmup} warm-up"
            + (f"; the median of {rounds} rounds run in turn" if rounds > 1 else "")
        )
    probe = next((r for r in results if "probe_s" in r), None)
    if probe:
        lines.append(
            f"probe: head scores of {probe['probe_sequences']} sequences in "
            f"{probe['probe_s']:.2f} s"
        )
    lines += ["", table(results)]
    (out / "bench_train.md").write_text("\n".join(lines))
    echo("\n".join(lines))
    return report


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
