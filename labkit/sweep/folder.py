"""A sweep's results folder, shared by notebook and generation sweeps.

    sweep.json        the sweep's definition: a folder never mixes two sweeps
    results.json      one row per run (status, seconds, error, cell, every parameter and recorded value, images):
                      what a resumed sweep reads back
    results.csv       the same table for spreadsheets; results.parquet too when pandas and pyarrow are installed
    index.html        a static page: sortable table and a gallery filtered by parameter (report.py)
    contact_sheet.png the pictures side by side, captioned by their parameters (report.py)
"""

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import checks
from ..errors import BadInput
from ..files import save_json, save_text, write_atomic
from .report import FIXED, write_contact_sheet, write_index


@dataclass(frozen=True)
class SweepResults:
    """What a sweep left in its folder: `rows` (one dict per run, as results.json holds them), the folder and the
    names of the parameters it varied. `index` is the page to open in a browser."""

    folder: Path
    rows: list
    parameters: list = field(default_factory=list)

    @property
    def failed(self) -> list:
        return [row for row in self.rows if row["status"] != "ok"]

    @property
    def index(self) -> Path:
        return self.folder / "index.html"

    def table(self):
        """The results as a pandas DataFrame (pandas needed: `pip install labkit[tables]`)."""
        try:
            import pandas
        except ImportError:
            raise BadInput("SweepResults.table() needs pandas: pip install 'labkit[tables]' (or read "
                           f"{self.folder / 'results.csv'} with the csv module).") from None
        return pandas.DataFrame(self.rows)

    def __repr__(self) -> str:
        return f"<SweepResults {self.folder}: {len(self.rows)} runs, {len(self.failed)} failed>"


def open_folder(out, definition: dict) -> tuple[Path, dict]:
    """(folder, {row index: result} already there for this very sweep); BadInput when it holds another sweep."""
    folder = Path(checks.path("out", out)).expanduser()
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"out={str(out)!r} is a file; give a folder for the sweep's results.")
    saved = folder / "sweep.json"
    if saved.exists():
        if json.loads(saved.read_text()) != json.loads(json.dumps(definition)):
            raise BadInput(f"{folder} holds another sweep (its sweep.json differs: another notebook, model, grid or "
                           f"settings, or the swept notebook was edited since). Give another out= folder, or delete "
                           f"this one to start again.")
        table = folder / "results.json"
        return folder, ({row["run"]: row for row in json.loads(table.read_text())} if table.exists() else {})
    if folder.is_dir() and any(folder.iterdir()):
        raise BadInput(f"{folder} is not empty and holds no sweep.json: give an empty or new out= folder, so no file "
                       f"of yours is mixed with or replaced by the sweep's.")
    save_json(definition, saved)
    return folder, {}


def write_results(folder: Path, rows: list, parquet: bool = True) -> None:
    """results.json, results.csv (and results.parquet with pandas + pyarrow, unless `parquet` is False: while a
    sweep runs): the fixed columns first, then every parameter and recorded value."""
    save_json(rows, folder / "results.json")
    columns = list(FIXED) + sorted({key for row in rows for key in row} - set(FIXED))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: flat(v) for k, v in row.items()})
    save_text(text.getvalue(), folder / "results.csv")
    if parquet:
        write_parquet(folder / "results.parquet", rows, columns)


def flat(value):
    """Lists and dicts as JSON text: a table cell holds one scalar."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def write_parquet(path: Path, rows: list, columns: list) -> bool:
    """results.parquet when pandas and pyarrow are installed (False otherwise); a column of mixed types is
    written as text so one odd value cannot lose the file."""
    try:
        import pandas
        import pyarrow  # noqa: F401 - pandas' parquet engine
    except ImportError:
        return False
    data = {}
    for name in columns:
        values = [flat(row.get(name)) for row in rows]
        kinds = {type(v) for v in values if v is not None}
        mixed = len(kinds) > 1 and not kinds <= {int, float}
        data[name] = [None if v is None else str(v) for v in values] if mixed else values
    frame = pandas.DataFrame(data, columns=columns)
    write_atomic(path, lambda temp: frame.to_parquet(temp, index=False))
    return True


def save_files(folder: Path, files: dict) -> None:
    """Write what a run sent back ({path relative to the folder: bytes}); a run redone replaces its own files."""
    for name, data in files.items():
        target = (folder / name).resolve()
        if folder.resolve() not in target.parents:
            raise BadInput(f"A run sent back a file outside its sweep folder: {name!r}.")
        write_atomic(target, lambda temp, data=data: temp.write_bytes(data))


def finish(folder: Path, rows: list, parameters: list, title: str) -> SweepResults:
    """Write the tables, index.html and the contact sheet; the SweepResults."""
    write_results(folder, rows)
    write_index(folder, rows, parameters, title)
    write_contact_sheet(folder, rows, parameters)
    return SweepResults(folder, rows, list(parameters))
