"""The synthetic token tasks (`data.synthetic.GENERATORS`: repeated tokens, MQAR, copying,
selective copying, induction heads): language modelling on generated sequences, scored
only where the task says (`labels`), probed like text but without a text stream."""

from __future__ import annotations

from attnlab.config.schema import RunConfig
from attnlab.data.synthetic import GENERATORS
from attnlab.tasks.lm import LanguageModelling


class SyntheticTask(LanguageModelling):
    """A generated token task; probes and report as for text."""

    name = "synthetic"
    description = "synthetic token tasks: " + ", ".join(GENERATORS)
    text = False  # uniform random tokens: no frequency tail to measure

    def matches(self, cfg: RunConfig) -> bool:
        return cfg.data.task in GENERATORS
