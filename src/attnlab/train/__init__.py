"""Training: the loop (Lightning Fabric), optimiser, schedules, checkpoints, resume.

`train(cfg, run_dir, task)` and `resume(run_dir, task)` run the one data path; the task
(`attnlab.tasks`) adds what its kind needs, so the package never asks which model or task
it trains. `attnlab.runs.train(cfg, run_dir)` picks the task for you.
"""

from attnlab.train.run import is_main_process, resume, train

__all__ = ["is_main_process", "resume", "train"]
