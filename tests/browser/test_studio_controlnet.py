"""The Studio's ControlNet tab in a real browser (issue #20): a picture chosen through the unit's upload button
shows its preprocessor's map, the preprocessor picked in the page redraws it, Generate runs with the unit (the
Result records it), and a scribble drawn with the mouse on a blank canvas becomes the unit's picture.
Screenshots: test-artifacts/browser/controlnet-*.png."""

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: bin/setup installs it")

from tests.browser.test_studio_browser import (STUDIO, generate, open_page, run_all_cells, run_code,  # noqa: E402
                                               select_tab)

SETUP = """import labkit
import numpy as np
from labkit.toy import world
from labkit.ui import Studio
lab = labkit.open("toy")
world.sample_scene(np.random.default_rng(4), allow_two=False).render(64).save("scene.png")
s = Studio(lab)
s.sampling.seed.value, s.sampling.steps.value = 5, 8
s"""
UNIT = f"{STUDIO} .labkit-control-unit"
MAP = f"{UNIT} img.labkit-control-map"
PIXELS_JS = """async (img) => {
    if (!img.complete || img.naturalWidth === 0) {  // a newer map replaced the one waited for: let it load
        await new Promise((done) => img.addEventListener('load', done, {once: true}));
    }
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let white = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 200) white++;
    return {width: c.width, white: white / (d.length / 4), src: img.src};
}"""


@pytest.fixture(scope="module")
def cn_page(jupyter, browser, artifacts):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(nb, str(jupyter.root / "controlnet.ipynb"))
    console = []
    page = open_page(browser, jupyter.url("lab/workspaces/cn/tree/controlnet.ipynb"), console)
    run_all_cells(page)
    yield page
    (artifacts / "controlnet-console.txt").write_text("\n".join(console) + "\n")
    page.context.close()
    jupyter.shutdown_kernels("controlnet.ipynb")


def map_pixels(page, old_src=""):
    handle = page.locator(MAP).first.element_handle()
    page.wait_for_function("([img, old]) => img.complete && img.naturalWidth > 0 && img.src !== old",
                           arg=[handle, old_src])
    return page.locator(MAP).first.evaluate(PIXELS_JS)


def test_an_uploaded_picture_shows_its_map_and_generate_uses_the_unit(cn_page, jupyter, artifacts):
    page = cn_page
    select_tab(page, "ControlNet")
    with page.expect_file_chooser() as chooser:
        page.locator(f"{UNIT} .labkit-control-upload").first.click()
    chooser.value.set_files(str(jupyter.root / "scene.png"))
    plain = map_pixels(page)  # module "none": the picture itself
    page.locator(f"{UNIT} .labkit-control-module select").first.select_option("canny")
    edges = map_pixels(page, plain["src"])
    assert edges["width"] == 64 and 0.01 < edges["white"] < 0.25  # thin white edges on black
    page.locator(STUDIO).first.screenshot(path=str(artifacts / "controlnet-map.png"))
    assert generate(page).startswith("done")
    got = run_code(page, "[s.result.params.control[0].module, s.result.params.control[0].model.split(' [')[0], "
                         "len(s.result.control_maps)]")
    assert got == ["canny", "toy-controlnet", 1]
    page.locator(STUDIO).first.screenshot(path=str(artifacts / "controlnet-generated.png"))


def test_a_scribble_drawn_with_the_mouse_becomes_the_units_picture(cn_page, artifacts):
    page = cn_page
    select_tab(page, "ControlNet")
    page.locator(f"{UNIT} .labkit-control-draw").first.click()
    overlay = page.locator(f"{UNIT} .labkit-mask-overlay").first
    overlay.wait_for(state="visible")
    box = overlay.bounding_box()
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.5 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.8 * box["width"], box["y"] + 0.5 * box["height"], steps=12)
    page.mouse.up()
    unit = "s.controlnet.unit_panels[0]"
    check = (f"[float(np.asarray({unit}.picture).mean()), int(np.asarray({unit}.picture)[32].max()), "
             f"{unit}.module.value]")
    for _ in range(60):  # the strokes reach Python a moment after the mouse is up (longer on a busy machine)
        mean, row, module = run_code(page, check)
        if mean < 60:
            break
        page.wait_for_timeout(250)
    assert mean < 60 and row == 255 and module == "none"  # a white stroke on black, used as the map itself
    page.locator(STUDIO).first.screenshot(path=str(artifacts / "controlnet-scribble.png"))
