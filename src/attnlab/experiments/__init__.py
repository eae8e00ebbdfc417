"""Experiments: comparisons of run directories, the demo, studies and sweeps, statistics."""
