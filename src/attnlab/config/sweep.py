"""The sweep spec (`attnlab sweep SPEC.yaml`): a base config plus what varies.

Exactly one of `grid` (every combination), `ablation` (the base, then each value of each
key changed alone) or `search` (Optuna's random or TPE sampler over ranges, `budget`
trials) says what varies. Keys are dotted config paths as in `--set`; the key `config`
varies the config file itself (`grid: {config: [smeared_keys/attn_attn_quick, …]}`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from attnlab.config.load import format_validation_error, read_mapping
from attnlab.errors import ConfigError


class Range(BaseModel):
    """A numeric search range: float (optionally log-uniform) or int (`int: true`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    low: float
    high: float
    log: bool = False
    integer: bool = Field(False, alias="int")
    step: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) > high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class Search(BaseModel):
    """Sampler, trial budget and the ranges (a Range, or a list of choices) per key."""

    model_config = ConfigDict(extra="forbid")
    sampler: Literal["tpe", "random"] = "tpe"
    budget: int = Field(20, gt=0, description="trials (configurations) to finish")
    sampler_seed: int = 0
    params: dict[str, Range | list[Any]]

    @model_validator(mode="after")
    def _some(self) -> Search:
        if not self.params:
            raise ValueError("search.params is empty")
        for k, v in self.params.items():
            if isinstance(v, list) and not v:
                raise ValueError(f"search.params.{k}: no choices")
        return self


class SweepSpec(BaseModel):
    """What a sweep trains; see the module docstring."""

    model_config = ConfigDict(extra="forbid")
    name: str = "sweep"
    base: str | None = Field(None, description="config file or packaged name")
    set: list[str] = Field(default_factory=list, description="overrides for every trial")
    grid: dict[str, list[Any]] | None = None
    ablation: dict[str, list[Any]] | None = None
    search: Search | None = None
    seeds: int | list[int] = Field(
        1, description="train.seed = 1..seeds for every configuration, or the list of seeds"
    )
    description: str = Field("", description="what the sweep asks and what is known")
    only: list[str] | None = Field(
        None, description="run only these configurations (their labels); all when unset"
    )
    quick: list[str] | None = Field(None, description="the configurations `--quick` keeps (labels)")
    metric: str = Field("final_val_loss", description="summary.json key (dotted) to optimise")
    direction: Literal["minimize", "maximize"] = "minimize"
    probe: bool = Field(True, description="run `attnlab probe` on every finished trial")

    @model_validator(mode="after")
    def _one_kind(self) -> SweepSpec:
        if (isinstance(self.seeds, int) and self.seeds < 1) or self.seeds == []:
            raise ValueError(f"seeds: give a count >= 1 or a list of seeds (got {self.seeds})")
        kinds = [k for k in ("grid", "ablation", "search") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of grid, ablation, search (got {kinds or 'none'})")
        varies = self.grid or self.ablation or {}
        for k, v in varies.items():
            if not v:
                raise ValueError(f"{self.kind}.{k}: no values")
        has_config = "config" in varies or (self.search and "config" in self.search.params)
        if self.base is None and not has_config:
            raise ValueError("set base (a config) or vary `config`")
        if self.ablation is not None and "config" in self.ablation:
            raise ValueError("an ablation changes keys of its base; vary `config` in a grid")
        return self

    @property
    def seed_list(self) -> list[int]:
        """The `train.seed` of each run of a configuration."""
        return list(range(1, self.seeds + 1)) if isinstance(self.seeds, int) else self.seeds

    @property
    def kind(self) -> str:
        """grid | ablation | search."""
        return next(k for k in ("grid", "ablation", "search") if getattr(self, k) is not None)

    def fingerprint(self) -> str:
        """A hash of what decides the trials (a sweep directory holds one spec)."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def differs_only_in_seeds(self, other: SweepSpec) -> bool:
        """Whether `other` is this grid or ablation with other seeds: the same sweep, its
        configurations run with more (or fewer) seeds."""
        same = self.model_copy(update={"seeds": other.seeds}).fingerprint() == other.fingerprint()
        return self.search is None and same


def load_sweep_spec(path: str | Path, extra_sets: list[str] | None = None) -> SweepSpec:
    """Read and validate a sweep spec; `extra_sets` are appended to its `set`."""
    path = Path(path)
    raw = read_mapping(path, "sweep spec")
    raw["set"] = [*raw.get("set", []), *(extra_sets or [])]
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path))) from None
