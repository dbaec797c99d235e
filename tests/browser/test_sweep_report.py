"""A sweep's index.html in a real browser (Debian's Chromium through Playwright), opened from file:// as a user
would open it from the results folder: a row per run, sorting by a header, filtering by a parameter, every
picture loaded, an HTML-looking prompt shown as text. Leaves test-artifacts/browser/sweep-report-*.png.
"""

import pytest

from labkit.sweep.report import write_index
from tests.sweep.test_report import NASTY, PARAMETERS, make_sweep

pytestmark = pytest.mark.browser

WAIT = 30_000  # ms: a local file, but a slow, shared machine
# The texts of one column's cells, top to bottom, found by the header's data-column.
COLUMN_JS = """column => {
    const i = [...document.querySelectorAll('#runs thead th')].findIndex(th => th.dataset.column === column);
    return [...document.querySelectorAll('#runs tbody tr')].map(tr => tr.cells[i].textContent);
}"""


@pytest.fixture
def page(browser, tmp_path):
    """The report of tests/sweep/test_report.py's five-run sweep, open in a fresh page; fails on any script
    error."""
    index = write_index(tmp_path, make_sweep(tmp_path), PARAMETERS, "cfg x sampler")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(index.as_uri())
    page.wait_for_function("[...document.images].every(image => image.complete)")
    yield page
    context.close()
    assert errors == []


def visible(page, selector) -> int:
    items = page.locator(selector)
    return sum(items.nth(i).is_visible() for i in range(items.count()))


def test_the_table_has_a_row_per_run_and_sorts_by_a_header(page, artifacts):
    assert page.locator("#runs tbody tr").count() == 5
    assert page.locator("#summary").inner_text().startswith("5 runs, 4 ok, 1 failed")
    assert page.locator("#runs tbody tr.failed").count() == 1
    assert "RuntimeError: boom <here>" in page.locator("#runs tr.failed").inner_text()
    cfg = page.locator("#runs th[data-column=cfg]")
    cfg.click()
    assert page.evaluate(COLUMN_JS, "cfg") == ["2", "4", "6", "8", "10"]  # numbers, not text ("10" < "2")
    assert cfg.get_attribute("aria-sort") == "ascending"
    cfg.click()
    assert page.evaluate(COLUMN_JS, "cfg") == ["10", "8", "6", "4", "2"]
    tiles = page.evaluate("[...document.querySelectorAll('#gallery .tile')].map(t => t.innerText)")
    cfgs = [int(text.split("cfg ")[1].split()[0]) for text in tiles]
    assert cfgs == sorted(cfgs, reverse=True)  # the pictures follow the table's order
    page.locator("#runs th[data-column=sampler]").click()
    assert page.evaluate(COLUMN_JS, "sampler") == ["DPM++ 2M"] * 2 + ["Euler"] * 3
    assert cfg.get_attribute("aria-sort") is None
    page.screenshot(path=str(artifacts / "sweep-report-sorted.png"), full_page=True)


def test_a_filter_hides_other_runs_in_table_and_gallery(page, artifacts):
    assert visible(page, "#runs tbody tr") == 5
    assert visible(page, "#gallery .tile") == 5
    sampler = page.locator("select[data-parameter=sampler]")
    sampler.select_option("Euler")
    assert visible(page, "#runs tbody tr") == 3  # runs 1, 3 (failed) and 5
    assert visible(page, "#gallery .tile") == 2  # the failed run has no picture
    assert page.locator("#shown").inner_text() == "showing 3 of 5 runs"
    page.screenshot(path=str(artifacts / "sweep-report-filtered.png"), full_page=True)
    page.locator("select[data-parameter=cfg]").select_option("4")
    assert visible(page, "#runs tbody tr") == 1 and visible(page, "#gallery .tile") == 1
    sampler.select_option("DPM++ 2M")
    assert visible(page, "#runs tbody tr") == 0 and visible(page, "#gallery .tile") == 0
    page.locator("select[data-parameter=cfg]").select_option(index=0)
    assert visible(page, "#runs tbody tr") == 2 and visible(page, "#gallery .tile") == 3
    sampler.select_option(index=0)
    assert visible(page, "#runs tbody tr") == 5 and visible(page, "#gallery .tile") == 5


def test_every_picture_loads(page):
    widths = page.evaluate("[...document.querySelectorAll('#gallery img, #runs img')].map(i => i.naturalWidth)")
    assert len(widths) == 9 and all(width == 64 for width in widths)  # 5 tiles, 4 thumbnails
    assert "cfg 4 · sampler Euler · seed 7" in page.locator("#gallery .tile").first.inner_text()


def test_a_prompt_that_looks_like_html_shows_as_text(page):
    assert NASTY in page.evaluate(COLUMN_JS, "prompt")
    assert page.locator("#runs b, #gallery b").count() == 0
    assert NASTY in page.locator("#gallery .tile .recorded").nth(1).inner_text()
