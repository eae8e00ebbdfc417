"""`attnlab study NAME`: one config folder × several seeds → trained, probed runs and a table.

A study is a folder of configs under `configs/` (files starting with `_` are bases). Each
model is trained with `train.seed` = 1 … seeds and probed; the table reports mean ± std
over seeds. Two kinds of table: `induction` (head scores, ICL score, and the phase-change
plot of `train.probe_every`) and `translation` (the Pig Latin ablation: losses, word
accuracies, parameters and the best cross-attention alignment). Runs go
to `OUT/runs/MODEL-sSEED`; a finished run (summary.json and probes.json) is kept when the
study is run again, so an interrupted study continues instead of starting over.

Runs are spread over `jobs` worker processes with cpu_count / jobs threads each: on a
2-core CPU two one-thread runs finish in about the time of one two-thread run. With
`jobs=1` they run one after another in the calling process.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from attnlab.config.load import PACKAGED
from attnlab.errors import UserError
from attnlab.report.plots import seed_lines_plot
from attnlab.report.tables import markdown_table
from attnlab.run_dir import RESULTS, STUDY_REPORT, RunDir, atomic_write_text, write_json
from attnlab.stats import format_pm


@dataclass(frozen=True)
class Study:
    """A named study: its config folder, its models (in table order) and the quick subset."""

    folder: str
    models: tuple[str, ...]
    quick: tuple[str, ...]
    finding: str
    kind: str = "induction"  # which table: induction | translation


STUDIES = {
    "induction": Study(
        folder="synthetic/induction",
        models=("attn_1layer", "attn_2layer", "smeared_1layer", "conv_k3_1layer", "conv_k5_1layer"),
        quick=("attn_1layer", "attn_2layer"),
        finding=(
            "Olsson et al. (2022): a 1-layer attention-only model forms no induction head and "
            "stays near chance on the repeat; 2 layers form one; 1 layer with smeared keys "
            "forms one too. Conv-Attn (a causal conv on the input of one layer) is the "
            "write-ups' question."
        ),
    ),
    "piglatin": Study(
        folder="piglatin/ablation",
        models=(
            "base",
            "pos_none",
            "pos_learned",
            "heads_4",
            "heads_16",
            "hidden_32",
            "layers_4",
            "layers_8",
        ),
        quick=("base", "pos_none"),
        finding=(
            "The third write-up's ablation of its Pig Latin encoder-decoder: positional "
            "encoding (none, sinusoidal, learned from sinusoidal), heads (4, 8, 16), hidden "
            "width (32, 64) and layers per side (2, 4, 8), each changed alone from the base "
            "(sinusoidal, 8 heads, hidden 64, 2 + 2 layers). Without positions the model "
            "sees each word as a bag of characters, so it cannot know which consonants "
            "lead."
        ),
        kind="translation",
    ),
    "mamba_discretization": Study(
        folder="mamba/discretization",
        models=("zoh_approx", "zoh", "bilinear"),
        quick=("zoh_approx", "zoh", "bilinear"),
        finding=(
            "The third write-up's comparison of Mamba discretisations on Pig Latin (prefix "
            "LM): Ā = exp(ΔA) with B̄ = ΔB (the paper's approximate zero-order hold), the "
            "exact zero-order hold B̄ = (exp(ΔA) − 1)/A · B, and the bilinear (Tustin) "
            "transform; same data, steps and seeds, so the discretisation is the only "
            "difference."
        ),
        kind="translation",
    ),
}


def _train_and_probe(config: str, seed: int, run_dir: str, threads: int | None) -> str:
    """Train one model of the study and probe it (in a worker process when threads is set)."""
    import torch

    from attnlab import runs
    from attnlab.config import load_config

    sets = [f"train.seed={seed}"]
    if threads is not None:  # a worker: no progress bars garbling each other
        torch.set_num_threads(threads)
        sets.append("train.progress=false")
    cfg = load_config(config, sets)
    runs.train(cfg, run_dir)
    runs.probe(run_dir)
    return run_dir


def _finished(run_dir: Path) -> bool:
    return RunDir(run_dir).is_finished() and RunDir(run_dir).is_probed()


def run_study(
    name: str,
    out: Path,
    seeds: int = 3,
    quick: bool = False,
    jobs: int | None = None,
    echo=print,
) -> Path:
    """Train, probe and tabulate a study; returns the path of `study.md`."""
    if name not in STUDIES:
        raise UserError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    if seeds < 1:
        raise UserError("--seeds must be >= 1")
    study = STUDIES[name]
    models = study.quick if quick else study.models
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    jobs = max(1, min(jobs or cpus, cpus))
    threads = max(1, cpus // jobs)
    todo = []
    for model in models:
        for seed in range(1, seeds + 1):
            run_dir = out / "runs" / f"{model}-s{seed}"
            if _finished(run_dir):
                continue
            if run_dir.exists():
                shutil.rmtree(run_dir)  # an interrupted run: start it again
            todo.append((str(PACKAGED / study.folder / f"{model}.yaml"), seed, str(run_dir)))
    t0 = time.perf_counter()
    echo(
        f"study {name}: {len(models)} models x {seeds} seeds, {len(todo)} runs to train "
        f"({jobs} at a time, {threads} thread(s) each)"
    )
    if todo and jobs == 1:  # in this process, with its threads
        for config, seed, run_dir in todo:
            _train_and_probe(config, seed, run_dir, None)
            echo(f"  done: {Path(run_dir).name}")
    elif todo:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_train_and_probe, *job, threads) for job in todo]
            for f in futures:
                echo(f"  done: {Path(f.result()).name}")
    wall = time.perf_counter() - t0
    results = collect(out, models, seeds, study.kind)
    write = write_translation_study if study.kind == "translation" else write_study
    path = write(out, study, name, results, wall, quick)
    echo(f"study {name}: {wall / 60:.1f} min")
    return path


def collect(out: Path, models: tuple[str, ...], seeds: int, kind: str = "induction") -> dict:
    """Per model and seed: the row a study `kind` tabulates, read from the run directory."""
    from attnlab.report import load_run

    row_of = {"induction": _induction_row, "translation": _translation_row}[kind]
    results = {}
    for model in models:
        rows = []
        for seed in range(1, seeds + 1):
            run_dir = out / "runs" / f"{model}-s{seed}"
            summary, records = load_run(run_dir)
            probes = RunDir(run_dir).read_probes()
            rows.append({"seed": seed, "run_dir": str(run_dir), **row_of(summary, records, probes)})
        results[model] = rows
    return results


def _induction_row(summary: dict, records: list[dict], probes: dict) -> dict:
    """The final figures and the probe records over training."""
    curve = [r for r in records if r["split"] == "probe"]
    return {
        "max_induction": probes["heads"]["max_induction"]["score"],
        "max_induction_head": probes["heads"]["max_induction"],
        "copy_ahead": probes["heads"]["max_copy_ahead"],
        "repeat_accuracy": summary["final_val_accuracy"],
        "icl_score": probes.get("icl", {}).get("score"),
        "uniform_induction": probes["heads"]["uniform"]["induction"],
        "vocab_size": summary["data"]["vocab_size"],
        "steps": [r["step"] for r in curve],
        "induction_by_step": [r["max_induction"] for r in curve],
        "accuracy_by_step": [r["repeat_accuracy"] for r in curve],
        "wall_s": summary["wall_s"],
    }


def _translation_row(summary: dict, records: list[dict], probes: dict) -> dict:
    """Translation scores, parameters and the best alignment."""
    t, align = summary["translation"], probes["alignment"]
    return {
        "params": summary["params"],
        "val_loss": t["validation"]["loss_per_char"],
        "val_word_accuracy": t["validation"]["word_accuracy"],
        "test_word_accuracy": t["test"]["word_accuracy"],
        "train_accuracy": t["train"]["char_accuracy"],
        "train_word_accuracy": t["train"]["word_accuracy"],
        "max_alignment": max((max(row) for row in align["scores"]), default=None),
        "uniform_alignment": align["uniform"],
        "wall_s": summary["wall_s"],
    }


def write_study(out: Path, study: Study, name: str, results: dict, wall: float, quick: bool):
    """`study.md`, `results.json` and the phase-change plots from collected results."""
    rows = []
    for model, runs in results.items():
        rows.append(
            [
                model,
                len(runs),
                format_pm([r["max_induction"] for r in runs], show_n=False),
                format_pm([r["copy_ahead"]["score"] for r in runs], show_n=False),
                ", ".join(f"+{r['copy_ahead']['offset']}" for r in runs),
                format_pm([r["repeat_accuracy"] for r in runs], show_n=False),
                format_pm(
                    [r["icl_score"] for r in runs if r["icl_score"] is not None], show_n=False
                ),
            ]
        )
    for key, label, file in (
        ("induction_by_step", "max induction score", "induction_by_step.png"),
        ("accuracy_by_step", "repeat accuracy (probe set)", "accuracy_by_step.png"),
    ):
        series = {m: [(r["steps"], r[key]) for r in runs] for m, runs in results.items()}
        seed_lines_plot(series, "step", label, f"{label} during training (thin: seeds)", out / file)
    any_run = next(iter(results.values()))[0]
    vocab = any_run["vocab_size"]
    text = (
        f"# Study: {name}{' (quick)' if quick else ''}\n\n{study.finding}\n\n"
        + markdown_table(
            [
                "model",
                "seeds",
                "max induction score",
                "max copy-ahead score",
                "its offset (per seed)",
                "repeat accuracy",
                "ICL score",
            ],
            rows,
        )
        + f"\nMean ± sample std over seeds. Chance: repeat accuracy 1/{vocab} = "
        f"{1 / vocab:.3f}; induction score of a uniform causal head "
        f"{any_run['uniform_induction']:.3f}. Max induction score: the largest induction "
        "score of any head on the fixed probe set (attention mass on the token after the "
        "earlier copy, averaged over the second copy). Max copy-ahead score: the same for the key "
        "j >= 1 tokens after the earlier copy, at the head and offset j where it is largest "
        "(j = 1 is induction; a conv window lets a head read the next token from j > 1). "
        "Repeat accuracy: final validation "
        "accuracy on the scored repeat. ICL score: loss at the late position minus the "
        "early one on validation sequences (negative: later tokens are predicted better).\n\n"
        "![max induction score by step](induction_by_step.png)\n\n"
        "![repeat accuracy by step](accuracy_by_step.png)\n\n"
        f"Wall time of this invocation: {wall / 60:.1f} min. Runs: `runs/`.\n"
    )
    return _save(out, results, text)


def _save(out: Path, results: dict, text: str) -> Path:
    """`results.json` and `study.md`; returns the latter's path."""
    write_json(out / RESULTS, results)
    return atomic_write_text(out / STUDY_REPORT, text)


