"""The classification part of a run report: accuracy per epoch, the best epoch, the
overfitting point, and final / best-checkpoint accuracies."""

from __future__ import annotations

from pathlib import Path

from attnlab.report.plots import line_plot
from attnlab.report.tables import markdown_table


def epoch_curves(c: dict) -> dict[str, tuple[list, list]]:
    """(epochs, accuracy) of train (subset) and validation from `summary.classification`."""
    ep = c["epochs"]
    xs = [e["epoch"] for e in ep]
    out = {"validation": (xs, [e["val_accuracy"] for e in ep])}
    if any(e["train_accuracy"] is not None for e in ep):
        out["train (subset)"] = (xs, [e["train_accuracy"] for e in ep])
    return out


def classification_section(summary: dict, plots: Path) -> str:
    """Markdown for `summary["classification"]`, drawing `plots/accuracy_by_epoch.png`."""
    c = summary["classification"]
    line_plot(
        epoch_curves(c),
        "epoch",
        "accuracy",
        f"{summary['name']}: accuracy per epoch",
        plots / "accuracy_by_epoch.png",
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
        text += (
            f"Best epoch by validation loss: **{c['best_epoch']:g}** (val accuracy "
            f"{c['best_val_accuracy']:.4f}); the best checkpoint is saved from it. "
            + (
                f"Overfitting point: after epoch {over:g} the validation loss no longer "
                "improves.\n\n"
                if over is not None
                else "The validation loss still improved at the last epoch: no overfitting "
                "point within this run.\n\n"
            )
        )
    f = c["final"]
    acc = [["final weights", f["train"], f["validation"], f["test"]]]
    if "test_accuracy" in c:
        acc.append(["best checkpoint", c["train_accuracy"], c["val_accuracy"], c["test_accuracy"]])
    text += markdown_table(["weights", "train acc", "val acc", "test acc"], acc)
    return text + "\n![accuracy per epoch](plots/accuracy_by_epoch.png)\n"
