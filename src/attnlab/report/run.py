"""One run's report: `report.md`, `report.html` and `plots/`, drawn from its files alone.

`write_run_report(run_dir, section)` writes what every run has (loss and accuracy curves,
the summary table, what the figures were measured on) and appends `section`, the run's
task's own part (scores, probes and their figures), so this module knows no task.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from attnlab.errors import UserError
from attnlab.report.html import load_explorer_run, write_html
from attnlab.report.plots import curves, line_plot
from attnlab.report.probe_section import training_probe_figures
from attnlab.report.tables import markdown_table
from attnlab.run_dir import RunDir, plot_link

# (run dir, summary, metrics records, probes data or None, attention data or None) → Markdown
Section = Callable[[RunDir, dict, list[dict], dict | None, dict | None], str]


def load_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """(summary, metrics records) of a finished run; a clear error when it is not one."""
    rd = RunDir(run_dir)
    if not rd.is_finished():
        raise UserError(f"{rd.path} is not a finished run directory (no summary.json)")
    return rd.read_summary(), rd.read_metrics()


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


def _leak_banner(summary: dict) -> str:
    """A warning at the top of the report of a run trained with `train.allow_leak`."""
    checks = summary.get("leak_check", {})
    errors = [c["error"] for c in checks.values() if isinstance(c, dict) and "error" in c]
    if not summary.get("allow_leak") or not errors:
        return ""
    return (
        "> **This model sees the future** (`train.allow_leak`): the leak check found "
        f"{errors[0]} Its accuracy and loss are not next-token predictions.\n\n"
    )


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


def _curves(rd: RunDir, summary: dict, records: list[dict]) -> str:
    """The loss and accuracy curves of every run, and their Markdown."""
    line_plot(
        {
            "train": curves(records, "train", "loss"),
            "validation": curves(records, "validation", "loss"),
        },
        "step",
        "loss (nats / token)",
        f"{summary['name']}: loss",
        rd.plot("loss.png"),
    )
    accuracy = {"validation": curves(records, "validation", "accuracy")}
    train_acc = curves(records, "train", "accuracy")
    if train_acc[0]:
        accuracy["train (its batches, before each update)"] = train_acc
    line_plot(
        accuracy,
        "step",
        "next-token accuracy",
        f"{summary['name']}: accuracy",
        rd.plot("accuracy.png"),
    )
    out = f"![loss]({plot_link('loss.png')})\n\n![accuracy]({plot_link('accuracy.png')})\n"
    for key, name, label in (
        ("grad_norm", "grad_norm.png", "gradient norm before clipping"),
        ("lr", "lr.png", "learning rate"),
    ):
        xs, ys = curves(records, "train", key)
        if xs:
            line_plot(
                {label: (xs, ys)}, "step", label, f"{summary['name']}: {label}", rd.plot(name)
            )
            out += f"\n![{label}]({plot_link(name)})\n"
    return out


def write_run_report(run_dir: str | Path, section: Section | None = None) -> Path:
    """Write `report.md`, `report.html` (with the attention explorer when the run was
    probed) and every figure in `plots/` for one run, from its files alone; `section`
    adds the task's part."""
    rd = RunDir(run_dir)
    summary, records = load_run(rd.path)
    rows = [[label, summary.get(key)] for key, label in SUMMARY_KEYS]
    text = (
        f"# Run report: {summary['name']}\n\n"
        + _leak_banner(summary)
        + f"Device `{summary['device']}`, precision `{summary['precision']}`, "
        f"attnlab {summary['versions']['attnlab']}, torch {summary['versions']['torch']}.\n\n"
        + markdown_table(["metric", "value"], rows)
        + "\n"
        + eval_sets_note(summary)
        + "\n\n"
        + _curves(rd, summary, records)
    )
    probes, attention = rd.read_probes(), rd.read_attention()
    if section is not None:
        text += section(rd, summary, records, probes, attention)
    if probes is None:
        during = training_probe_figures(rd)
        if during:
            text += (
                "\n## Probes during training\n\n(`train.probe_every`; `attnlab probe` adds "
                "the rest.)\n\n" + during
            )
    path = rd.write_report(text)
    explorer = load_explorer_run(rd.path, summary["name"])
    write_html(path, [explorer] if explorer else [])
    return path
