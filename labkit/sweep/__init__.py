"""Sweeps: many runs of a notebook or of generations over a grid of settings (issue #18; the value syntax and the
row plans come first: `labkit.sweep.values`)."""
