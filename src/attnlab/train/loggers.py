"""`train.loggers`: experiment trackers beside `metrics.jsonl`, through Lightning Fabric's
logger interface (`lightning_fabric.loggers.Logger`).

`metrics.jsonl` stays the source of truth (reports, resume and sweeps read it); every record
written there is mirrored to each logger as scalars named `SPLIT/KEY` (`train/loss`,
`validation/accuracy`, `probe/max_induction`; the end-of-run evaluations `final_validation/…`,
`final_test/…`) at the record's step, and the run's config as hyperparameters. The loggers
write under the run directory's `logs/`:

- `csv`: Fabric's `CSVLogger` (`logs/csv/metrics.csv`).
- `tensorboard`: Fabric's `TensorBoardLogger` (`logs/tensorboard/`; needs `tensorboard`,
  `pip install 'attnlab[tracking]'`).
- `wandb`: Weights & Biases through `WandbLogger` below (Fabric ships none), offline
  (`logs/wandb/`, `wandb sync` uploads it later) unless `WANDB_MODE` says otherwise; the
  project is `WANDB_PROJECT` or `attnlab`.

A resumed run appends to the same logs; its steps after the checkpoint are logged again
(metrics.jsonl drops them, the trackers keep both).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from lightning_fabric.loggers import Logger

from attnlab.errors import ConfigError

LOGGERS = ("csv", "tensorboard", "wandb")


def make_loggers(names: list[str], logs_dir: Path, run_name: str) -> list[Logger]:
    """Fabric loggers for `train.loggers` writing under `logs_dir`."""
    out: list[Logger] = []
    for name in names:
        if name == "csv":
            from lightning_fabric.loggers import CSVLogger

            out.append(CSVLogger(logs_dir, name="csv", version=""))
        elif name == "tensorboard":
            from lightning_fabric.loggers import TensorBoardLogger

            try:
                tb = TensorBoardLogger(logs_dir, name="tensorboard", version="",
                                       default_hp_metric=False)  # fmt: skip
            except ModuleNotFoundError as e:
                raise ConfigError(
                    "train.loggers: tensorboard needs the tensorboard package: "
                    "pip install 'attnlab[tracking]'"
                ) from e
            out.append(tb)
        elif name == "wandb":
            out.append(WandbLogger(logs_dir, run_name))
        else:
            raise ConfigError(f"train.loggers: {name!r} is not one of {', '.join(LOGGERS)}")
    return out


def scalars(record: dict) -> dict[str, float]:
    """A metrics.jsonl record's finite numbers as `SPLIT/KEY` scalars (step, flags and
    lists left out); the end-of-run evaluations as `final_SPLIT/KEY`, apart from the
    periodic ones of the same step."""
    split = record.get("split", "train")
    if record.get("final"):
        split = f"final_{split}"
    out = {}
    for key, value in record.items():
        if key in ("step", "split", "final") or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            out[f"{split}/{key}"] = float(value)
    return out


def mirror(loggers: list[Logger]) -> Callable[[dict], None]:
    """A function sending each metrics record's scalars to every logger."""

    def send(record: dict) -> None:
        values = scalars(record)
        if values:
            for lg in loggers:
                lg.log_metrics(values, step=int(record["step"]))

    return send


class WandbLogger(Logger):
    """Weights & Biases behind Fabric's `Logger` interface (offline unless `WANDB_MODE`)."""

    def __init__(self, logs_dir: Path, run_name: str):
        super().__init__()
        try:
            import wandb
        except ImportError as e:
            raise ConfigError(
                "train.loggers: wandb needs the wandb package: pip install 'attnlab[tracking]'"
            ) from e
        logs_dir = Path(logs_dir)
        logs_dir.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "attnlab"),
            name=run_name,
            dir=str(logs_dir),
            mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="create_new",
        )

    @property
    def name(self) -> str:
        return "wandb"

    @property
    def version(self) -> str:
        return self._run.id

    @property
    def experiment(self):
        """The wandb run."""
        return self._run

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._run.log(metrics, step=step)

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        self._run.config.update(params, allow_val_change=True)

    def finalize(self, status: str) -> None:
        self._run.finish(exit_code=0 if status == "success" else 1)
