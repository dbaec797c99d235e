"""A sweep's results as something to look at, written into its results folder:

- `index.html`: one static page (a sortable table of the runs, a filter per parameter, a gallery of every picture)
  that opens straight from the folder in any browser: inline CSS and JS, no server, no network;
- `contact_sheet.png`: each ok run's first picture captioned with its settings, for a README or a message.

    write_index(folder, rows, ["cfg", "sampler"], "cfg x sampler")
    write_contact_sheet(folder, rows, ["cfg", "sampler"])

`rows` are results.json's rows (see labkit.sweep.folder): the fixed columns, the parameters, the recorded
values, and "images": paths relative to the folder. The page renders every value as escaped text, and carries the
rows as JSON in `<script type="application/json" id="sweep-data">` for sorting (and for anyone reading it back).
"""

import html
import json
import math
from pathlib import Path
from urllib.parse import quote

from ..files import save_text, write_atomic

# The columns every results row starts with (labkit.sweep.folder writes them, and imports them from here)
FIXED = ("run", "status", "seconds", "error", "cell")
SEPARATOR = " · "  # between "name value" pairs in captions
SMALL = 128  # pixels: pictures no larger are drawn twice as large on the contact sheet

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
#summary { color: #555; margin: 0 0 1em; }
#shown { margin-left: 1em; color: #222; }
#filters { display: flex; flex-wrap: wrap; gap: .5em 1.5em; margin-bottom: 1em; }
#filters label { display: flex; gap: .4em; align-items: center; }
#runs { border-collapse: collapse; margin-bottom: 2em; }
#runs th, #runs td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; }
#runs th[data-column] { cursor: pointer; background: #f4f4f4; user-select: none; }
#runs th[aria-sort=ascending]::after { content: " \\25B2"; }
#runs th[aria-sort=descending]::after { content: " \\25BC"; }
#runs tr.failed td { background: #fde8e8; }
#runs td.error { white-space: pre-wrap; color: #a00; max-width: 40em; }
#runs img.thumb { max-width: 64px; max-height: 64px; image-rendering: pixelated; }
#gallery { display: flex; flex-wrap: wrap; gap: 1em; }
#gallery { margin-bottom: 1.5em; }
.tile { margin: 0; width: 128px; }
.tile img { width: 128px; height: auto; image-rendering: pixelated; display: block; }
.hint { color: #666; font-size: .9em; }
.tile figcaption { font-size: .85em; color: #333; word-break: break-word; }
.tile .recorded { color: #666; }
[hidden] { display: none !important; }
"""

SCRIPT = """
(function () {
  const model = JSON.parse(document.getElementById("sweep-data").textContent);
  const table = document.getElementById("runs"), body = table.tBodies[0];
  const blank = v => v === null || v === undefined || v === "";
  function compare(a, b) {
    if (blank(a) || blank(b)) return blank(a) - blank(b);  // empty cells last
    if (typeof a === "number" && typeof b === "number") return a - b;
    if (typeof a === "number" || typeof b === "number") return typeof a === "number" ? -1 : 1;
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  table.querySelectorAll("th[data-column]").forEach(th => th.addEventListener("click", () => {
    const column = th.dataset.column, descending = th.getAttribute("aria-sort") === "ascending";
    const value = tr => model.rows[tr.dataset.index][column];
    const rows = [...body.rows].sort((x, y) => (descending ? -1 : 1) * compare(value(x), value(y)));
    rows.forEach(tr => body.appendChild(tr));
    const gallery = document.getElementById("gallery"), place = new Map(rows.map((tr, i) => [tr.dataset.index, i]));
    [...gallery.querySelectorAll(".tile")].sort((x, y) => place.get(x.dataset.index) - place.get(y.dataset.index))
      .forEach(tile => gallery.appendChild(tile));  // the pictures follow the table's order
    table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }));
  const selects = [...document.querySelectorAll("select[data-parameter]")];
  function filter() {
    const wanted = selects.filter(s => s.selectedIndex > 0).map(s => [s.dataset.parameter, s.value]);
    let shown = 0;
    document.querySelectorAll("#runs tbody tr, #gallery .tile").forEach(el => {
      const values = JSON.parse(el.dataset.params);
      el.hidden = !wanted.every(([name, value]) => values[name] === value);
      if (!el.hidden && el.tagName === "TR") shown += 1;
    });
    document.getElementById("shown").textContent =
      wanted.length ? `showing ${shown} of ${body.rows.length} runs` : "";
  }
  selects.forEach(s => s.addEventListener("change", filter));
})();
"""


def write_index(folder: Path, rows: list[dict], parameters: list[str], title: str) -> Path:
    """Write `folder/index.html` (atomically, replacing an older one) so a sweep can be browsed, sorted and
    filtered from its folder alone, also on a machine without labkit. Returns the path."""
    failed = sum(row.get("status") != "ok" for row in rows)
    summary = f"{len(rows)} runs, {len(rows) - failed} ok, {failed} failed"
    data = {"title": title, "parameters": list(parameters), "columns": table_columns(rows, parameters),
            "rows": [{key: jsonable(value) for key, value in row.items()} for row in rows]}
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p id="summary">{summary} <span id="shown"></span></p>',
        filters_html(rows, parameters),
        "<h2>Pictures</h2>",
        gallery_html(rows, parameters),
        "<h2>Runs</h2>",
        '<p class="hint">Click a column to sort the runs and the pictures; pick values above to filter both.</p>',
        table_html(rows, parameters),
        f'<script type="application/json" id="sweep-data">{script_json(data)}</script>',
        f"<script>{SCRIPT}</script>", "</body>", "</html>", ""])
    return save_text(page, Path(folder) / "index.html")


def write_contact_sheet(folder: Path, rows: list[dict], parameters: list[str], limit: int = 64) -> Path | None:
    """Write `folder/contact_sheet.png`: the first picture of each of the first `limit` ok runs that have one,
    captioned with the run's parameter values, to see a whole sweep in one image. Small pictures (up to 128 px)
    are drawn twice as large so their captions fit. Pictures that are missing or unreadable are left out. Returns
    the path, or None (nothing written) when there is no picture."""
    from PIL import Image, UnidentifiedImageError

    from ..toy.evaluate import contact_sheet

    folder = Path(folder)
    images, captions = [], []
    for row in [row for row in rows if row.get("status") == "ok" and image_paths(row)][:limit]:
        try:
            with Image.open(folder / image_paths(row)[0]) as image:
                images.append(image.convert("RGB"))
        except (OSError, UnidentifiedImageError):
            continue
        captions.append(caption(row, parameters))
    if not images:
        return None
    scale = 2 if max(max(image.size) for image in images) <= SMALL else 1
    sheet = contact_sheet(images, captions, scale=scale)
    return write_atomic(folder / "contact_sheet.png", lambda temp: sheet.save(temp, format="PNG"))


def table_columns(rows: list[dict], parameters: list[str]) -> list[str]:
    """The table's columns: the fixed ones, the parameters, then the recorded values in the order they first
    appear (the list of images has its own thumbnail column)."""
    columns = list(FIXED) + [name for name in parameters if name not in FIXED]
    for row in rows:
        columns += [key for key in row if key not in columns and key != "images"]
    return columns


def recorded_columns(rows: list[dict], parameters: list[str]) -> list[str]:
    """The values the runs recorded: every column that is neither fixed nor a parameter."""
    return [name for name in table_columns(rows, parameters) if name not in FIXED and name not in parameters]


def show(value) -> str:
    """A value as a person reads it: 4.0 as "4", 0.123456789 as "0.123457", None as "", lists as JSON."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def caption(row: dict, names: list[str]) -> str:
    """"cfg 4 · sampler Euler · seed 7": the row's values of `names`, for gallery tiles and the contact sheet."""
    return SEPARATOR.join(f"{name} {show(row.get(name))}" for name in names)


def image_paths(row: dict) -> list[str]:
    """A row's pictures (paths relative to the folder); tolerates a missing key, None or a single path."""
    images = row.get("images") or []
    return [images] if isinstance(images, str) else [str(path) for path in images]


def image_url(path: str) -> str:
    """A picture's address for the page: relative paths URL-quoted (spaces, '#', '?'), absolute ones as file://."""
    path = path.replace("\\", "/")
    if Path(path).is_absolute():
        return Path(path).as_uri()
    return quote(path)


def jsonable(value):
    """`value` as JSON.parse accepts it: NaN and infinities (which json.dumps would write bare) become text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value


def script_json(data) -> str:
    """JSON that is safe inside a <script> element: '<', '>' and '&' as \\u escapes, so a value containing
    "</script>" or "<!--" cannot end the element early."""
    text = json.dumps(data, default=str, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def params_attribute(row: dict, parameters: list[str]) -> str:
    """The data-params attribute the filters read: {parameter: shown value}, compared with the options' values."""
    return html.escape(json.dumps({name: show(row.get(name)) for name in parameters}), quote=True)


def filters_html(rows: list[dict], parameters: list[str]) -> str:
    """A <select> per parameter: "all", then every value the runs used, numbers in numeric order."""
    def order(value):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (not number, value if number else 0, show(value))

    parts = ['<div id="filters">']
    for name in parameters:
        values = {show(row.get(name)): row.get(name) for row in rows}
        options = ['<option value="">all</option>'] + [
            f'<option value="{html.escape(text)}">{html.escape(text) or "(none)"}</option>'
            for text, _ in sorted(values.items(), key=lambda item: order(item[1]))]
        parts.append(f'<label>{html.escape(name)} <select data-parameter="{html.escape(name)}">'
                     f'{"".join(options)}</select></label>')
    return "\n".join(parts + ["</div>"])


def table_html(rows: list[dict], parameters: list[str]) -> str:
    """Table #runs: a row per run (class "failed" when it did not finish), a thumbnail linking to its first
    picture, every value as escaped text."""
    columns, error = table_columns(rows, parameters), ' class="error"'
    head = "".join(f'<th data-column="{html.escape(name)}">{html.escape(name)}</th>' for name in columns)
    lines = ['<table id="runs">', f'<thead><tr>{head}<th class="thumb">picture</th></tr></thead>', "<tbody>"]
    for index, row in enumerate(rows):
        state = "ok" if row.get("status") == "ok" else "failed"
        cells = "".join(f"<td{error if name == 'error' else ''}>{html.escape(show(row.get(name)))}</td>"
                        for name in columns)
        images = image_paths(row)
        thumb = ""
        if images:
            url = html.escape(image_url(images[0]))
            thumb = f'<a href="{url}"><img class="thumb" src="{url}" alt=""></a>'
        lines.append(f'<tr class="{state}" data-index="{index}" data-params="{params_attribute(row, parameters)}">'
                     f'{cells}<td class="thumb">{thumb}</td></tr>')
    return "\n".join(lines + ["</tbody>", "</table>"])


def gallery_html(rows: list[dict], parameters: list[str]) -> str:
    """#gallery: a .tile per picture of every ok run, captioned with its parameters and recorded values."""
    recorded = recorded_columns(rows, parameters)
    tiles = []
    for index, row in enumerate(rows):
        if row.get("status") != "ok":
            continue
        settings, values = html.escape(caption(row, parameters)), html.escape(caption(row, recorded))
        for path in image_paths(row):
            url = html.escape(image_url(path))
            tiles.append(f'<figure class="tile" data-index="{index}" data-params="{params_attribute(row, parameters)}">'
                         f'<a href="{url}"><img src="{url}" alt="{settings}"></a>'
                         f'<figcaption><div>run {html.escape(show(row.get("run")))}{SEPARATOR if settings else ""}'
                         f'{settings}</div><div class="recorded">{values}</div></figcaption></figure>')
    if not tiles:
        tiles.append('<p class="empty">No pictures.</p>')
    return "\n".join(['<div id="gallery">', *tiles, "</div>"])
