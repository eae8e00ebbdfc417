"""Training: the loop (Lightning Fabric), optimiser, schedules, checkpoints, resume.

`train(cfg, run_dir)` and `resume(run_dir)` are the entry points; the package does not
know which model it trains.
"""

from attnlab.train.run import resume, train

__all__ = ["resume", "train"]
