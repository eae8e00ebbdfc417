"""`attnlab bench …`: measurements of speed, memory and precision, each in its own module
(`train`: training steps against the naive write-up-style model in `naive_lm`; `scan`:
the three linear scans; `parts`: data building and probes). Benchmarks measure; they
never assert a time."""
