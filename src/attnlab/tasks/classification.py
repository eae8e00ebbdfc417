"""Classification (`data.task: classification`, `model.arch: classifier`): a bidirectional
encoder labels whole texts. Not causal (no leak check); adds the number of classes to the
model, per-epoch accuracies, the best epoch and the best checkpoint's accuracies to the
summary, the encoder's attention on the first validation texts to the explorer, and
accuracy-per-epoch figures to run and sweep reports."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from attnlab import data as data_mod
from attnlab.config import load_config
from attnlab.config.schema import RunConfig
from attnlab.errors import UserError
from attnlab.probes.capture import capture, softmax_patterns
from attnlab.probes.explorer import ExplorerLog, layer_patterns
from attnlab.report import classification_section
from attnlab.run_dir import RunDir
from attnlab.tasks.base import Task
from attnlab.train.checkpoint import load_weights

EXAMPLES = 4  # validation texts in the explorer


class Classification(Task):
    """Whole-text labels from an encoder."""

    name = "classification"
    description = "text classification with a bidirectional encoder"
    causal = False

    def matches(self, cfg: RunConfig) -> bool:
        return cfg.data.task == self.name

    def model_fields(self, cfg: RunConfig, dataset) -> dict:
        n_data = dataset.info["n_classes"]
        n = cfg.model.n_classes or n_data
        if n < n_data:
            raise UserError(f"model.n_classes ({n}) < the data's {n_data} classes")
        if cfg.model.init_from is None:
            return {"n_classes": n}
        fields = pretrained_fields(cfg.model.init_from)
        if fields["max_seq_len"] < dataset.seq_len:
            raise UserError(
                f"model.init_from: the language model reads at most {fields['max_seq_len']} "
                f"tokens; set data.seq_len <= {fields['max_seq_len']} (now {dataset.seq_len})"
            )
        return {**fields, "n_classes": n}

    def summarise(self, trainer, val: dict, test: dict, cap: int | None) -> dict:
        c = _classification(trainer, val, test, cap)
        return {"classification": c, "test_accuracy_best": c["test_accuracy"]}

    def probe(self, rd: RunDir, cfg: RunConfig, model: nn.Module, tok) -> dict:
        """Encoder attention on the first validation texts (for the explorer), with the
        predicted and true class of each."""
        val = data_mod.build(cfg.data).splits["validation"]
        log, examples = ExplorerLog(), []
        for i in range(min(EXAMPLES, val.num_sequences)):
            n = max(1, int(val.lengths[i]))
            x = torch.from_numpy(val.rows[i, :n])  # (T,)
            with torch.no_grad(), capture(model, softmax_patterns(model)) as c:
                logits = model(x[None])  # (1, C)
            labels = [tok.decode([int(t)]) or "[UNK]" for t in x]
            pred, true = int(logits.argmax(-1)), int(val.labels[i])
            log.add(f"#{i}: predicted {pred}, label {true}", labels, labels, layer_patterns(c))
            examples.append({"text": val.texts[i], "predicted": pred, "label": true})
        log.save(rd)
        return {"examples": examples}

    def report_section(self, rd, summary, records, probes, attention) -> str:
        text = "\n" + classification_section.classification_section(rd, summary)
        if probes is not None:
            text += (
                "\n## Probes\n\nEncoder attention of the first validation texts: see the "
                "attention explorer in `report.html`.\n"
            )
        return text

    def sweep_section(self, groups: dict, order: list[str], plots: Path) -> str:
        return classification_section.sweep_section(groups, order, plots)

    def probe_lines(self, probes: dict) -> list[str]:
        return [
            f"predicted {e['predicted']}, label {e['label']}: {e['text'][:70]}"
            for e in probes["examples"]
        ]


OWN_FIELDS = {"arch", "n_classes", "pool", "dropout", "init_from"}  # the classifier's


def pretrained_fields(run_dir: str) -> dict:
    """The architecture fields of the language model in `run_dir` (`model.init_from`):
    every model field but the classifier's own (`OWN_FIELDS`)."""
    rd = RunDir(run_dir)
    if not rd.config.is_file():
        raise UserError(f"model.init_from: {rd.config} not found (not an attnlab run)")
    lm = load_config(rd.config)
    if lm.model.arch != "decoder":
        raise UserError(
            f"model.init_from: {rd.path} holds a {lm.model.arch} model; a classifier "
            "fine-tunes a decoder-only language model"
        )
    return {k: getattr(lm.model, k) for k in type(lm.model).model_fields if k not in OWN_FIELDS}


def _classification(trainer, val: dict, test: dict, cap: int | None) -> dict:
    """Per-epoch accuracies, the best epoch by `train.select_by` (validation loss or
    accuracy: the best checkpoint, and the overfitting point, after which it no longer
    improves), and the train / validation / test accuracy of the final weights and of the
    best checkpoint."""
    rd = RunDir(trainer.run_dir)
    recs = rd.read_metrics()
    vals = [r for r in recs if r["split"] == "validation" and not r.get("final")]
    trains = {r["step"]: r for r in recs if r["split"] == "train_eval"}
    epochs = [
        {
            "epoch": r.get("epoch", r["step"] / trainer.per_epoch),
            "step": r["step"],
            "val_loss": r["loss"],
            "val_accuracy": r["accuracy"],
            "train_loss": trains.get(r["step"], {}).get("loss"),
            "train_accuracy": trains.get(r["step"], {}).get("accuracy"),
        }
        for r in vals
    ]
    train = trainer.evaluate("train", cap)
    out = {
        "epochs": epochs,
        "final": {
            "train": train["accuracy"],
            "validation": val["accuracy"],
            "test": test["accuracy"],
        },
    }
    if epochs:
        if trainer.cfg.select_by == "val_accuracy":
            best = max(epochs, key=lambda e: e["val_accuracy"])  # the first of equals
        else:
            best = min(epochs, key=lambda e: e["val_loss"])
        out.update(
            selected_by=trainer.cfg.select_by,
            best_epoch=best["epoch"],
            best_val_accuracy=best["val_accuracy"],
            best_val_loss=best["val_loss"],
            overfit_after_epoch=best["epoch"] if best is not epochs[-1] else None,
        )
    if rd.best.is_file():  # the best checkpoint's figures, then the final weights back
        final = {k: v.detach().clone() for k, v in trainer.raw_model.state_dict().items()}
        load_weights(trainer.raw_model, rd.best)
        for split in ("train", "validation", "test"):
            r = trainer.evaluate(split, cap)
            out[f"{split}_accuracy" if split != "validation" else "val_accuracy"] = r["accuracy"]
        trainer.raw_model.load_state_dict(final)
    return out
