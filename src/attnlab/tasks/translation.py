"""Translation (`data.task: piglatin`): an encoder-decoder or a prefix LM learns English →
Pig Latin word by word. Adds word-level scores (exact match of the generated word) to the
periodic and final evaluations, `translations.json` (errors by length and kind, sample
mistakes), the translation probes (attention of chosen words, alignment, character
embeddings, positions) and their report section."""

from __future__ import annotations

import math

from torch import nn

from attnlab import data as data_mod
from attnlab.config.schema import RunConfig
from attnlab.probes.translation import translation_probes
from attnlab.report import translation_section
from attnlab.run_dir import RunDir
from attnlab.tasks.base import Task
from attnlab.train.translate import WordEval

SPLITS = ("train", "validation", "test")
DETAILS = (  # word_scores' parts kept in translations.json
    "errors_by_length",
    "errors_by_kind",
    "errors_by_start",
    "mistakes_repeating_last",
    "mistakes",
)


class Translation(Task):
    """Pig Latin, word by word."""

    name = "translation"
    description = "translation: English → Pig Latin (seq2seq or prefix LM)"

    def matches(self, cfg: RunConfig) -> bool:
        return cfg.data.task == "piglatin"

    def attach(self, trainer, cfg: RunConfig, dataset) -> None:
        trainer.task_eval = WordEval(
            trainer.raw_model, dataset, trainer.fabric.device, cfg.train.beam_width
        )

    def summarise(self, trainer, val: dict, test: dict, cap: int | None) -> dict:
        """Teacher-forced and word-level scores on train (as many words as validation),
        validation and test; the errors by length and sample mistakes go to
        `translations.json`."""
        ds = trainer.data
        cap_words = None if cap is None else cap * ds.batch_size
        n_val = min(ds.splits["validation"].num_sequences, cap_words or math.inf)
        train = trainer.evaluate("train", -(-n_val // ds.batch_size))
        forced = {"train": train, "validation": val, "test": test}
        limit = {"train": n_val, "validation": cap_words, "test": cap_words}
        table, details = {}, {}
        for split, tf in forced.items():
            sc = trainer.task_eval.scores(split, limit[split])
            table[split] = {
                "loss_per_char": tf["loss"],
                "char_accuracy": tf["accuracy"],
                "word_accuracy": sc["word_accuracy"],
                "words": sc["words"],
            }
            details[split] = {k: sc[k] for k in DETAILS}
        if trainer.fabric.global_rank == 0:
            RunDir(trainer.run_dir).write_translations({"scores": table, **details})
        return {
            "translation": table,
            "final_val_word_accuracy": table["validation"]["word_accuracy"],
            "test_word_accuracy": table["test"]["word_accuracy"],
            "train_word_accuracy": table["train"]["word_accuracy"],
            "train_accuracy": table["train"]["char_accuracy"],
        }

    def probe(self, rd: RunDir, cfg: RunConfig, model: nn.Module, tok) -> dict:
        val = data_mod.build(cfg.data).splits["validation"]
        return translation_probes(rd, cfg, model, tok, val)

    def report_section(self, rd, summary, records, probes, attention) -> str:
        text = "\n" + translation_section.scores_section(rd, summary, records)
        if probes is not None:
            text += "\n" + translation_section.probe_section(rd, probes, attention)
        return text

    def summary_lines(self, summary: dict) -> list[str]:
        t = summary["translation"]
        scores = ", ".join(f"{s} {t[s]['word_accuracy']:.4f}" for s in SPLITS)
        return [f"word accuracy: {scores}"]

    def probe_lines(self, probes: dict) -> list[str]:
        out = [f"{w['word']} → {w['prediction']}" for w in probes["attention"]]
        a = probes["alignment"]
        if a["layers"]:
            pairs = zip(a["layers"], a["scores"], strict=True)
            best = max((s, n, h) for n, row in pairs for h, s in enumerate(row))
            out.append(
                f"best aligned head: {best[1]} H{best[2]}, {best[0]:.3f} of its attention on "
                f"the character it writes (uniform {a['uniform']:.3f})"
            )
        return out
