"""Pig Latin: training words/s and decoding words/s, attnlab vs the naive write-up style.

    python benchmarks/bench_piglatin.py [--steps 20] [--warmup 3] [--out FILE.json]

Training, at the base model's size (hidden 64, 2 + 2 layers, 8 heads, feed-forward 256,
batches of 128 words, AdamW): attnlab's `Seq2Seq` on batches cut to their longest word,
against `torch.nn.Transformer` (pre-norm, the same sizes) on batches padded to the data
set's longest word with key-padding and causal masks, as a write-up would build it.
Decoding the 2,000 validation words: attnlab's batched greedy decoder (512 words at once)
against one word at a time, re-running the whole model for each new character. Both
models are untrained, so the decoders run to the full length: the decoding figures are
upper bounds on the time a trained model needs. Each measurement runs in its own process
(peak RSS is its own). Nothing here asserts a time: it measures and prints.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from attnlab.bench.child import peak_memory_mb, run_child

BATCH = 128


def _data():
    from attnlab.cli import config_path
    from attnlab.config import load_config
    from attnlab.data import build
    from attnlab.tasks import task_for
    from attnlab.train.run import resolve

    cfg = load_config(config_path("piglatin/base_quick"))
    ds = build(cfg.data)
    return resolve(cfg, ds, task_for(cfg).model_fields(cfg, ds)), ds


class NaiveSeq2Seq(nn.Module):
    """The write-up style: nn.Transformer, embeddings · √D + fixed sinusoids, full padding."""

    def __init__(self, vocab: int, max_len: int):
        super().__init__()
        from attnlab.models.positional import sinusoid_table

        self.embed = nn.Embedding(vocab, 64)
        self.register_buffer("pos", sinusoid_table(max_len, 64))
        self.tf = nn.Transformer(64, 8, 2, 2, 256, dropout=0.0, batch_first=True, norm_first=True)
        self.out = nn.Linear(64, vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        pad = src == 0  # (B, S) True at padding
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        s = self.embed(src) * 8 + self.pos[: src.shape[1]]
        t = self.embed(tgt) * 8 + self.pos[: tgt.shape[1]]
        h = self.tf(s, t, src_key_padding_mask=pad, tgt_mask=mask, memory_key_padding_mask=pad)
        return self.out(h)  # (B, T, V)


def _batches(ds, steps: int, trimmed: bool):
    split = ds.splits["train"]
    for i in range(steps):
        ids = np.arange(i * BATCH, (i + 1) * BATCH)
        if trimmed:
            yield split.get(ids)
        else:  # full width, as a DataLoader over fixed-size tensors gives it
            rows = torch.from_numpy(split.rows[ids])
            mask = torch.from_numpy(split.mask[ids])
            src = torch.from_numpy(split.src[ids])
            yield src, rows[:, :-1], rows[:, 1:], mask


def bench_train(which: str, steps: int, warmup: int) -> dict:
    from attnlab import models
    from attnlab.train.losses import token_stats

    cfg, ds = _data()
    torch.manual_seed(0)
    if which == "attnlab":
        model = models.build(cfg.model)
    else:
        model = NaiveSeq2Seq(ds.vocab_size, ds.seq_len + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    times = []
    for i, b in enumerate(_batches(ds, warmup + steps, trimmed=which == "attnlab")):
        t0 = time.perf_counter()
        if which == "attnlab":
            loss, n, _ = token_stats(model(b.x, b.src), b.y, b.mask, accuracy=False)
            loss = loss / n
        else:
            src, x, y, mask = b
            logits = model(src, x)
            loss = nn.functional.cross_entropy(logits[mask], y[mask])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    return {"words_per_s": BATCH / step, "step_ms": 1000 * step}


def bench_decode(which: str, words: int) -> dict:
    from attnlab import models
    from attnlab.data.piglatin import CharVocab
    from attnlab.train.translate import translate

    cfg, ds = _data()
    torch.manual_seed(0)
    model = models.build(cfg.model).eval()
    split = ds.splits["validation"]
    t0 = time.perf_counter()
    if which == "attnlab":
        translate(model, split, ds.tokenizer, "cpu", max_words=words)
    else:
        with torch.no_grad():
            for i in range(words):
                n = int((split.src[i] > 0).sum())
                src = torch.from_numpy(split.src[i : i + 1, :n])
                seq = torch.tensor([[CharVocab.SOS]])
                for _ in range(split.max_new):
                    nxt = model(seq, src)[0, -1].argmax()
                    seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
                    if nxt == CharVocab.EOS:
                        break
    wall = time.perf_counter() - t0
    return {"words_per_s": words / wall, "words": words}


def _child(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.task == "train":
        res = bench_train(args.which, args.steps, args.warmup)
    else:
        res = bench_decode(args.which, args.words)
    res["peak_rss_mb"] = peak_memory_mb()
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--words", type=int, default=2000, help="attnlab decoding words")
    ap.add_argument("--naive-words", type=int, default=200, help="one-at-a-time words")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", nargs=2, metavar=("TASK", "WHICH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.task, args.which = args.child
        if args.which == "naive" and args.task == "decode":
            args.words = args.naive_words
        _child(args)
        return
    results = {}
    for task in ("train", "decode"):
        for which in ("naive", "attnlab"):
            cmd = [__file__, "--child", task, which]
            cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
            cmd += ["--words", str(args.words), "--naive-words", str(args.naive_words)]
            cmd += ["--threads", str(args.threads)]
            results[f"{task}/{which}"] = res = run_child(cmd, check=True)
            print(
                f"{task:6s} {which:8s} {res['words_per_s']:10,.0f} words/s  "
                f"peak RSS {res['peak_rss_mb']:,.0f} MB"
            )
    for task in ("train", "decode"):
        ratio = results[f"{task}/attnlab"]["words_per_s"] / results[f"{task}/naive"]["words_per_s"]
        results[f"{task}/speedup"] = ratio
        print(f"{task}: attnlab x{ratio:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
