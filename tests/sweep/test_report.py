"""labkit.sweep.report: index.html carries every run as escaped text and safe JSON, with the table, filters and
gallery the page's script works on; contact_sheet.png grows with the runs and enlarges small pictures.
(tests/browser/test_sweep_report.py clicks through the page in Chromium.)"""

import json
import math
from html.parser import HTMLParser

import pytest
from PIL import Image

from labkit.sweep.report import FIXED, image_url, show, write_contact_sheet, write_index

PARAMETERS = ["cfg", "sampler", "seed"]
NASTY = "<b>x</b></script>"  # a prompt that would break a page that pasted it in unescaped
DATA_START = '<script type="application/json" id="sweep-data">'


def row(run, cfg, sampler, images, status="ok", prompt="a red circle on white", **extra):
    failed = status != "ok"
    return {"run": run, "status": status, "seconds": 1.24, "error": "RuntimeError: boom <here>" if failed else "",
            "cell": "3" if failed else "", "cfg": cfg, "sampler": sampler, "seed": 7, "prompt": prompt,
            "adherence": None if failed else 0.75, "images": images, **extra}


def make_sweep(folder, size=64) -> list[dict]:
    """A results folder with five runs (cfg 2..10, one failed, one with two pictures, one with a space in its
    picture's name) and their PNGs; returns the rows."""
    rows = [row(1, 4.0, "Euler", ["images/0001.png"]),
            row(2, 2.0, "DPM++ 2M", ["images/0002.png", "images/0002b.png"], prompt=NASTY),
            row(3, 8.0, "Euler", [], status="failed"),
            row(4, 6.0, "DPM++ 2M", ["images/run 4.png"]),
            row(5, 10.0, "Euler", ["images/0005.png"])]
    colors = iter(["red", "green", "blue", "orange", "purple"])
    for r in rows:
        for path in r["images"]:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (size, size), next(colors)).save(folder / path)
    return rows


class Elements(HTMLParser):
    """The page's start tags, as (tag, attributes), in order."""

    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def find(self, tag, name, value=None) -> list[dict]:
        """The attributes of each `tag` that has attribute `name` (equal to `value` when one is given)."""
        return [a for t, a in self.tags if t == tag and name in a and value in (None, a[name])]


def embedded(text) -> dict:
    """The JSON in the sweep-data element, parsed strictly (NaN is not JSON)."""
    start = text.index(DATA_START) + len(DATA_START)
    return json.loads(text[start:text.index("</script>", start)], parse_constant=pytest.fail)


@pytest.fixture
def sweep(tmp_path):
    rows = make_sweep(tmp_path)
    return tmp_path, rows, write_index(tmp_path, rows, PARAMETERS, "cfg x sampler <test>")


def test_the_page_carries_every_run_as_json(sweep):
    folder, rows, index = sweep
    assert index == folder / "index.html"
    data = embedded(index.read_text())
    assert data["rows"] == rows
    assert data["parameters"] == PARAMETERS
    assert data["columns"] == [*FIXED, *PARAMETERS, "prompt", "adherence"]


def test_values_are_escaped_in_the_markup_and_in_the_json(sweep):
    text = sweep[2].read_text()
    assert text.count("</script>") == 2  # the two elements' own ends; the prompt's is \u003c/script\u003e
    assert "<b>" not in text and "<here>" not in text and "<test>" not in text
    assert "&lt;b&gt;x&lt;/b&gt;&lt;/script&gt;" in text  # the table cell, shown as text
    assert "<title>cfg x sampler &lt;test&gt;</title>" in text
    assert "\\u003c/script\\u003e" in text


def test_summary_table_filters_and_gallery(sweep):
    text = sweep[2].read_text()
    page = Elements(text)
    assert "5 runs, 4 ok, 1 failed" in text
    assert [a["data-column"] for a in page.find("th", "data-column")] == [*FIXED, *PARAMETERS, "prompt",
                                                                            "adherence"]
    runs = page.find("tr", "data-index")
    assert len(runs) == 5
    assert [a["class"] for a in runs] == ["ok", "ok", "failed", "ok", "ok"]
    assert json.loads(runs[0]["data-params"]) == {"cfg": "4", "sampler": "Euler", "seed": "7"}
    assert "RuntimeError: boom &lt;here&gt;" in text
    assert [a["data-parameter"] for a in page.find("select", "data-parameter")] == PARAMETERS
    tiles = page.find("figure", "class", "tile")
    assert [a["data-index"] for a in tiles] == ["0", "1", "1", "3", "4"]  # every picture of every ok run
    assert "cfg 4 · sampler Euler · seed 7" in text
    assert 'src="images/run%204.png"' in text
    assert len(page.find("img", "class", "thumb")) == 4  # the failed run has none


def test_filter_options_are_every_value_in_order(sweep):
    text = sweep[2].read_text()
    cfg = text[text.index('data-parameter="cfg"'):]
    cfg = cfg[:cfg.index("</select>")]
    assert [o.split(">")[1] for o in cfg.split("<option")[1:]] == ["all</option", "2</option", "4</option",
                                                                    "6</option", "8</option", "10</option"]


def test_odd_values_still_make_valid_json(tmp_path):
    rows = [{"run": 1, "status": "ok", "seconds": math.nan, "cfg": math.inf, "tags": ["a", "<b>"],
             "extra": {"k": 1}, "images": None}]
    text = write_index(tmp_path, rows, ["cfg"], "odd").read_text()
    assert embedded(text)["rows"][0]["seconds"] == "nan"
    assert embedded(text)["rows"][0]["tags"] == ["a", "<b>"]
    assert "No pictures." in text


def test_writing_again_replaces_the_page_and_leaves_no_temp_files(sweep):
    folder, rows, index = sweep
    write_index(folder, rows[:2], PARAMETERS, "again")
    assert "2 runs, 2 ok, 0 failed" in index.read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["images", "index.html"]


def test_show():
    assert [show(v) for v in (4.0, 0.123456789, None, True, "Euler", [1, 2], 3)] == [
        "4", "0.123457", "", "True", "Euler", "[1, 2]", "3"]


def test_image_urls():
    assert image_url("images/a b#1.png") == "images/a%20b%231.png"
    assert image_url("images\\0001.png") == "images/0001.png"
    assert image_url("/tmp/x.png") == "file:///tmp/x.png"


def test_the_contact_sheet_has_a_cell_per_ok_run_and_enlarges_small_pictures(tmp_path):
    rows = make_sweep(tmp_path)
    sheet = write_contact_sheet(tmp_path, rows, PARAMETERS)
    assert sheet == tmp_path / "contact_sheet.png"
    with Image.open(sheet) as image:
        assert image.width == 4 * (64 * 2 + 4)  # 4 ok runs, their first pictures, twice as large
        full = image.size
    with Image.open(write_contact_sheet(tmp_path, rows, PARAMETERS, limit=2)) as image:
        assert image.width == 2 * (64 * 2 + 4) and image.height == full[1]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_large_pictures_are_not_enlarged(tmp_path):
    rows = make_sweep(tmp_path, size=200)
    with Image.open(write_contact_sheet(tmp_path, rows, PARAMETERS)) as image:
        assert image.width == 4 * (200 + 4)


def test_no_pictures_no_contact_sheet(tmp_path):
    rows = make_sweep(tmp_path)
    assert write_contact_sheet(tmp_path, [r for r in rows if r["status"] != "ok"], PARAMETERS) is None
    missing = [dict(r, images=["images/gone.png"]) for r in rows]
    assert write_contact_sheet(tmp_path, missing, PARAMETERS) is None
    assert not (tmp_path / "contact_sheet.png").exists()
