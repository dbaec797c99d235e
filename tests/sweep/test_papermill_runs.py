"""Notebook sweeps (labkit.sweep.notebooks): one papermill run per row, values recorded with labkit.record, one
failure isolated, a resumable folder that refuses another sweep, and bad grids refused before any run."""

import csv
import json

import nbformat
import pytest

import labkit
from labkit import BadInput
from labkit.sweep.record import RECORD_MIME, recorded

BODY = """import os
import labkit
if a == 3:
    raise ValueError("three is bad")
labkit.record("double", a * 2)
labkit.record("label", label)
os.makedirs(out_dir, exist_ok=True)
open(os.path.join(out_dir, "a.txt"), "w").write(str(a * scale))
"""


def notebook(path, parameters=True):
    nb = nbformat.v4.new_notebook()
    setting = nbformat.v4.new_code_cell('a = 1\nlabel = "x"\nscale = 0.5\nout_dir = "out"')
    if parameters:
        setting.metadata["tags"] = ["parameters"]
    nb.cells = [setting, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def jupyter(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))  # no user kernelspec may shadow python3
    return tmp_path


def test_a_sweep_runs_each_row_records_values_and_isolates_a_failure(jupyter):
    nb = notebook(jupyter / "n.ipynb")
    out = jupyter / "sweep"
    result = labkit.sweep.notebooks(nb, {"a": "1-3", "label": "p"}, out=out)
    rows = {row["a"]: row for row in result.rows}
    assert [rows[a]["status"] for a in (1, 2, 3)] == ["ok", "ok", "failed"]
    assert rows[1]["double"] == 2 and rows[2]["double"] == 4 and rows[2]["label"] == "p"
    assert "ValueError: three is bad" in rows[3]["error"] and rows[3]["cell"] != ""
    assert (out / "runs" / "0001" / "out" / "a.txt").read_text() == "1.0"  # out_dir given per run
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["ok", "ok", "failed"] and table[1]["double"] == "4"
    assert json.loads((out / "sweep.json").read_text())["rows"][0] == {"a": 1, "label": "p"}

    ran = {i: (out / "runs" / f"{i:04d}" / "notebook.ipynb").stat().st_mtime_ns for i in range(3)}
    again = labkit.sweep.notebooks(nb, {"a": "1-3", "label": "p"}, out=out)  # resumed: nothing runs again
    assert again.rows == result.rows
    assert {i: (out / "runs" / f"{i:04d}" / "notebook.ipynb").stat().st_mtime_ns for i in range(3)} == ran
    retried = labkit.sweep.notebooks(nb, {"a": "1-3", "label": "p"}, out=out, retry_failed=True)
    now = {i: (out / "runs" / f"{i:04d}" / "notebook.ipynb").stat().st_mtime_ns for i in range(3)}
    assert now[0] == ran[0] and now[1] == ran[1] and now[2] != ran[2] and len(retried.failed) == 1

    with pytest.raises(BadInput, match="holds another sweep"):
        labkit.sweep.notebooks(nb, {"a": "1-2"}, out=out)
    edited = nbformat.read(str(nb), as_version=4)
    edited.cells[1].source += "\nlabkit.record('new', 1)"
    nbformat.write(edited, str(nb))  # an edited notebook's results must not mix with the old ones
    with pytest.raises(BadInput, match="notebook was edited since"):
        labkit.sweep.notebooks(nb, {"a": "1-3", "label": "p"}, out=out)


@pytest.mark.parametrize("grid, message", [
    ({"b": [1]}, r"'b' is not in the notebook's parameters cell, which sets a, label, scale, out_dir"),
    ({"scal": [1.0]}, "Did you mean 'scale'"),
    ({"a": ["x"]}, "default for a is int, so give int values"),
    ({"a": "x-y"}, "Write int values as A1111 does"),
    ({"a": []}, "empty"),
    ({}, "no rows"),
    ("a=1", "give a dict of values"),
    ([{"a": 1}, 3], "rows are dicts"),
])
def test_bad_grids_are_refused_before_any_run(jupyter, grid, message):
    nb = notebook(jupyter / "n.ipynb")
    with pytest.raises(BadInput, match=message):
        labkit.sweep.notebooks(nb, grid, out=jupyter / "sweep")
    assert not (jupyter / "sweep").exists()


def test_a_notebook_without_a_parameters_cell_is_refused(jupyter):
    with pytest.raises(BadInput, match="no `parameters` cell"):
        labkit.sweep.notebooks(notebook(jupyter / "n.ipynb", parameters=False), {"a": [1]}, out=jupyter / "s")
    with pytest.raises(BadInput, match="no such notebook"):
        labkit.sweep.notebooks(jupyter / "missing.ipynb", {"a": [1]}, out=jupyter / "s")


def test_zipped_rows_and_mismatched_lengths(jupyter):
    from labkit.sweep.papermill_runs import plan_rows

    nb = notebook(jupyter / "n.ipynb")
    assert plan_rows(nb, {"a": [1, 2], "scale": [0.5, 2]}, zip=True) == [{"a": 1, "scale": 0.5}, {"a": 2, "scale": 2}]
    with pytest.raises(BadInput, match="as many values each"):
        plan_rows(nb, {"a": [1, 2], "scale": [0.5]}, zip=True)


def test_record_outside_a_kernel_returns_the_value_and_refuses_what_json_cannot_hold():
    assert labkit.record("x", [1, 2.5, "a"]) == [1, 2.5, "a"]
    with pytest.raises(BadInput, match="NaN and infinity are not JSON"):
        labkit.record("x", float("nan"))
    with pytest.raises(BadInput, match="must be JSON"):
        labkit.record("x", object())
    with pytest.raises(BadInput, match="name is empty"):
        labkit.record(" ", 1)
    cells = [{"cell_type": "code", "outputs": [{"data": {RECORD_MIME: {"name": "x", "value": 1}}},
                                               {"data": {RECORD_MIME: {"name": "x", "value": 2}}}]}]
    assert recorded({"cells": cells}) == {"x": 2}


def test_local_workers_run_notebooks_side_by_side_with_the_cores_divided(jupyter):
    from labkit.devices import cpu_cores as cpu_count

    cell = nbformat.v4.new_code_cell("a = 1")
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell(
        "import os, labkit\nlabkit.record('threads', os.environ.get('OMP_NUM_THREADS'))\nlabkit.record('pid', "
        "os.getppid())")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(jupyter / "t.ipynb"))
    result = labkit.sweep.notebooks(jupyter / "t.ipynb", {"a": "1-4"}, jupyter / "s", workers=2, progress=False)
    assert [r["status"] for r in result.rows] == ["ok"] * 4
    assert {r["threads"] for r in result.rows} == {str(max(1, cpu_count() // 2))}  # each kernel gets its share
    assert len({r["pid"] for r in result.rows}) == 2  # two workers ran them
