"""`compare(run_dirs, out)`: a Markdown table and overlaid validation curves.

Reads run directories only (their `summary.json`, `metrics.jsonl` and `probes.json`).
"""

from __future__ import annotations

from pathlib import Path

from attnlab.errors import UserError
from attnlab.report import curves, line_plot, load_run, markdown_table
from attnlab.report.html import load_explorer_run, write_html
from attnlab.run_dir import COMPARE, COMPARE_REPORT, RunDir, atomic_write_text, write_json

HEADERS = [
    "model",
    "params",
    "best val loss (periodic)",
    "final val loss",
    "val accuracy",
    "val perplexity",
    "test loss",
    "tokens/s",
    "steps",
    "val targets",
    "max induction",
    "ICL score",
    "test word acc",
]


def probe_figures(run_dir: Path) -> tuple[float | None, float | None]:
    """(max induction score, ICL score) from a run's `probes.json`; None where not probed."""
    p = RunDir(run_dir).read_probes()
    if p is None or "heads" not in p:  # not probed, or a translation run's probes
        return None, None
    return p["heads"]["max_induction"]["score"], p.get("icl", {}).get("score")


def compare(run_dirs: list[Path], out: Path) -> Path:
    """Write `compare.md`, `compare.html`, `compare.json` (the run list, for `attnlab
    report`) and the validation curves into `out`; returns the .md."""
    if not run_dirs:
        raise UserError("compare needs at least one run directory")
    runs = [(Path(d), *load_run(Path(d))) for d in run_dirs]
    names = _unique_names([s["name"] for _, s, _ in runs])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        [
            n,
            s["params"],
            s.get("best_subset_val_loss", s.get("best_val_loss")),
            s["final_val_loss"],
            s["final_val_accuracy"],
            s["val_perplexity"],
            s["test_loss"],
            s["tokens_per_s"],
            s["steps"],
            s["final_eval_tokens"]["validation"],
            *probe_figures(d),
            s.get("test_word_accuracy"),
        ]
        for n, (d, s, _) in zip(names, runs, strict=True)
    ]
    for key, label, file in (
        ("loss", "validation loss", "val_loss.png"),
        ("accuracy", "validation accuracy", "val_accuracy.png"),
    ):
        series = {
            n: curves(recs, "validation", key) for n, (_, _, recs) in zip(names, runs, strict=True)
        }
        line_plot(series, "step", label, label, out / file)
    sources = "\n".join(f"- `{n}`: {d}" for n, (d, _, _) in zip(names, runs, strict=True))
    text = (
        "# Comparison\n\n"
        + markdown_table(HEADERS, rows)
        + "\nFinal figures: final weights, on the number of validation targets shown (the "
        "whole split unless the run capped `train.final_eval_batches`, then a fixed random "
        "subset). Best val loss: periodic evaluations on a fixed random validation subset "
        "(`train.eval_batches`), not comparable with the final figures. Max induction and "
        "ICL score: from `attnlab probe` (`probes.json`; – when the run was not probed). "
        "Test word acc: exact-match translations of a translation task (– for other tasks).\n\n"
        "![validation loss](val_loss.png)\n\n![validation accuracy](val_accuracy.png)\n\n"
        f"Runs:\n{sources}\n"
    )
    path = atomic_write_text(out / COMPARE_REPORT, text)
    write_json(out / COMPARE, {"runs": [str(Path(d).resolve()) for d, _, _ in runs]})
    explorer = [load_explorer_run(d, n) for n, (d, _, _) in zip(names, runs, strict=True)]
    write_html(path, [e for e in explorer if e is not None])
    return path


def _unique_names(names: list[str]) -> list[str]:
    """Suffix repeated run names with #2, #3 … so curves stay distinguishable."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out
