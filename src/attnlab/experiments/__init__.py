"""Experiments over many runs: sweeps (`sweep.py`, Optuna), the named studies and the demo
(packaged sweeps run by name), comparisons of run directories, and the attention
playground. Statistics live in `attnlab.stats`, benchmarks in `attnlab.bench`."""
