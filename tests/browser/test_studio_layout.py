"""The Studio's layout at 1280x800 and 1920x1080 (issue #19): after a batch of four and a very long error, no
box of the panel overflows sideways, no two visible neighbours overlap, and the text boxes fit their column.
Screenshots: test-artifacts/browser/layout-WxH.png."""

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: bin/setup installs it")

from tests.browser.test_studio_browser import STUDIO, open_page, run_all_cells, run_code  # noqa: E402

SIZES = [(1280, 800), (1920, 1080)]
SETUP = """import labkit
from labkit.ui import Studio
s = Studio(labkit.open("toy"))
s"""
AFTER = """s.sampling.seed.value, s.sampling.batch.value, s.sampling.steps.value = 3, 4, 16
s.generate()
s._error(labkit.BadInput("a very long error " + "x" * 3000))"""

# Every problem a user would see: a box wider inside than out (a sideways scrollbar or clipped content), visible
# neighbours that overlap, a text box sticking out of its box.
MEASURE_JS = """(root) => {
    const problems = [], seen = el => el.offsetParent !== null && el.getClientRects().length > 0;
    const name = el => (el.className && el.className.baseVal === undefined ? el.className : el.tagName)
        .toString().split(' ').filter(c => c.startsWith('labkit') || c.startsWith('widget')).join('.');
    for (const box of root.querySelectorAll('.widget-box, .widget-hbox, .widget-vbox')) {
        if (!seen(box)) continue;
        const style = getComputedStyle(box);
        if (box.scrollWidth > box.clientWidth + 1 && style.overflowX !== 'hidden')
            problems.push(`overflow ${name(box)}: ${box.scrollWidth} > ${box.clientWidth}`);
        const kids = [...box.children].filter(seen).map(k => [k, k.getBoundingClientRect()]);
        for (let i = 0; i < kids.length; i++) for (let j = i + 1; j < kids.length; j++) {
            const [a, ra] = kids[i], [b, rb] = kids[j];
            const dx = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
            const dy = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
            if (dx > 1 && dy > 1) problems.push(`overlap ${name(a)} / ${name(b)}: ${dx.toFixed(0)}x${dy.toFixed(0)}`);
        }
    }
    for (const area of root.querySelectorAll('textarea')) {
        const r = area.getBoundingClientRect(), box = area.closest('.widget-vbox').getBoundingClientRect();
        if (r.right > box.right + 1) problems.push(`textarea sticks out by ${(r.right - box.right).toFixed(0)}`);
    }
    const output = root.closest('.jp-OutputArea-output');
    if (output && output.scrollWidth > output.clientWidth + 1)
        problems.push(`the output area scrolls sideways: ${output.scrollWidth} > ${output.clientWidth}`);
    return problems;
}"""


@pytest.fixture(scope="module")
def layout_page(jupyter, browser):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(AFTER)],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                           "language": "python"}})
    nbformat.write(nb, str(jupyter.root / "layout.ipynb"))
    console = []
    page = open_page(browser, jupyter.url("lab/workspaces/layout/tree/layout.ipynb"), console)
    run_all_cells(page)
    page.wait_for_selector(f"{STUDIO} .labkit-error")
    yield page
    page.context.close()
    jupyter.shutdown_kernels("layout.ipynb")


@pytest.mark.parametrize("width, height", SIZES)
def test_nothing_overflows_or_overlaps(layout_page, artifacts, width, height):
    page = layout_page
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(500)  # the panel reflows
    studio = page.locator(STUDIO).first
    studio.scroll_into_view_if_needed()
    studio.screenshot(path=str(artifacts / f"layout-{width}x{height}.png"))
    assert page.locator(f"{STUDIO} .labkit-picture").count() == 4  # the batch is shown
    problems = studio.evaluate(MEASURE_JS)
    assert problems == [], "\n".join(problems)


def test_clicking_a_batch_picture_picks_it(layout_page):
    page = layout_page
    page.set_viewport_size({"width": 1280, "height": 800})
    page.locator(f"{STUDIO} .labkit-picture").nth(2).click()
    page.wait_for_function("(sel) => document.querySelectorAll(sel)[2].classList.contains('labkit-selected')",
                           arg=f"{STUDIO} .labkit-picture")
    assert run_code(page, "[s.selected, s.batch_view.selected]") == [2, 2]
