"""The classification part of a run report: accuracy per epoch, the best epoch, the
overfitting point, and final / best-checkpoint accuracies."""

from __future__ import annotations

from pathlib import Path

from attnlab.report.plots import line_plot
from attnlab.report.tables import markdown_table
from attnlab.run_dir import RunDir, plot_link


def epoch_curves(c: dict) -> dict[str, tuple[list, list]]:
    """(epochs, accuracy) of train (subset) and validation from `summary.classification`."""
    ep = c["epochs"]
    xs = [e["epoch"] for e in ep]
    out = {"validation": (xs, [e["val_accuracy"] for e in ep])}
    if any(e["train_accuracy"] is not None for e in ep):
        out["train (subset)"] = (xs, [e["train_accuracy"] for e in ep])
    return out


def classification_section(rd: RunDir, summary: dict) -> str:
    """Markdown for `summary["classification"]`, drawing the accuracy-per-epoch figure."""
    c = summary["classification"]
    line_plot(
        epoch_curves(c),
        "epoch",
        "accuracy",
        f"{summary['name']}: accuracy per epoch",
        rd.plot("accuracy_by_epoch.png"),
    )
    rows = [
        [e["epoch"], e["train_loss"], e["train_accuracy"], e["val_loss"], e["val_accuracy"]]
        for e in c["epochs"]
    ]
    over = c.get("overfit_after_epoch")
    classes = summary["data"].get("classes", [])
    text = (
        "## Classification\n\n"
        f"{len(classes)} classes ({', '.join(map(str, classes))}).\n\n"
        + markdown_table(["epoch", "train loss", "train acc", "val loss", "val acc"], rows)
        + "\nTrain figures: a fixed random subset of `train.eval_batches` batches of the "
        "training split (validation likewise when capped), the same at every epoch, with "
        "the weights of that epoch's end (dropout off).\n\n"
    )
    if "best_epoch" in c:
        by = "validation accuracy" if c.get("selected_by") == "val_accuracy" else "validation loss"
        text += (
            f"Best epoch by {by}: **{c['best_epoch']:g}** (val accuracy "
            f"{c['best_val_accuracy']:.4f}); the best checkpoint is saved from it. "
            + (
                f"Overfitting point: after epoch {over:g} the {by} no longer improves.\n\n"
                if over is not None
                else f"The {by} still improved at the last epoch: no overfitting "
                "point within this run.\n\n"
            )
        )
    f = c["final"]
    acc = [["final weights", f["train"], f["validation"], f["test"]]]
    if "test_accuracy" in c:
        acc.append(["best checkpoint", c["train_accuracy"], c["val_accuracy"], c["test_accuracy"]])
    text += markdown_table(["weights", "train acc", "val acc", "test acc"], acc)
    return text + f"\n![accuracy per epoch]({plot_link('accuracy_by_epoch.png')})\n"


def _epoch(value, none: str = "") -> str:
    """An epoch number as the table shows it (20, not 20.0); an en dash (and why) if none."""
    if value is None:
        return f"– ({none})" if none else "–"
    return f"{value:g}"


def best_configuration(groups: dict, order: list[str]) -> str:
    """The configuration whose runs reach the highest mean best-epoch validation accuracy
    (the first in `order` among equals)."""

    def mean_best(g: str) -> float:
        vals = [
            c["best_val_accuracy"]
            for r in groups[g]
            if (c := r["summary"].get("classification")) and "best_val_accuracy" in c
        ]
        return sum(vals) / len(vals) if vals else float("-inf")

    return max(order, key=mean_best)  # max keeps the first of equals


def sweep_section(groups: dict, order: list[str], plots: Path) -> str:
    """Accuracy per epoch of every configuration (its first seed) and the best one's table."""
    for split, file in (
        ("validation", "val_acc_by_epoch.png"),
        ("train (subset)", "train_acc_by_epoch.png"),
    ):
        series = {}
        for g in order[:12]:
            c = groups[g][0]["summary"].get("classification")
            if c and split in epoch_curves(c):
                series[g] = epoch_curves(c)[split]
        if series:
            line_plot(
                series,
                "epoch",
                f"{split} accuracy",
                f"{split} accuracy per epoch, per configuration",
                plots / file,
            )
    name = best_configuration(groups, order)
    best = groups[name][0]
    c = best["summary"]["classification"]
    by = "validation accuracy" if c.get("selected_by") == "val_accuracy" else "validation loss"
    rows = [
        [e["epoch"], e["train_accuracy"], e["val_loss"], e["val_accuracy"]] for e in c["epochs"]
    ]
    return (
        "### Accuracy curves per configuration\n\n"
        f"![validation accuracy per epoch]({plot_link('val_acc_by_epoch.png')})\n\n"
        f"![train accuracy per epoch]({plot_link('train_acc_by_epoch.png')})\n\n"
        f"### Best configuration: {name}\n\n"
        "The configuration with the highest mean best-epoch validation accuracy over its "
        f"seeds. Run `{best['dir'].name}`; best epoch by {by} {_epoch(c.get('best_epoch'))}, "
        f"overfitting after epoch {_epoch(c.get('overfit_after_epoch'), 'none within the run')}"
        ".\n\n"
        + markdown_table(["epoch", "train acc", "val loss", "val acc"], rows)
        + "\n"
        + markdown_table(
            ["weights", "train acc", "val acc", "test acc"],
            [
                ["final", c["final"]["train"], c["final"]["validation"], c["final"]["test"]],
                [
                    "best checkpoint",
                    c.get("train_accuracy"),
                    c.get("val_accuracy"),
                    c.get("test_accuracy"),
                ],
            ],
        )
        + "\n"
    )
