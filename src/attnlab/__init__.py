"""attnlab: a laboratory for small sequence models.

Train attention-only, convolution + attention and other small models, compare them
honestly and look inside them. The public entry points are importable functions
(`attnlab.runs.train` / `probe` / `report`, `attnlab.experiments.sweep.run_sweep`,
`attnlab.experiments.compare.compare`) with a thin CLI on top; `docs/architecture.md`
describes the packages.
"""

__version__ = "0.1.0"
