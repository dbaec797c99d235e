"""The Studio's PNG Info, X/Y/Z plot and models tabs in a real browser (issue #19): a PNG dropped (a real drop
event carrying the file) and one chosen through the upload button show their recipe and send their settings back;
the X/Y/Z plot draws a labelled grid from axes chosen in the page; the models tab lists an A1111 folder with family
badges and loads another model. Each tab (and the ControlNet one) is measured for sideways overflow at 1280x800.
Screenshots: test-artifacts/browser/tab-*.png."""

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: bin/setup installs it")

from tests.browser.test_studio_browser import STUDIO, open_page, run_all_cells, run_code, select_tab  # noqa: E402
from tests.browser.test_studio_layout import MEASURE_JS  # noqa: E402

RECIPE = dict(prompt="a red circle on a blue background", steps=7, cfg=3.5, seed=42)
SETUP = f"""import labkit
import numpy as np
from PIL import Image
from pathlib import Path
from labkit.ui import Studio
lab = labkit.open("toy")
Path("models/Stable-diffusion").mkdir(parents=True, exist_ok=True)
Path("models/Lora").mkdir(exist_ok=True)
lab.save_single_file("models/Stable-diffusion/mine.safetensors")
lab.txt2img(**{RECIPE!r}).save("recipe.png", overwrite=True)
s = Studio(lab, models_dir="models")
s"""
PNGINFO = f"{STUDIO} .labkit-pnginfo"

