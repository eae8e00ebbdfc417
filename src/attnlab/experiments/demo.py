"""`attnlab demo`: the smeared-keys study in minutes, offline.

Trains and probes three quick models on `repeat_tokens` (no download): a 1-layer attention-only
baseline, Attn-Attn (4 attention layers) and Conv-Attn (1 attention layer after a
depth-wise causal conv, k = 5). With a local WikiText copy (`--data-dir`) it trains the
same three on text too. Each set is compared, and `report.md` collects the tables.

The expected picture: the 1-layer baseline stays near chance on the repeat (it cannot
form an induction head: a single layer cannot attend "to the token after the previous
occurrence of the current token"), while Attn-Attn and Conv-Attn copy the repeat, the
conv giving one layer the previous-token information a second layer would otherwise add.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from attnlab import runs
from attnlab.config import load_config
from attnlab.config.load import PACKAGED, deep_merge, validate
from attnlab.errors import UserError
from attnlab.experiments.compare import compare
from attnlab.run_dir import REPORT, RunDir, atomic_write_text

MARKER = ".attnlab-demo"
MODELS = {  # run name → (quick config, overrides of its model section)
    "attn_only_1layer": ("smeared_keys/attn_attn_quick.yaml", {"n_layers": 1}),
    "attn_attn": ("smeared_keys/attn_attn_quick.yaml", {}),
    "conv_attn": ("smeared_keys/conv_attn_quick.yaml", {}),
}
# On repeat_tokens each architecture gets the learning rate that suits it (measured
# 2026-11-22, 600 steps, seed 42; see docs/LOG.md): attention-only stacks form the
# induction head at 1e-3 but not at 2e-3 or 3e-3; Conv-Attn learns fastest at 3e-3.
REPEAT_LR = {"attn_only_1layer": 1e-3, "attn_attn": 1e-3, "conv_attn": 3e-3}
# On text the demo keeps the quick configs' 150 steps; with its default trained BPE
# (8,192 tokens) that takes about a minute a model, with GPT-2's 50,257 about three.
WIKITEXT_TRAIN = {"final_eval_batches": 20}


def _prepare(out: Path) -> None:
    """Start from an empty `out`; only a previous demo's directory may be replaced."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UserError(f"{out} exists and was not made by the demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by attnlab demo; replaced by the next demo run\n")


def _study(
    title: str,
    data_task: dict,
    train_cfg: dict,
    out: Path,
    echo,
    lrs: dict[str, float] | None = None,
) -> tuple[str, Path]:
    """Train the three demo models on one task and compare them."""
    run_dirs = []
    for name, (file, model_over) in MODELS.items():
        quick = load_config(PACKAGED / file).model_dump(mode="json")
        train_over = {**train_cfg, "progress": False}
        if lrs:
            train_over["lr"] = lrs[name]
        raw = {
            "name": name,
            "data": data_task,
            "model": deep_merge(quick["model"], model_over),
            "train": deep_merge(quick["train"], train_over),
        }
        cfg = validate(raw, f"demo:{name}")
        echo(f"[{title}] training {name} (lr {cfg.train.lr:g}) ...")
        s = runs.run(cfg, out / name)
        best = RunDir(out / name).read_probes()["heads"]["max_induction"]
        echo(
            f"  val loss {s['final_val_loss']:.3f}, val accuracy {s['final_val_accuracy']:.3f}, "
            f"{s['params']:,} params, {s['tokens_per_s']:,.0f} tokens/s, {s['wall_s']:.0f} s; "
            f"max induction score {best['score']:.2f} (layer {best['layer']} head {best['head']})"
        )
        run_dirs.append(out / name)
    path = compare(run_dirs, out / "compare")
    return path.read_text(encoding="utf-8"), path


def run_demo(
    out: Path, data_dir: Path | None = None, tokenizer_dir: Path | None = None, echo=print
) -> Path:
    """Run the demo studies into `out` and write `out/report.md`; returns its path."""
    out = Path(out)
    _prepare(out)
    synth = load_config(PACKAGED / "synthetic/repeat_tokens.yaml").model_dump(mode="json")
    sections = []
    table, _ = _study(
        "repeat_tokens", synth["data"], synth["train"], out / "repeat_tokens", echo, REPEAT_LR
    )
    sections.append(("Repeated random tokens (induction)", "repeat_tokens", table))
    if data_dir is not None:
        text = {"task": "lm_text", "path": str(data_dir), "seq_len": 128, "batch_size": 16}
        if tokenizer_dir is not None:
            text.update(tokenizer="gpt2", tokenizer_path=str(tokenizer_dir))
        else:
            text.update(tokenizer="bpe", bpe_vocab_size=8192)
        quick_train = load_config(PACKAGED / MODELS["attn_attn"][0]).train.model_dump(mode="json")
        train_cfg = deep_merge(quick_train, WIKITEXT_TRAIN)
        table, _ = _study("wikitext", text, train_cfg, out / "wikitext", echo)
        sections.append(("WikiText (next-token prediction)", "wikitext", table))
    body = "\n".join(
        f"## {title}\n\n" + tbl.replace("# Comparison\n\n", "").replace("](", f"]({sub}/compare/")
        for title, sub, tbl in sections
    )
    return atomic_write_text(
        out / REPORT,
        "# attnlab demo: Attn-Attn vs Conv-Attn vs a 1-layer baseline\n\n"
        "On `repeat_tokens` the scored targets are the repeated tokens after the first, so "
        f"chance accuracy is 1 / {synth['data']['vocab_size']}. Learning rates on it: "
        + ", ".join(f"{k} {v:g}" for k, v in REPEAT_LR.items())
        + ".\n\n"
        + body,
    )
