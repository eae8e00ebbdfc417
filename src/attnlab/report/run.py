"""One run's report: `report.md`, `report.html` and `plots/`, drawn from its files."""

from __future__ import annotations

import json
from pathlib import Path

from attnlab.errors import UserError
from attnlab.report.plots import line_plot
from attnlab.report.tables import markdown_table
from attnlab.run_dir import METRICS, PROBES, REPORT, SUMMARY


def load_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """(summary, metrics records) of a finished run; a clear error when it is not one."""
    run_dir = Path(run_dir)
    summary_path, metrics_path = run_dir / SUMMARY, run_dir / METRICS
    if not summary_path.is_file():
        raise UserError(f"{run_dir} is not a finished run directory (no summary.json)")
    from attnlab.run_dir import read_metrics

    return json.loads(summary_path.read_text()), read_metrics(metrics_path)


def curves(records: list[dict], split: str, key: str) -> tuple[list, list]:
    """(steps, values) of `key` over the periodic records of one split."""
    pts = [
        (r["step"], r[key])
        for r in records
        if r["split"] == split and not r.get("final") and r.get(key) is not None
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def probe_curves(metrics_path: Path, plots: Path) -> dict | None:
    """Plot the `probe` records of `train.probe_every` against the step; None without any."""
    from attnlab.run_dir import read_metrics

    path = Path(metrics_path)
    recs = [r for r in read_metrics(path) if r["split"] == "probe"] if path.is_file() else []
    if not recs:
        return None
    steps = [r["step"] for r in recs]
    line_plot(
        {
            "max induction score": (steps, [r["max_induction"] for r in recs]),
            "repeat accuracy (probe set)": (steps, [r["repeat_accuracy"] for r in recs]),
        },
        "step",
        "score",
        "when the induction head forms",
        plots / "induction_by_step.png",
    )
    line_plot(
        {"ICL score": (steps, [r["icl_score"] for r in recs])},
        "step",
        "loss(late) - loss(early), nats",
        "in-context learning score",
        plots / "icl_by_step.png",
    )
    return {"records": len(recs), "plots": ["plots/induction_by_step.png", "plots/icl_by_step.png"]}


SUMMARY_KEYS = [
    ("params", "parameters"),
    ("steps", "steps"),
    ("final_val_loss", "final val loss"),
    ("best_subset_val_loss", "best val loss (periodic evals)"),
    ("final_val_accuracy", "final val accuracy"),
    ("val_perplexity", "val perplexity"),
    ("test_loss", "test loss"),
    ("test_accuracy", "test accuracy"),
    ("tokens_per_s", "training tokens/s"),
    ("wall_s", "wall time (s)"),
    ("seed", "seed"),
]


def _translation(run_dir: Path, summary: dict, records: list[dict]) -> str:
    """Scores, mistakes and figures of a translation run."""
    from attnlab.report.translation_section import errors_by_length_plot, scores_section

    plots = run_dir / "plots"
    details_path = run_dir / "translations.json"
    details = json.loads(details_path.read_text()) if details_path.is_file() else {}
    details.pop("scores", None)
    if details:
        errors_by_length_plot(details, plots / "errors_by_length.png")
    line_plot(
        {"validation": curves(records, "validation", "word_accuracy")},
        "step",
        "word accuracy (exact match)",
        f"{summary['name']}: word accuracy",
        plots / "word_accuracy.png",
    )
    return scores_section(summary, details, summary["data"]["vocab_size"])


def eval_sets_note(summary: dict) -> str:
    """One sentence on what the final and the periodic figures were measured on."""
    sets = summary.get("eval_sets")
    if sets is None:  # a run from before eval_sets
        return "Final figures: final weights; best val loss: periodic evaluations."

    def on(note: dict) -> str:
        if note["subset"] is None:
            return f"all {note['of']:,} sequences"
        return f"{note['sequences']:,} of {note['of']:,} sequences ({note['subset']})"

    return (
        f"Final validation and test figures use the final weights, on "
        f"{on(sets['final_validation'])} of validation and {on(sets['final_test'])} of test; "
        f"the periodic evaluations (the curves, the best val loss and `best.safetensors`) "
        f"use {on(sets['periodic_validation'])} of validation, the same ones every time. "
        "Do not compare a periodic figure with a final one."
    )


def write_run_report(run_dir: Path) -> Path:
    """Write `report.md`, `report.html` (with the attention explorer when the run was
    probed) and `plots/` for one run."""
    run_dir = Path(run_dir)
    summary, records = load_run(run_dir)
    plots = run_dir / "plots"
    line_plot(
        {
            "train": curves(records, "train", "loss"),
            "validation": curves(records, "validation", "loss"),
        },
        "step",
        "loss (nats / token)",
        f"{summary['name']}: loss",
        plots / "loss.png",
    )
    line_plot(
        {"validation": curves(records, "validation", "accuracy")},
        "step",
        "next-token accuracy",
        f"{summary['name']}: accuracy",
        plots / "accuracy.png",
    )
    rows = [[label, summary.get(key)] for key, label in SUMMARY_KEYS]
    text = (
        f"# Run report: {summary['name']}\n\n"
        f"Device `{summary['device']}`, precision `{summary['precision']}`, "
        f"attnlab {summary['versions']['attnlab']}, torch {summary['versions']['torch']}.\n\n"
        + markdown_table(["metric", "value"], rows)
        + "\n"
        + eval_sets_note(summary)
        + "\n\n"
        "![loss](plots/loss.png)\n\n![accuracy](plots/accuracy.png)\n"
    )
    if "translation" in summary:
        text += "\n" + _translation(run_dir, summary, records)
    if "classification" in summary:
        from attnlab.report.classification_section import classification_section

        text += "\n" + classification_section(summary, plots)
    probes_path = run_dir / PROBES
    if probes_path.is_file():
        from attnlab.report import probe_section, translation_section

        probes = json.loads(probes_path.read_text(encoding="utf-8"))
        if probes.get("kind") == "classification":
            text += "\n## Probes\n\nEncoder attention of the first validation texts: see the "
            text += "attention explorer in `report.html`.\n"
        else:
            kind = translation_section if probes.get("kind") == "translation" else probe_section
            text += "\n" + kind.probe_section(probes)
    elif probe_curves(run_dir / METRICS, plots):
        text += (
            "\n## Probes during training\n\n(`train.probe_every`; `attnlab probe` adds the "
            "rest.)\n\n![induction by step](plots/induction_by_step.png)\n\n"
            "![ICL by step](plots/icl_by_step.png)\n"
        )
    path = run_dir / REPORT
    path.write_text(text, encoding="utf-8")
    from attnlab.report.html import load_explorer_run, write_html

    explorer = load_explorer_run(run_dir, summary["name"])
    write_html(path, [explorer] if explorer else [])
    return path
