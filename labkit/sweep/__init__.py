"""Sweeps: many runs of a notebook, or many generations, over a grid of settings, into one resumable results folder
with a table, an index.html and a contact sheet (issue #18).

    labkit.sweep.notebooks(notebook, {"seed": "0-3", "cfg": [4, 7]}, out="runs/x")   # papermill, one run per row
    labkit.sweep.generate("toy", {"cfg": "1-7 (+3)", "seed": "0-7"}, out="runs/y", prompt="a red circle",
                          score="judge")                                            # one model load per worker
    labkit.record("adherence", score)                                               # inside a swept notebook

`values` reads A1111's X/Y/Z value syntax; `papermill_runs` and `generations` plan the rows; `runner` streams jobs
from an engine (`engines`: this process or local workers; `ray_engine`: Ray) into the folder (`folder`, `report`).
"""

from importlib import import_module

_LAZY = {"notebooks": ("labkit.sweep.papermill_runs", "notebooks"),
         "generate": ("labkit.sweep.generations", "generate"),
         "SweepResults": ("labkit.sweep.folder", "SweepResults"),
         "parse_values": ("labkit.sweep.values", "parse_values")}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'labkit.sweep' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(import_module(module), attr)
