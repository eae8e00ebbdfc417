"""Experiments: comparisons of run directories, the demo (sweeps come later)."""
