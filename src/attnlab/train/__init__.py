"""Training: the loop (Lightning Fabric), optimiser, schedules, checkpoints, resume.

`train(cfg, run_dir)` and `resume(run_dir)` are the entry points; the package does not
know which model it trains.
"""

from attnlab.train.run import is_main_process, resume, train

__all__ = ["is_main_process", "resume", "train"]