# A real drop: a DataTransfer carrying the file's bytes, dispatched on the drop zone as the browser would.
DROP_JS = """async ([selector, b64]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], 'recipe.png', {type: 'image/png'}));
    const zone = document.querySelector(selector);
    for (const type of ['dragenter', 'dragover', 'drop'])
        zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


@pytest.fixture(scope="module")
def tabs_page(jupyter, browser, artifacts):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(nb, str(jupyter.root / "tabs.ipynb"))
    console = []
    page = open_page(browser, jupyter.url("lab/workspaces/tabs/tree/tabs.ipynb"), console)
    run_all_cells(page)
    yield page
    (artifacts / "tabs-console.txt").write_text("\n".join(console) + "\n")
    page.context.close()
    jupyter.shutdown_kernels("tabs.ipynb")


def clear_recipe(page) -> None:
    run_code(page, "[setattr(s.png_info.view, 'value', ''), setattr(s.sampling.steps, 'value', 20), "
                   "setattr(s.sampling.cfg, 'value', 7.0)] and 0")


def test_dropped_png_shows_its_recipe_and_sends_it_to_txt2img(tabs_page, jupyter, artifacts):
    import base64

    page = tabs_page
    clear_recipe(page)
    select_tab(page, "PNG Info")
    data = base64.b64encode((jupyter.root / "recipe.png").read_bytes()).decode()
    page.evaluate(DROP_JS, [f"{STUDIO} .labkit-dropzone", data])
    page.wait_for_function("(sel) => /42/.test(document.querySelector(sel).textContent)", arg=PNGINFO)
    table = page.locator(PNGINFO).inner_text()
    assert "labkit" in table and RECIPE["prompt"] in table and "3.5" in table
    page.locator(STUDIO).get_by_role("button", name="send to txt2img").click()
    page.wait_for_timeout(500)
    got = run_code(page, "[s.prompt.prompt.value, s.sampling.steps.value, s.sampling.apply(labkit.Params()).cfg, "
                         "s.sampling.seed.value, s.mode.value]")
    assert got == [RECIPE["prompt"], 7, 3.5, 42, "txt2img"]
    page.locator(STUDIO).first.screenshot(path=str(artifacts / "tab-pnginfo.png"))


def test_uploaded_png_can_be_sent_to_img2img_with_its_picture(tabs_page, jupyter):
    page = tabs_page
    clear_recipe(page)
    select_tab(page, "PNG Info")
    with page.expect_file_chooser() as chooser:
        page.locator(f"{STUDIO} .labkit-pnginfo-upload").click()
    chooser.value.set_files(str(jupyter.root / "recipe.png"))
    page.wait_for_function("(sel) => /42/.test(document.querySelector(sel).textContent)", arg=PNGINFO)
    page.locator(STUDIO).get_by_role("button", name="send to img2img").click()
    page.wait_for_timeout(500)
    got = run_code(page, "[s.mode.value, s.sampling.steps.value, np.array_equal(np.asarray(s.input_image), "
                         "np.asarray(Image.open('recipe.png').convert('RGB')))]")
    assert got == ["img2img", 7, True]  # the uploaded picture itself is img2img's input


def test_xyz_plot_draws_the_grid_chosen_in_the_page(tabs_page, artifacts):
    page = tabs_page
    select_tab(page, "X/Y/Z plot")
    page.locator(f"{STUDIO} .labkit-xyz-x select").select_option("cfg")
    page.locator(f"{STUDIO} .labkit-xyz-x-values input").fill("1, 7")
    page.locator(f"{STUDIO} .labkit-xyz-y select").select_option("steps")
    page.locator(f"{STUDIO} .labkit-xyz-y-values input").fill("2-4 (+2)")
    page.locator(f"{STUDIO} .labkit-xyz-x-values input").press("Tab")  # the text box sends its value on blur
    page.locator(STUDIO).get_by_role("button", name="run grid").click()
    page.wait_for_function("(sel) => /4 cells/.test(document.querySelector(sel).textContent)",
                           arg=f"{STUDIO} .labkit-xyz-status", timeout=180_000)
    grid = page.locator(f"{STUDIO} img.labkit-xyz-grid")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=grid.element_handle())
    size = grid.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
    native = run_code(page, "s.lab.native_size")
    assert size[0] > 2 * native and size[1] > 2 * native  # two by two cells, plus the axis labels
    cells = run_code(page, "[[r.params.cfg, r.params.steps] for r in s.xyz.grid.results.values()]")
    assert sorted(map(tuple, cells)) == [(1.0, 2), (1.0, 4), (7.0, 2), (7.0, 4)]
    page.locator(STUDIO).first.screenshot(path=str(artifacts / "tab-xyz.png"))


def test_xyz_plot_says_a_bad_value_in_the_panel(tabs_page):
    page = tabs_page
    select_tab(page, "X/Y/Z plot")
    page.locator(f"{STUDIO} .labkit-xyz-x select").select_option("sampler")
    page.locator(f"{STUDIO} .labkit-xyz-x-values input").fill("Euler, Not A Sampler")
    page.locator(f"{STUDIO} .labkit-xyz-x-values input").press("Tab")
    page.locator(STUDIO).get_by_role("button", name="run grid").click()
    page.wait_for_function("(sel) => /Not A Sampler/.test(document.querySelector(sel).textContent)",
                           arg=f"{STUDIO} .labkit-xyz-status")
    assert page.locator(f"{STUDIO} .labkit-xyz-status .labkit-error").count() == 1


def test_models_tab_lists_the_folder_with_badges_and_loads_another_model(tabs_page, artifacts):
    page = tabs_page
    select_tab(page, "models")
    select = page.locator(f"{STUDIO} .labkit-model-checkpoint select")
    labels = select.evaluate("(s) => [...s.options].map(o => o.textContent)")
    assert {"toy", "toy-xl", "mine.safetensors"} <= set(labels)
    select.select_option(label="mine.safetensors")
    badge = page.locator(f"{STUDIO} .labkit-badge-checkpoint")
    page.wait_for_function("(el) => /checkpoint/.test(el.textContent)", arg=badge.element_handle())
    assert "toy" in badge.inner_text()
    select.select_option(label="toy-xl")
    page.wait_for_function("(el) => /toy-xl/.test(el.textContent)", arg=badge.element_handle())
    page.locator(f"{STUDIO} button.labkit-model-load").click()
    page.wait_for_function("(sel) => /loaded/.test(document.querySelector(sel).textContent)",
                           arg=f"{STUDIO} .labkit-model-message", timeout=180_000)
    page.locator(STUDIO).first.screenshot(path=str(artifacts / "tab-models.png"))
    assert run_code(page, "s.lab.family") == "toy-xl"


@pytest.mark.parametrize("title", ["PNG Info", "X/Y/Z plot", "models", "ControlNet", "hires fix"])
def test_each_tab_fits_at_1280x800(tabs_page, title):
    page = tabs_page
    page.set_viewport_size({"width": 1280, "height": 800})
    select_tab(page, title)
    page.wait_for_timeout(300)
    problems = page.locator(STUDIO).first.evaluate(MEASURE_JS)
    page.set_viewport_size({"width": 1400, "height": 1000})
    assert problems == [], "\n".join(problems)