TRANSLATION_COLUMNS = (
    ("params", "params"),
    ("val_loss", "val loss / char"),
    ("val_word_accuracy", "val word acc"),
    ("train_accuracy", "train char acc"),
    ("train_word_accuracy", "train word acc"),
    ("test_word_accuracy", "test word acc"),
    ("max_alignment", "best alignment"),
    ("wall_s", "wall (s)"),
)


def write_translation_study(
    out: Path, study: Study, name: str, results: dict, wall: float, quick: bool
) -> Path:
    """`study.md` and `results.json` of a translation ablation."""
    rows = []
    for model, runs in results.items():
        cells = []
        for key, _ in TRANSLATION_COLUMNS:
            vals = [r[key] for r in runs if r[key] is not None]
            if not vals:  # e.g. no attention layer to align
                cells.append("–")
            elif key in ("params", "wall_s"):
                cells.append(f"{sum(vals) / len(vals):,.0f}")
            else:
                cells.append(format_pm(vals, show_n=False) if len(vals) > 1 else f"{vals[0]:.4f}")
        rows.append([model, len(runs), *cells])
    uniform = next(iter(results.values()))[0]["uniform_alignment"]
    text = (
        f"# Study: {name}{' (quick)' if quick else ''}\n\n{study.finding}\n\n"
        + markdown_table(["model", "seeds", *(label for _, label in TRANSLATION_COLUMNS)], rows)
        + "\nVal loss: teacher-forced cross-entropy per target character (nats). Word "
        "accuracy: exact match of the greedy translation. Train char acc: teacher-forced "
        "character accuracy on as many training words as validation. Best alignment: the "
        "largest attention mass any cross-attention head puts on the source character it "
        f"is about to write (uniform over the word: {uniform:.3f}). Mean ± sample std "
        "over seeds where there are several.\n\n"
        f"Wall time of this invocation: {wall / 60:.1f} min. Runs: `runs/`.\n"
    )
    return _save(out, results, text)
