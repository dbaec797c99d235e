"""The Studio's hires fix tab in a real browser (issue #21): hires fix switched on and set in the page, Generate
shows the second pass's bigger picture (the Result keeps the first pass and the settings), and "upscale" makes the
shown picture bigger with the toy-upscaler and shows it. Screenshots: test-artifacts/browser/hires-*.png."""

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: bin/setup installs it")

from tests.browser.test_studio_browser import (OUTPUT, STUDIO, generate, open_page, run_all_cells,  # noqa: E402
                                               run_code, select_tab)

SETUP = """import labkit
from labkit.ui import Studio
lab = labkit.open("toy")
s = Studio(lab)
s.sampling.seed.value, s.sampling.steps.value = 3, 8
s"""
TAB = f"{STUDIO} .labkit-hires-enabled"
NATURAL = "(img) => img.complete ? img.naturalWidth : 0"


@pytest.fixture(scope="module")
def hires_page(jupyter, browser, artifacts):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(nb, str(jupyter.root / "hires.ipynb"))
    console = []
    page = open_page(browser, jupyter.url("lab/workspaces/hires/tree/hires.ipynb"), console)
    run_all_cells(page)
    yield page
    (artifacts / "hires-console.txt").write_text("\n".join(console) + "\n")
    page.context.close()
    jupyter.shutdown_kernels("hires.ipynb")


def test_hires_fix_set_in_the_page_draws_the_bigger_picture(hires_page, artifacts):
    page = hires_page
    select_tab(page, "hires fix")
    page.locator(f"{TAB} input[type=checkbox]").first.check()
    page.locator(f"{STUDIO} .labkit-hires-upscaler select").first.select_option("toy-upscaler")
    handle = page.locator(f"{STUDIO} .labkit-hires-steps .noUi-handle").first
    handle.focus()
    for _ in range(4):  # the slider's own keys: 0 -> 4 hires steps
        page.keyboard.press("ArrowRight")
    page.wait_for_selector(f"{STUDIO} :text('64x64 → 128x128')")
    assert generate(page).startswith("done")
    page.wait_for_function(f"() => {{ const i = document.querySelector('{OUTPUT}'); "
                           f"return i && i.complete && i.naturalWidth === 128; }}")
    got = run_code(page, "[s.result.image.size[0], s.result.first_pass[0].size[0], s.result.params.hires, "
                         "s.result.params.hires_upscaler, s.result.params.hires_steps]")
    assert got == [128, 64, True, "toy-upscaler", 4]
    page.locator(STUDIO).first.screenshot(path=str(artifacts / "hires-generated.png"))


def test_upscale_shows_the_bigger_picture(hires_page, artifacts):
    page = hires_page
    if run_code(page, "s.result is None"):
        assert generate(page).startswith("done")
    select_tab(page, "hires fix")
    page.locator(f"{STUDIO} .labkit-upscale-with select").first.select_option("toy-upscaler")
    page.locator(f"{STUDIO} button.labkit-upscale").click()
    page.wait_for_selector(f"{STUDIO} .labkit-upscale-message :text('now the input picture')")
    shown = page.locator(f"{STUDIO} img.labkit-upscaled").first
    shown.wait_for()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=shown.element_handle())
    width = shown.evaluate(NATURAL)
    size, result = run_code(page, "[list(s.input_image.size), s.result.image.size[0]]")
    assert size[0] == width == 2 * result  # the picture shown, twice as big, now the Studio's input
    page.locator(STUDIO).first.screenshot(path=str(artifacts / "hires-upscaled.png"))
