"""`attnlab demo`: the smeared-keys question in minutes, offline, as a packaged sweep.

Runs the sweep `sweeps/demo.yaml` — a 1-layer attention-only baseline, Attn-Attn (4
attention layers) and Conv-Attn (1 attention layer after a depth-wise causal conv, k = 5)
on `repeat_tokens` (no download), each trained, probed and reported — and, with a local
WikiText copy (`--data-dir`), `sweeps/demo_text.yaml` (the same three on text). `report.md`
collects the sweeps' tables; each sweep directory holds its own report and the runs.

The expected picture: the 1-layer baseline stays near chance on the repeat (it cannot
form an induction head: a single layer cannot attend "to the token after the previous
occurrence of the current token"), while Attn-Attn and Conv-Attn copy the repeat, the
conv giving one layer the previous-token information a second layer would otherwise add.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from attnlab.config.load import config_path
from attnlab.errors import UserError
from attnlab.experiments.sweep import run_sweep
from attnlab.experiments.sweep_results import load_trials
from attnlab.run_dir import PLOTS, REPORT, RunDir, atomic_write_text

MARKER = ".attnlab-demo"
SWEEPS = {  # sub-directory → (title, packaged sweep)
    "repeat_tokens": ("Repeated random tokens (induction)", "sweeps/demo"),
    "wikitext": ("WikiText (next-token prediction)", "sweeps/demo_text"),
}


def _prepare(out: Path) -> None:
    """Start from an empty `out`; only a previous demo's directory may be replaced."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UserError(f"{out} exists and was not made by the demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by attnlab demo; replaced by the next demo run\n")


def _echo_runs(sweep_dir: Path, echo) -> None:
    """One line per trained run: its figures and its max induction score."""
    _, trials = load_trials(sweep_dir)
    for t in sorted(trials, key=lambda t: t["number"]):
        for rel in t.get("run_dirs") or []:
            rd = RunDir(sweep_dir / rel)
            if not rd.is_finished():
                continue
            s, best = rd.read_summary(), rd.read_probes()["heads"]["max_induction"]
            echo(
                f"  {t['label']}: val loss {s['final_val_loss']:.3f}, val accuracy "
                f"{s['final_val_accuracy']:.3f}, {s['params']:,} params, "
                f"{s['tokens_per_s']:,.0f} tokens/s, {s['wall_s']:.0f} s; max induction score "
                f"{best['score']:.2f} (layer {best['layer']} head {best['head']})"
            )


def run_demo(
    out: Path, data_dir: Path | None = None, tokenizer_dir: Path | None = None, echo=print
) -> Path:
    """Run the demo sweeps into `out` and write `out/report.md`; returns its path."""
    out = Path(out)
    _prepare(out)
    todo = ["repeat_tokens"]
    sets: list[str] = []
    if data_dir is not None:
        todo.append("wikitext")
        sets.append(f"data.path={data_dir}")
        if tokenizer_dir is not None:
            sets += ["data.tokenizer=gpt2", f"data.tokenizer_path={tokenizer_dir}"]
    sections = []
    for sub in todo:
        title, spec = SWEEPS[sub]
        echo(f"[{sub}] training, probing and reporting three models ...")
        sweep_dir = run_sweep(
            config_path(spec), out / sub, sets=sets if sub == "wikitext" else None, echo=echo
        )
        _echo_runs(sweep_dir, echo)
        body = (sweep_dir / REPORT).read_text(encoding="utf-8").split("\n", 1)[1]
        body = body.replace("## ", "### ").replace(f"]({PLOTS}/", f"]({sub}/{PLOTS}/")
        sections.append(f"## {title}\n{body}")
    return atomic_write_text(
        out / REPORT,
        "# attnlab demo: Attn-Attn vs Conv-Attn vs a 1-layer baseline\n\n"
        "Each section is a sweep (its directory holds the runs, `report.md` and "
        "`report.html`); each run's own report has its probes and attention explorer.\n\n"
        + "\n".join(sections),
    )
