"""Language modelling on text (`data.task: lm_text`): next-token prediction on a tokenised
corpus, probed for induction heads, in-context learning, kernels and embeddings, with the
validation text in the attention grids and the embedding plot's token frequencies."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from attnlab import data as data_mod
from attnlab.config.schema import RunConfig
from attnlab.errors import UserError
from attnlab.probes.frequency import loss_by_frequency
from attnlab.probes.run import TrainingProbe, lm_probes
from attnlab.report.probe_section import probe_section, sweep_probe_section
from attnlab.run_dir import RunDir
from attnlab.tasks.base import Task


class LanguageModelling(Task):
    """Next-token prediction on text."""

    name = "lm_text"
    description = "language modelling on text (WikiText, a local file)"
    text = True  # a token stream: loss by token frequency is measured

    def matches(self, cfg: RunConfig) -> bool:
        return cfg.data.task == self.name

    def attach(self, trainer, cfg: RunConfig, dataset) -> None:
        if cfg.train.probe_every:
            trainer.probe_fn = TrainingProbe(trainer.raw_model, cfg, dataset)

    def probe(self, rd: RunDir, cfg: RunConfig, model: nn.Module, tok) -> dict:
        if cfg.probes.lengths and self.text:
            raise UserError("length generalisation runs on the synthetic tasks (generated data)")
        try:
            data, why = data_mod.build(cfg.data), None
        except UserError as e:  # e.g. a text corpus no longer on this machine
            data, why = None, str(e)
        val = None if data is None else data.splits["validation"]
        out = lm_probes(rd, cfg, model, tok, val, why)
        if self.text and data is not None:
            split = data.splits["train"]
            # a stream's tokens, or the rows' own targets of one-example-per-row text (not
            # its padding, even where padding is scored: the buckets rank text's tokens)
            train = getattr(split, "tokens", None)
            train = split.targets[split.real] if train is None else train
            out["loss_by_frequency"] = loss_by_frequency(
                model, val, train, cfg.data.batch_size, cfg.probes.icl_batches
            )
        return out

    def report_section(self, rd, summary, records, probes, attention) -> str:
        return "" if probes is None else "\n" + probe_section(rd, probes, attention)

    def sweep_section(self, groups: dict, order: list[str], plots: Path) -> str:
        return sweep_probe_section(groups, order, plots)

    def probe_lines(self, probes: dict) -> list[str]:
        out = []
        best = probes["heads"]["max_induction"]
        if best["score"] is not None:
            out.append(
                f"max induction score {best['score']:.3f} (layer {best['layer']}, head "
                f"{best['head']}); uniform head {probes['heads']['uniform']['induction']:.3f}"
            )
        icl = probes.get("icl", {})
        if "score" in icl:
            out.append(f"ICL score {icl['score']:+.3f} ± {icl['stderr']:.3f} nats")
        for name, prof in probes["conv"].items():
            out.append(f"{name}: kernel peaks (mean |w|) at offset {prof['argmax_offset']}")
        return out
