"""A sweep's rows: values written in A1111's X/Y/Z plot syntax, combined as a cartesian product or zipped.

A1111's value syntax (scripts/xyz_grid.py), for whole numbers:
    "1, 5, 9"          a list (comma-separated, CSV quoting: '"a, b", c' is two values)
    "1-5"              1, 2, 3, 4, 5 (both ends included)
    "1-10 (+3)"        1, 4, 7, 10: a step; "(-3)" counts down ("10-1 (-3)" is 10, 7, 4: A1111 adds 1 to the end)
    "10-20 [5]"        5 values spread evenly from 10 to 20 (rounded down to whole numbers for whole-number axes)
and for decimals the same with a float step (default 1; the end is included when a step lands on it) or count.
Ranges and single values mix in one list: "1-3, 8, 10-20 [3]". Texts are lists only.
"""

import csv
import io
import re

from ..errors import BadInput

_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*\d+(?:\.\d*)?"
RANGE = {
    int: re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(([+-]\d+)\s*\))?\s*"),
    float: re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*"),
}
COUNT = {
    int: re.compile(rf"\s*({_INT})\s*-\s*({_INT})\s*\[(\d+)\s*\]\s*"),
    float: re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})\s*\[(\d+(?:\.\d*)?)\s*\]\s*"),
}
KINDS = (int, float, str)


def split_list(text: str) -> list[str]:
    """A1111's list: CSV items, stripped, empty ones dropped."""
    rows = csv.reader(io.StringIO(text), skipinitialspace=True)
    return [item.strip() for row in rows for item in row if item.strip()]


def parse_values(text, kind=None, name: str = "values") -> list:
    """The values an A1111-style text means for an axis of `kind` (int, float or str; None: int when every item
    reads as whole numbers, else float when they read as numbers, else str). A list or tuple is taken as it is."""
    if isinstance(text, (list, tuple)):
        if not text:
            raise BadInput(f"{name}: the list of values is empty; give at least one value.")
        return list(text)
    if not isinstance(text, str):
        raise BadInput(f"{name}: give a list of values or A1111's text for them (e.g. '1-5', '3, 7, 11'), not "
                       f"{type(text).__name__}.")
    items = split_list(text)
    if not items:
        raise BadInput(f"{name}={text!r} holds no values; write them as A1111 does: '1, 2, 3', '1-5', '1-10 (+2)', "
                       f"'10-20 [5]'.")
    if kind is not None and kind not in KINDS:
        raise BadInput(f"{name}: kind must be int, float or str, not {kind!r}.")
    if kind is None:  # whole numbers, else numbers, else texts
        for candidate in (int, float):
            try:
                return [value for item in items for value in _expand(item, candidate)]
            except ValueError:
                continue
        return items
    try:
        return [value for item in items for value in _expand(item, kind)]
    except ValueError as error:
        raise BadInput(f"{name}={text!r}: {error}. Write {kind.__name__} values as A1111 does: "
                       f"'1, 2, 3', '1-5', '1-10 (+2)', '10-20 [5]'.") from None


def _expand(item: str, kind) -> list:
    """One list item: a range of `kind`, or a single value of it (ValueError when it is neither)."""
    if kind is str:
        return [item]
    import numpy as np

    found = RANGE[kind].fullmatch(item)
    if found is not None:
        start, end = (kind(found.group(i).replace(" ", "")) for i in (1, 2))
        step = kind(found.group(3)) if found.group(3) is not None else kind(1)
        if step == 0:
            raise ValueError(f"{item!r} has a step of 0")
        if kind is int:
            return list(range(start, end + 1, step))
        return [float(v) for v in np.arange(start, end + step, step)]
    found = COUNT[kind].fullmatch(item)
    if found is not None:
        start, end = (kind(found.group(i).replace(" ", "")) for i in (1, 2))
        spread = np.linspace(start, end, num=int(float(found.group(3))))
        return [int(v) for v in spread] if kind is int else [float(v) for v in spread]
    return [kind(item.replace(" ", ""))]


def field_kind(field: str | None):
    """int, float or str: how a Params field's values written as text are read (None for no field: the values
    tell)."""
    from dataclasses import fields

    from ..params import Params

    types = {f.name: f.type.__name__ if isinstance(f.type, type) else str(f.type) for f in fields(Params)}
    if field not in types:
        return None
    return int if types[field].startswith("int") else float if types[field].startswith("float") else str


def product_rows(axes: dict) -> list[dict]:
    """Every combination of the axes' values {name: [values]}, the last axis changing fastest."""
    rows = [{}]
    for name, values in axes.items():
        rows = [{**row, name: value} for row in rows for value in values]
    return rows


def zipped_rows(axes: dict) -> list[dict]:
    """Row i takes value i of every axis; the axes must be as long as each other."""
    lengths = {name: len(values) for name, values in axes.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}: {n}" for name, n in lengths.items())
        raise BadInput(f"Zipped axes must have as many values each ({shown}); make them equal, or use the "
                       f"product (zip=False) for every combination.")
    return [dict(zip(axes, combo)) for combo in zip(*axes.values())]


def grid_rows(grid, kinds: dict, check_names, zip: bool = False) -> list[dict]:
    """A sweep's rows from a grid {name: values or A1111 text} (product, or zipped), a list of row dicts, or a
    .csv / .json file of rows. `kinds` {name: int, float, str or None} reads texts; `check_names(names)` raises for
    names the sweep cannot set."""
    from pathlib import Path

    if isinstance(grid, (str, Path)):
        grid = rows_from_file(grid)
    if isinstance(grid, (list, tuple)):
        rows = [dict(row) for row in grid if isinstance(row, dict)]
        if len(rows) != len(grid):
            raise BadInput("A sweep's rows are dicts of {parameter: value}; give a list of dicts or a grid dict.")
    elif isinstance(grid, dict):
        check_names(list(grid))
        axes = {name: parse_values(values, kinds.get(name), name=name) for name, values in grid.items()}
        rows = zipped_rows(axes) if zip else product_rows(axes)
    else:
        raise BadInput(f"grid= takes a dict {{parameter: values}}, a list of rows or a .csv/.json file of rows, not "
                       f"{type(grid).__name__}.")
    if not rows or rows == [{}]:
        raise BadInput("The sweep has no rows: give at least one parameter with at least one value.")
    for row in rows:
        check_names(list(row))
    return rows


def rows_from_file(path) -> list[dict]:
    """Rows from a .json file (a list of objects) or a .csv file (a header of names; numbers and true/false read
    as such, other cells as text, empty cells left out)."""
    import json
    from pathlib import Path

    path = Path(path).expanduser()
    if path.suffix.lower() not in (".csv", ".json") or not path.is_file():
        raise BadInput(f"grid={str(path)!r}: give a dict of values, a list of rows, or an existing .csv or .json file "
                       f"of rows (one row per run, a column per parameter).")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInput(f"{path.name} is not valid JSON ({error}); it should hold a list of {{name: value}} rows.") \
                from None
        if not isinstance(rows, list):
            raise BadInput(f"{path.name} should hold a list of {{name: value}} rows, not a {type(rows).__name__}.")
        return rows
    return [{name: cell_value(cell) for name, cell in row.items() if name and cell not in (None, "")}
            for row in csv.DictReader(io.StringIO(text))]


def cell_value(cell: str):
    """A CSV cell as the value it writes: 7 -> int, 7.5 -> float, true/false -> bool, anything else text."""
    lowered = cell.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            continue
    return cell
