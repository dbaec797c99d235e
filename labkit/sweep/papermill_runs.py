"""Notebook sweeps: a notebook run with papermill once per row of a grid, into one resumable results folder.

    labkit.sweep.notebooks("notebooks/05_sampling_loop.ipynb", {"seed": "0-3", "steps": [10, 30]}, out="runs/05")

The folder holds `sweep.json` (the sweep's definition: a folder never mixes two sweeps), `runs/NNNN/` (the executed
notebook, and the pictures it wrote when it has an `out_dir` parameter), and `results.csv` / `results.json`: one
row per run with its status ("ok", or "failed" with the failing cell and error), seconds, every parameter and every
value the notebook recorded with `labkit.record`. Running the same sweep again skips the rows already done (and,
with `retry_failed=True`, runs the failed ones again). One failure never stops the others; Ctrl-C stops after
saving what finished, and the folder stays resumable.
"""

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .. import checks
from ..errors import BadInput
from ..files import save_json, save_text
from .values import parse_values, product_rows, zipped_rows

KINDS = {"int": int, "float": float, "str": str, "bool": bool}  # papermill's inferred type names -> Python
FIXED = ("run", "status", "seconds", "error", "cell")  # the columns every results row starts with


@dataclass(frozen=True)
class SweepResults:
    """What a sweep left in its folder: `rows` (one dict per run, as results.json holds them) and the folder."""

    folder: Path
    rows: list

    @property
    def failed(self) -> list:
        return [row for row in self.rows if row["status"] != "ok"]

    def __repr__(self) -> str:
        return f"<SweepResults {self.folder}: {len(self.rows)} runs, {len(self.failed)} failed>"


def notebook_parameters(notebook) -> dict:
    """{name: Python type or None} of a notebook's `parameters` cell (papermill's inspection: the annotation, else
    the default's literal); BadInput without one."""
    import papermill

    path = Path(checks.path("notebook", notebook))
    if not path.is_file():
        raise BadInput(f"notebook={str(notebook)!r}: no such notebook file.")
    found = papermill.inspect_notebook(str(path))
    if not found:
        raise BadInput(f"{path.name} has no `parameters` cell, so a sweep cannot set anything in it: tag the cell that "
                       f"sets its settings with the tag 'parameters' (JupyterLab: the cell's property inspector).")
    return {name: KINDS.get(info.get("inferred_type_name")) or default_kind(info.get("default")) for name, info
            in found.items()}


def default_kind(source: str | None):
    """The type of a parameter's default as written (`steps = 20` -> int); None for an expression or None."""
    import ast

    try:
        value = ast.literal_eval(source or "None")
    except (ValueError, SyntaxError):
        return None
    return next((kind for kind in (bool, int, float, str) if type(value) is kind), None)


def plan_rows(notebook, grid, zip: bool = False) -> list[dict]:
    """The runs of a sweep: `grid` {parameter: values or A1111 text} as a product (or zipped), or a list of row
    dicts, each checked against the notebook's parameters (names and the types of their defaults)."""
    known = notebook_parameters(notebook)
    if isinstance(grid, (list, tuple)):
        rows = [dict(row) for row in grid if isinstance(row, dict)]
        if len(rows) != len(grid):
            raise BadInput("A sweep's rows are dicts of {parameter: value}; give a list of dicts or a grid dict.")
    elif isinstance(grid, dict):
        unknown_names(grid, known)
        axes = {name: parse_values(values, known[name], name=name) for name, values in grid.items()}
        rows = zipped_rows(axes) if zip else product_rows(axes)
    else:
        raise BadInput(f"grid= takes a dict {{parameter: values}} or a list of rows, not {checks.kind(grid)}.")
    if not rows or rows == [{}]:
        raise BadInput("The sweep has no rows: give at least one parameter with at least one value.")
    for row in rows:
        unknown_names(row, known)
        for name, value in row.items():
            check_type(name, value, known[name])
    return rows


