"""The task registry: one module per task kind, each a `Task` (see `tasks.base`).

`task_for(cfg)` is the one place that decides which task a config runs; the trainer, the
probes and the report receive the task and call its hooks. Adding a task is writing one
module with a `Task` subclass and adding an instance to `TASKS` (and, for a new data
source, its config section in `config/data.py` and its builder in `data/`).
"""

from __future__ import annotations

from attnlab.config.schema import RunConfig
from attnlab.errors import UserError
from attnlab.tasks.base import Task
from attnlab.tasks.classification import Classification
from attnlab.tasks.lm import LanguageModelling
from attnlab.tasks.synthetic import SyntheticTask
from attnlab.tasks.translation import Translation

TASKS: list[Task] = [LanguageModelling(), SyntheticTask(), Translation(), Classification()]


def task_for(cfg: RunConfig) -> Task:
    """The task that runs `cfg` (exactly one matches)."""
    found = [t for t in TASKS if t.matches(cfg)]
    if len(found) != 1:
        names = [t.name for t in found] or "none"
        raise UserError(f"data.task {cfg.data.task!r}: tasks matching it: {names}")
    return found[0]


def register(task: Task) -> None:
    """Add a task (a plug-in's): it must not match a config an existing task runs."""
    if any(t.name == task.name for t in TASKS):
        raise ValueError(f"a task named {task.name!r} is already registered")
    TASKS.append(task)


__all__ = ["TASKS", "Task", "register", "task_for"]
