"""`labkit.record(name, value)`: a value a notebook reports to the sweep that runs it (as scrapbook's `glue` does).

In a notebook the value is displayed as a JSON output of its own mimetype, which an executed copy keeps and
`recorded(notebook)` reads back; outside a kernel (a plain script) it is simply returned.
"""

import json
import math

from .. import checks
from ..errors import BadInput

RECORD_MIME = "application/vnd.labkit.record+json"


def record(name: str, value):
    """Report `value` (anything JSON can hold: a number, text, bool, None, or lists and dicts of them) under
    `name` to the sweep running this notebook; returns `value`."""
    if not checks.text("name", name).strip():
        raise BadInput("record(name, value): name is empty; give the column name the sweep's results will use.")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        shown = f"{value!r}"[:60]
        hint = " (NaN and infinity are not JSON: record None or a text)" if isinstance(value, float) and \
            not math.isfinite(value) else " (convert it: float(x), x.tolist(), str(x))"
        raise BadInput(f"record({name!r}, {shown}): a recorded value must be JSON{hint}.") from None
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return value
    if get_ipython() is not None:
        display({RECORD_MIME: {"name": name, "value": value}}, raw=True)
    return value


def recorded(notebook) -> dict:
    """{name: value} of every `record` in an executed notebook (nbformat node or dict), the last one winning."""
    found = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data", {}).get(RECORD_MIME)
            if isinstance(data, dict) and "name" in data:
                found[data["name"]] = data.get("value")
    return found