def unknown_names(names, known: dict) -> None:
    wrong = [name for name in names if name not in known]
    if wrong:
        hint = checks.did_you_mean(wrong[0], list(known))
        raise BadInput(f"{', '.join(map(repr, wrong))} {'is' if len(wrong) == 1 else 'are'} not in the notebook's "
                       f"parameters cell, which sets {', '.join(known)}.{hint} (papermill would only warn and run "
                       f"without it.)")


def check_type(name: str, value, kind) -> None:
    """A value must fit the type of the parameter's default (an int where the notebook has 20; ints do for
    floats)."""
    fits = (kind is None or value is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            or kind is float and isinstance(value, int) and not isinstance(value, bool))
    if not fits:
        raise BadInput(f"{name}={value!r}: the notebook's default for {name} is {kind.__name__ if kind else '?'}, "
                       f"so give {kind.__name__ if kind else 'the same type'} values.")


def notebooks(notebook, grid, out, *, zip: bool = False, retry_failed: bool = False, kernel: str = "python3",
              cwd=None) -> SweepResults:
    """Run `notebook` once per row of `grid` (see the module docstring) into the folder `out`."""
    rows = plan_rows(notebook, grid, zip)
    folder = Path(checks.path("out", out))
    definition = {"kind": "notebooks", "notebook": str(Path(notebook).resolve()), "rows": rows}
    done = open_folder(folder, definition)
    takes_out_dir = "out_dir" in notebook_parameters(notebook)
    results = dict(done)
    try:
        for index, row in enumerate(rows):
            if index in results and (results[index]["status"] == "ok" or not retry_failed):
                continue
            results[index] = run_one(notebook, index, row, folder, takes_out_dir, kernel, cwd)
            write_results(folder, [results[i] for i in sorted(results)])
    finally:  # an interrupt keeps what finished
        write_results(folder, [results[i] for i in sorted(results)])
    return SweepResults(folder, [results[i] for i in sorted(results)])


def open_folder(folder: Path, definition: dict) -> dict:
    """{row index: result} already in `folder` for this very sweep; BadInput when it holds another sweep."""
    saved = folder / "sweep.json"
    if saved.exists():
        if json.loads(saved.read_text()) != json.loads(json.dumps(definition)):
            raise BadInput(f"{folder} holds another sweep (its sweep.json differs: another notebook or grid). "
                           f"Give another out= folder, or delete this one to start again.")
        table = folder / "results.json"
        return {row["run"]: row for row in json.loads(table.read_text())} if table.exists() else {}
    save_json(definition, saved)
    return {}


def run_one(notebook, index: int, row: dict, folder: Path, takes_out_dir: bool, kernel: str, cwd) -> dict:
    """One papermill run; its result row (status, failing cell and error, seconds, parameters, recorded values)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .record import recorded

    run = folder / "runs" / f"{index:04d}"
    run.mkdir(parents=True, exist_ok=True)
    parameters = dict(row, **({"out_dir": str((run / "out").resolve())} if takes_out_dir and "out_dir" not in row
                              else {}))
    start, status, error, cell = time.perf_counter(), "ok", "", ""
    try:
        papermill.execute_notebook(str(notebook), str(run / "notebook.ipynb"), parameters=parameters,
                                   kernel_name=kernel, cwd=str(cwd or Path(notebook).parent), progress_bar=False)
    except PapermillExecutionError as failure:
        status, error, cell = "failed", f"{failure.ename}: {failure.evalue}", failure.cell_index
    except Exception as failure:  # noqa: BLE001 - a kernel that dies or will not start fails this row only
        status, error = "failed", f"{type(failure).__name__}: {failure}"
    seconds = round(time.perf_counter() - start, 2)
    executed = run / "notebook.ipynb"
    values = recorded(json.loads(executed.read_text())) if executed.exists() else {}
    return {"run": index, "status": status, "seconds": seconds, "error": error, "cell": cell, **row, **values}


def write_results(folder: Path, rows: list) -> None:
    """results.json and results.csv: one row per run, the fixed columns first, then every parameter and value."""
    save_json(rows, folder / "results.json")
    columns = list(FIXED) + sorted({key for row in rows for key in row} - set(FIXED))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    save_text(text.getvalue(), folder / "results.csv")
