"""Sweeps: many runs of a notebook over a grid of settings, into one resumable results folder (issue #18).

    labkit.sweep.notebooks(notebook, {"seed": "0-3", "cfg": [4, 7]}, out="runs/x")   # papermill, one run per row
    labkit.record("adherence", score)                                               # inside the notebook

`labkit.sweep.values` reads A1111's X/Y/Z value syntax; `labkit.sweep.papermill_runs` runs notebooks.
"""

from importlib import import_module

_LAZY = {"notebooks": ("labkit.sweep.papermill_runs", "notebooks"),
         "SweepResults": ("labkit.sweep.papermill_runs", "SweepResults"),
         "parse_values": ("labkit.sweep.values", "parse_values")}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'labkit.sweep' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(import_module(module), attr)
