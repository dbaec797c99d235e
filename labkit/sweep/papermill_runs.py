"""Notebook sweeps: a notebook run with papermill once per row of a grid, into one resumable results folder.

    labkit.sweep.notebooks("notebooks/05_sampling_loop.ipynb", {"seed": "0-3", "steps": [10, 30]}, out="runs/05")

The folder holds `sweep.json` (the sweep's definition: a folder never mixes two sweeps), `runs/NNNN/` (the executed
notebook, and the pictures it wrote when it has an `out_dir` parameter), and `results.csv` / `results.json`: one
row per run with its status ("ok", or "failed" with the failing cell and error), seconds, every parameter and every
value the notebook recorded with `labkit.record`. Running the same sweep again skips the rows already done (and,
with `retry_failed=True`, runs the failed ones again). One failure never stops the others; Ctrl-C stops after
saving what finished, and the folder stays resumable.
"""

import json
import tempfile
import time
from pathlib import Path

from .. import checks
from ..errors import BadInput
from .engines import Job
from .folder import SweepResults, open_folder
from .runner import check_engine_args, check_size, connect, engine_for, run, to_run
from .values import grid_rows

KINDS = {"int": int, "float": float, "str": str, "bool": bool}  # papermill's inferred type names -> Python
PICTURES = (".png", ".jpg", ".jpeg", ".webp")
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]  # the kernels' own log (a TCP warning per run) is not the sweep's
# Once its cells ran, a kernel is stopped at once: a graceful stop waits ~2 s for a kernel holding torch to exit


def notebook_parameters(notebook) -> dict:
    """{name: Python type or None} of a notebook's `parameters` cell (papermill's inspection: the annotation, else
    the default's literal); BadInput without one."""
    import papermill

    path = Path(checks.path("notebook", notebook))
    if not path.is_file():
        raise BadInput(f"notebook={str(notebook)!r}: no such notebook file.")
    with tempfile.TemporaryDirectory(prefix="labkit-inspect-") as scratch:
        found = papermill.inspect_notebook(str(with_kernel(path, Path(scratch))))
    if not found:
        raise BadInput(f"{path.name} has no `parameters` cell, so a sweep cannot set anything in it: tag the cell that "
                       f"sets its settings with the tag 'parameters' (JupyterLab: the cell's property inspector).")
    return {name: KINDS.get(info.get("inferred_type_name")) or default_kind(info.get("default")) for name, info
            in found.items()}


def with_kernel(path: Path, scratch: Path) -> Path:
    """The notebook, or a copy in `scratch` naming a python kernel when it names none (papermill's inspection
    needs one; the sweep's runs name theirs with kernel=)."""
    import nbformat

    notebook = nbformat.read(str(path), as_version=4)
    if notebook.metadata.get("kernelspec", {}).get("name"):
        return path
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    copy = scratch / path.name
    nbformat.write(notebook, str(copy))
    return copy


def default_kind(source: str | None):
    """The type of a parameter's default as written (`steps = 20` -> int); None for an expression or None."""
    import ast

    try:
        value = ast.literal_eval(source or "None")
    except (ValueError, SyntaxError):
        return None
    return next((kind for kind in (bool, int, float, str) if type(value) is kind), None)


def plan_rows(notebook, grid, zip: bool = False, known: dict | None = None) -> list[dict]:
    """The runs of a sweep: `grid` {parameter: values or A1111 text} as a product (or zipped), a list of row
    dicts, or a .csv/.json file of rows, each checked against the notebook's parameters (names and the types of
    their defaults)."""
    known = notebook_parameters(notebook) if known is None else known
    rows = grid_rows(grid, known, lambda names: unknown_names(names, known), zip)
    for row in rows:
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
              cwd=None, engine: str = "local", workers=1, address=None, confirm: bool = False,
              progress: bool = True) -> SweepResults:
    """Run `notebook` once per row of `grid` (see the module docstring) into the folder `out`.

    `engine="local"` runs `workers` notebooks at once on this machine (default 1; 0 runs papermill in this
    process), the cores divided among their kernels; `engine="ray"` makes each run a Ray task (`address=None`
    starts Ray here, "auto" or "host:port" joins a cluster). Over 1000 rows need `confirm=True`."""
    known = notebook_parameters(notebook)
    rows = plan_rows(notebook, grid, zip, known)
    check_engine_args(engine, address, 0, workers)
    check_size(len(rows), "", confirm)
    path = Path(notebook).resolve()
    source = path.read_text(encoding="utf-8")
    import hashlib

    # the notebook's text belongs to the definition: an edited notebook's results never mix with the old ones'
    definition = {"kind": "notebooks", "notebook": str(path), "sha256": hashlib.sha256(source.encode()).hexdigest(),
                  "rows": rows}
    pool = connect(engine, None, run_notebook, address, 0)
    folder, done = open_folder(out, definition)
    takes_out_dir = "out_dir" in known
    pending = to_run(rows, done, retry_failed)
    payload = {"source": source, "name": path.name, "cwd": str(cwd or path.parent), "kernel": kernel,
               "takes_out_dir": takes_out_dir}
    jobs = [Job([i], [rows[i]], dict(payload, run=i, row=rows[i])) for i in pending]
    engine_object = engine_for(pool, None, run_notebook, workers, len(jobs))
    return run(engine_object, jobs, folder, done, list(dict.fromkeys(k for r in rows for k in r)), path.stem,
               progress)


def run_notebook(state, payload: dict) -> dict:
    """One papermill run in a scratch folder; its result row (status, failing cell and error, seconds,
    parameters, recorded values, pictures) and its files (the executed notebook, what it wrote to out_dir)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .record import recorded

    index, row = payload["run"], payload["row"]
    with tempfile.TemporaryDirectory(prefix="labkit-run-") as scratch:
        scratch = Path(scratch)
        source, executed, out = scratch / payload["name"], scratch / "executed.ipynb", scratch / "out"
        source.write_text(payload["source"], encoding="utf-8")
        parameters = dict(row, **({"out_dir": str(out)} if payload["takes_out_dir"] and "out_dir" not in row else {}))
        cwd = payload["cwd"] if Path(payload["cwd"]).is_dir() else str(scratch)
        start, status, error, cell = time.perf_counter(), "ok", "", ""
        try:
            papermill.execute_notebook(str(source), str(executed), parameters=parameters,
                                       kernel_name=payload["kernel"], cwd=cwd, progress_bar=False,
                                       extra_arguments=QUIET_KERNEL, shutdown_kernel="immediate")
        except PapermillExecutionError as failure:
            status, error, cell = "failed", f"{failure.ename}: {failure.evalue}", failure.cell_index
        except Exception as failure:  # noqa: BLE001 - a kernel that dies or will not start fails this row only
            status, error = "failed", f"{type(failure).__name__}: {failure}"
        seconds = round(time.perf_counter() - start, 2)
        base = f"runs/{index:04d}"
        files = {f"{base}/notebook.ipynb": executed.read_bytes()} if executed.exists() else {}
        files.update({f"{base}/out/{f.relative_to(out).as_posix()}": f.read_bytes()
                      for f in sorted(out.rglob("*")) if f.is_file()} if out.is_dir() else {})
    values = recorded(json.loads(files[f"{base}/notebook.ipynb"])) if f"{base}/notebook.ipynb" in files else {}
    images = [name for name in files if name.lower().endswith(PICTURES)]
    return {"rows": [{"run": index, "status": status, "seconds": seconds, "error": error, "cell": cell, **row,
                      **values, "images": images}], "files": files}
