"""labkit.sweep.generate and labkit.sweep.notebooks: refused before anything runs or is written."""

import json
import shutil
import tempfile
from pathlib import Path

import nbformat

import labkit
from labkit import LabkitError, TooLarge, UnsupportedFile

from . import refuses

GENERATE, NOTEBOOKS = "labkit.sweep.generate", "labkit.sweep.notebooks"


def generate(grid, out="sweep", model="toy", **kwargs):
    def call(env):
        return labkit.sweep.generate(model(env) if callable(model) else model, grid, env.path(out), progress=False,
                                     **kwargs)
    return call


def folder_with(files: dict):
    """A call that sweeps into a folder (outside the table's, made first) holding `files`, and checks that the
    refusal left them as they were."""
    def call(env):
        folder = Path(tempfile.mkdtemp(prefix="labkit-bad-sweep-"))
        for file, text in files.items():
            (folder / file).write_text(text)
        try:
            return labkit.sweep.generate("toy", {"cfg": [3]}, folder, progress=False)
        finally:
            assert {p.name: p.read_text() for p in folder.iterdir()} == files
            shutil.rmtree(folder)
    return call


def notebook(source: str | None, grid, **kwargs):
    """A sweep of a one-cell notebook (written outside the table's folder) into a folder that must stay unmade."""
    def call(env):
        cell = nbformat.v4.new_code_cell(source or "steps = 20")
        cell.metadata["tags"] = ["parameters"] if source is not None else []
        path = Path(tempfile.mkdtemp(prefix="labkit-bad-sweep-")) / "swept.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
        try:
            return labkit.sweep.notebooks(path, grid, env.path("notebook-sweep"), progress=False, **kwargs)
        finally:
            shutil.rmtree(path.parent)
    return call


CASES = [
    refuses(GENERATE, "grid={'cfgg': '1-7'}", generate({"cfgg": "1-7"}), "not a Params field.*Did you mean 'cfg'"),
    refuses(GENERATE, "grid={}", generate({}), "no rows"),
    refuses(GENERATE, "grid={'cfg': []}", generate({"cfg": []}), "empty; give at least one value"),
    refuses(GENERATE, "grid={'steps': '1-5 (+0)'}", generate({"steps": "1-5 (+0)"}), "step of 0"),
    refuses(GENERATE, "grid={'sampler': 'Eulr'}", generate({"sampler": "Eulr"}), "Did you mean 'Euler'"),
    refuses(GENERATE, "grid='rows.txt'", generate("rows.txt"), "existing .csv or .json file"),
    refuses(GENERATE, "grid of 1,100 rows", generate({"seed": "0-1099"}), "estimated at.*confirm=True",
            error=TooLarge),
    refuses(GENERATE, "out= a folder of another sweep", folder_with({"sweep.json": json.dumps({"rows": []})}),
            "holds another sweep"),
    refuses(GENERATE, "out= a folder of the user's files", folder_with({"notes.txt": "keep me"}),
            "not empty.*no file of yours"),
    refuses(GENERATE, "model='toyy'", generate({"cfg": [3]}, model="toyy"), "not an embedded model.*Did you mean",
            error=UnsupportedFile),
    refuses(GENERATE, "score='clip'", generate({"cfg": [3]}, score="clip"), "give 'judge'"),
    refuses(GENERATE, "engine='rey'", generate({"cfg": [3]}, engine="rey"), "Did you mean 'ray'"),
    refuses(GENERATE, "workers=-1", generate({"cfg": [3]}, workers=-1), "workers"),
    refuses(GENERATE, "address='10.0.0.1:6379' with engine='local'", generate({"cfg": [3]}, address="10.0.0.1:6379"),
            "for engine='ray'"),
    refuses(GENERATE, "engine='ray', address that does not answer",
            generate({"cfg": [3]}, engine="ray", address="127.0.0.1:9"), "No Ray cluster answers", error=LabkitError),
    refuses(GENERATE, "an open Lab with engine='ray'", generate({"cfg": [3]}, model=lambda env: env.lab, engine="ray"),
            "give the model's name or path"),
    refuses(NOTEBOOKS, "a notebook without a parameters cell", notebook(None, {"steps": [1]}), "no `parameters` cell"),
    refuses(NOTEBOOKS, "grid={'step': [1, 2]}", notebook("steps = 20", {"step": [1, 2]}),
            "not in the notebook's parameters cell.*Did you mean 'steps'"),
    refuses(NOTEBOOKS, "grid={'steps': ['ten']}", notebook("steps = 20", {"steps": ["ten"]}), "give int values"),
    refuses(NOTEBOOKS, "grid of 1,001 rows", notebook("steps = 20", {"steps": "0-1000"}), "confirm=True",
            error=TooLarge),
]
