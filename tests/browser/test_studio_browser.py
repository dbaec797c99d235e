"""The Studio widget in a real browser: JupyterLab 4 (and Notebook 7) headless, driven by Playwright in Debian's
Chromium. Type a prompt and Generate, paint a mask stroke with the mouse, toggle a LoRA, Interrupt a long run;
every step leaves a screenshot in test-artifacts/browser/NN-step.png.

The tests of the JupyterLab page share one page and one kernel (module-scoped) and run in file order; each
brings the Studio into the state it needs, so any one of them also runs alone.
"""

import json
import re

import pytest

pytestmark = pytest.mark.browser
PlaywrightTimeout = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing: bin/setup installs it (the dev extras)"
).TimeoutError

WAIT = 120_000  # ms: a slow, shared machine; every wait is on a condition, none is a fixed sleep
STUDIO = ".labkit-studio"
# ipywidgets puts a widget's classes on its outer element: for Button and Image that is the <button>/<img> itself.
GENERATE = f"{STUDIO} button.labkit-generate"
OUTPUT = f"{STUDIO} img.labkit-output"
PROMPT = f"{STUDIO} .labkit-prompt textarea"
STATUS = f"{STUDIO} .labkit-step-status"
INTERRUPT = f"{STUDIO} button.labkit-interrupt"
LORA_BOX = f"{STUDIO} .labkit-lora-row input[type=checkbox]"
MASK_STAGE = f"{STUDIO} .labkit-mask-stage"
MASK_OVERLAY = f"{STUDIO} .labkit-mask-overlay"
MASK_PICTURE = f"{STUDIO} .labkit-mask-canvas"
TILES = f"{STUDIO} .labkit-gallery-tile"
GALLERY_LIMIT = 48  # labkit.ui.gallery.Gallery keeps the newest 48 results
TYPED_PROMPT = "a blue square on a yellow background"


# ---- notebook, page and kernel helpers --------------------------------------------------------------------

def write_notebook(path, lora=None) -> None:
    import nbformat

    cells = [nbformat.v4.new_code_cell('import labkit\nfrom labkit.ui import Studio\nlab = labkit.open("toy")\n'
                                       's = Studio(lab)\ns')]
    setup = "s.sampling.seed.value = 7  # the same noise every run\n"
    if lora is not None:
        setup += f"s.loras.load({str(lora)!r})"
    cells.append(nbformat.v4.new_code_cell(setup))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(nb, str(path))


def open_page(browser, url, console: list):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT)
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell")
    return page


PROMPTS_JS = "[...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)"
QUEUED_JS = f"() => {PROMPTS_JS}.some(t => /\\[(\\*|\\d+)\\]/.test(t))"  # "[*]" shows as soon as a cell is queued
ALL_RAN_JS = f"() => {{ const t = {PROMPTS_JS}; return t.length > 0 && t.every(t => /\\[\\d+\\]/.test(t)); }}"
# JupyterLab's status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected (Notebook 7 has none)
KERNEL_READY_JS = """() => {
    const bar = document.querySelector('#jp-main-statusbar');
    const busy = bar && /\\| (Unknown|Initializing|Connecting|Starting|Restarting)/.test(bar.textContent);
    return !busy && !!document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=idle]');
}"""


DIALOG = ".jp-Dialog"


def answer_kernel_dialog(page) -> bool:
    """Accept JupyterLab's "Select Kernel" dialog (its default: Python 3) if it is up; True if it was."""
    dialog = page.locator(DIALOG, has_text="Select Kernel")
    if not dialog.count():
        return False
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    dialog.wait_for(state="detached")
    return True


def run_all_cells(page) -> None:
    """Run > Run All Cells (the same menu in JupyterLab 4 and Notebook 7); wait until every code cell ran.

    While a page is still setting up its kernel session JupyterLab may ask "Select Kernel" (answered with the
    default, Python 3), and a Run All may be dropped (the prompts stay "[ ]"): then it is given again."""
    for attempt in range(6):
        answer_kernel_dialog(page)
        page.wait_for_function(f"() => ({KERNEL_READY_JS})() || !!document.querySelector('{DIALOG}')",
                               timeout=60_000)
        if answer_kernel_dialog(page):
            continue
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator(".lm-Menu-content .lm-Menu-item", has_text=re.compile(r"^Run All Cells")).first.click()
        try:
            page.wait_for_function(f"() => ({QUEUED_JS})() || !!document.querySelector('{DIALOG}')",
                                   timeout=10_000)
        except PlaywrightTimeout:
            continue
        if not answer_kernel_dialog(page):
            break
    page.wait_for_function(ALL_RAN_JS, timeout=240_000)  # kernel start + torch + the toy model, on a busy machine
    page.wait_for_selector(STUDIO, state="visible")


_marks = iter(range(1, 10**6))


def run_code(page, code: str, screenshot=None):
    """Run `code` in a new cell at the end of the notebook; return the JSON value it prints. `screenshot`: a
    path for a picture of that cell with its output."""
    mark = f"LABKIT_OUT_{next(_marks)}"
    page.locator(".jp-Notebook .jp-Cell").last.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")  # command mode
    page.keyboard.press("b")  # a new cell below, selected
    page.keyboard.press("Enter")  # edit it
    page.keyboard.insert_text(f"import json as _json\nprint({mark!r}, _json.dumps({code}))")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output", has_text=f"{mark} ").last
    output.wait_for()
    if screenshot is not None:
        page.locator(".jp-Notebook .jp-CodeCell", has=output).screenshot(path=str(screenshot))
    return json.loads(output.inner_text().split(mark, 1)[1].strip())


def shot(page, artifacts, name: str, target=None) -> None:
    (page.locator(target).first if target else page).screenshot(path=str(artifacts / f"{name}.png"))


# Draw an <img> into a canvas: size, per-channel spread, and the RGB pixels (to compare two pictures).
PIXELS_JS = """(img) => {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    const rgb = [];
    for (let i = 0; i < d.length; i += 4) rgb.push(d[i], d[i + 1], d[i + 2]);
    const mean = rgb.reduce((a, b) => a + b, 0) / rgb.length;
    const std = Math.sqrt(rgb.reduce((a, b) => a + (b - mean) ** 2, 0) / rgb.length);
    return {width: c.width, height: c.height, mean, std, min: Math.min(...rgb), max: Math.max(...rgb),
            src: img.src, rgb};
}"""

# Watch the step-status label and note the first end-of-run text after a start ("done", "interrupted", "error").
# Each update replaces the label's text node, so the mutation records keep every state even when several
# arrive between two checks.
ARM_JS = """(selector) => {
    const el = document.querySelector(selector);
    window.__labkitRunEnd = null;
    let started = false;
    const seen = t => {
        if (/^(starting|step )/.test(t)) started = true;
        else if (started && /^(done|interrupted|error)/.test(t) && window.__labkitRunEnd === null)
            window.__labkitRunEnd = t;
    };
    const observer = new MutationObserver(records => {
        for (const r of records) for (const n of r.addedNodes) seen(n.textContent || '');
        seen(el.textContent);
        if (window.__labkitRunEnd !== null) observer.disconnect();
    });
    observer.observe(el, {childList: true, subtree: true, characterData: true});
}"""


def picture(page) -> dict:
    img = page.locator(OUTPUT)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    return img.evaluate(PIXELS_JS)


def generate(page) -> str:
    """Press Generate and wait until the run ends and, for a finished run, until its picture is shown (the Studio
    shows the picture, then adds it to the gallery: a new gallery tile means the picture is there too). Returns
    the status text the run ended with."""
    page.wait_for_selector(STATUS, state="attached")
    tiles = page.locator(TILES).count()
    page.evaluate(ARM_JS, STATUS)
    page.locator(GENERATE).click()
    page.wait_for_function("() => window.__labkitRunEnd !== null")
    end = page.evaluate("() => window.__labkitRunEnd")
    if end.startswith("done"):
        page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length > n",
                               arg=[TILES, min(tiles, GALLERY_LIMIT - 1)])
    return end


def wait_new_picture(page, old_src: str) -> dict:
    page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel);"
                           " return i && i.src && i.src !== old && i.complete && i.naturalWidth > 0; }",
                           arg=[OUTPUT, old_src])
    return picture(page)


def assert_not_blank(p: dict) -> None:
    assert p["width"] > 0 and p["height"] > 0
    assert p["max"] - p["min"] > 60, f"a near-constant picture: values {p['min']}..{p['max']}"
    assert p["std"] > 12, f"a near-blank picture: pixel std {p['std']:.1f}"


def mean_abs_diff(a: dict, b: dict) -> float:
    assert (a["width"], a["height"]) == (b["width"], b["height"])
    return sum(abs(x - y) for x, y in zip(a["rgb"], b["rgb"])) / len(a["rgb"])


def select_tab(page, title: str) -> None:
    page.locator(f"{STUDIO} .lm-TabBar-tab", has_text=title).first.click()


def set_mode(page, mode: str) -> None:
    page.locator(STUDIO).get_by_role("button", name=mode, exact=True).first.click()


def output_src(page) -> str:
    return page.locator(OUTPUT).get_attribute("src") or ""


def has_picture(page) -> bool:
    """Whether the output shows a picture (an Image widget with no value still has a src: an empty blob)."""
    return page.locator(OUTPUT).evaluate("(img) => img.complete && img.naturalWidth > 0")


# ---- JupyterLab 4 ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab_page(jupyter, browser, artifacts, lora_file):
    write_notebook(jupyter.root / "studio.ipynb", lora=lora_file)
    console = []
    page = open_page(browser, jupyter.url("lab/tree/studio.ipynb"), console)
    shot(page, artifacts, "01-lab-notebook-open")
    run_all_cells(page)
    page.wait_for_selector(f"{STUDIO} .labkit-lora-row")  # the LoRA cell ran and its row is drawn
    shot(page, artifacts, "02-lab-studio", STUDIO)
    yield page
    (artifacts / "lab-console.txt").write_text("\n".join(console) + "\n")
    page.context.close()
    jupyter.shutdown_kernels()


def test_generate_shows_a_picture(lab_page, artifacts):
    page = lab_page
    set_mode(page, "txt2img")
    old = output_src(page)
    prompt = page.locator(PROMPT)
    prompt.click()
    prompt.press("ControlOrMeta+a")
    prompt.press_sequentially(TYPED_PROMPT)
    shot(page, artifacts, "03-lab-prompt-typed", STUDIO)
    assert generate(page).startswith("done")
    p = wait_new_picture(page, old)
    shot(page, artifacts, "04-lab-generated", STUDIO)
    assert (p["width"], p["height"]) == (64, 64)  # the toy's native size
    assert_not_blank(p)
    # the typed text reached Python and the run used it (the recipe adds the active LoRA's tag)
    typed, used = run_code(page, "[s.prompt.prompt.value, s.result.params.prompt]")
    assert typed == TYPED_PROMPT and used.startswith(TYPED_PROMPT), (typed, used)


def test_ctrl_enter_in_the_prompt_generates_and_runs_no_cell(lab_page, artifacts):
    page = lab_page
    set_mode(page, "txt2img")
    before = page.evaluate(PROMPTS_JS)
    tiles = page.locator(TILES).count()
    page.evaluate(ARM_JS, STATUS)
    prompt = page.locator(PROMPT)
    prompt.click()
    prompt.press("ControlOrMeta+a")
    prompt.press_sequentially("a red star on a white background")
    prompt.press("Control+Enter")
    page.wait_for_function("() => window.__labkitRunEnd !== null")
    assert page.evaluate("() => window.__labkitRunEnd").startswith("done")
    page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length > n",
                           arg=[TILES, min(tiles, GALLERY_LIMIT - 1)])
    assert page.evaluate(PROMPTS_JS) == before  # JupyterLab did not also run the notebook's cell
    assert run_code(page, "s.result.params.prompt").startswith("a red star on a white background")
    run_code(page, f"setattr(s.prompt.prompt, 'value', {TYPED_PROMPT!r})")  # the prompt the later tests expect


def test_sampling_sliders_are_shown(lab_page):
    """steps, CFG and batch size are on screen in txt2img (strength and switch_at are hidden there)."""
    for name in ("steps", "CFG scale", "batch size"):
        slider = lab_page.locator(f"{STUDIO} .widget-slider", has=lab_page.get_by_text(name, exact=True))
        assert slider.count() == 1, name
        assert slider.is_visible(), f"the {name!r} slider is not shown"


def test_painted_stroke_lands_in_the_python_mask(lab_page, artifacts):
    page = lab_page
    if not has_picture(page):
        set_mode(page, "txt2img")
        generate(page)
    page.locator(STUDIO).get_by_role("button", name="→ img2img").click()
    select_tab(page, "input & mask")
    page.wait_for_selector(MASK_STAGE, state="visible")
    page.wait_for_function("""(c) => { if (!c.width) return false;  // the picture is drawn into the canvas
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
        return false; }""", arg=page.locator(MASK_PICTURE).element_handle())
    state = run_code(page, "[s.mask.image_width, s.mask.image_height, s.mask.brush, len(s.mask.strokes)]")
    width, height, brush, before = state
    shot(page, artifacts, "05-lab-mask-tab", MASK_STAGE)

    box = page.locator(MASK_OVERLAY).bounding_box()
    start = (box["x"] + 0.25 * box["width"], box["y"] + 0.30 * box["height"])
    end = (box["x"] + 0.70 * box["width"], box["y"] + 0.45 * box["height"])
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=15)
    page.mouse.up()
    shot(page, artifacts, "06-lab-stroke-painted", MASK_STAGE)

    import numpy as np
    from PIL import Image

    from labkit.ui.mask import rasterize

    def to_image(x, y):  # screen (CSS pixels) -> picture pixels, by the canvas' box and the picture's size
        return (x - box["x"]) * width / box["width"], (y - box["y"]) * height / box["height"]

    expected = Image.fromarray(rasterize([{"points": [to_image(*start), to_image(*end)], "size": brush}],
                                         width, height)).getbbox()
    # the mask as Python reads it: the strokes synced from the browser, rasterized by labkit
    got = run_code(page, "[len(s.mask.strokes), s.mask.mask.getbbox()]",
                   screenshot=artifacts / "07-lab-mask-bbox-cell.png")
    assert got[0] == before + 1, f"the painted stroke did not reach Python: {got[0]} strokes, {before} before"
    bbox = got[1]
    assert bbox is not None, "Python's mask is empty"
    assert np.abs(np.subtract(bbox, expected)).max() <= 1.5, f"mask bbox {bbox}, painted {expected}"


def test_lora_toggle_changes_the_picture(lab_page, artifacts):
    page = lab_page
    select_tab(page, "LoRAs")
    set_mode(page, "txt2img")
    box = page.locator(LORA_BOX).first
    box.check()
    assert generate(page).startswith("done")
    on = picture(page)
    shot(page, artifacts, "08-lab-lora-on", STUDIO)

    box.uncheck()
    assert generate(page).startswith("done")
    off = wait_new_picture(page, on["src"])
    shot(page, artifacts, "09-lab-lora-off", STUDIO)
    assert_not_blank(off)
    assert mean_abs_diff(on, off) > 1.0, "toggling the LoRA off did not change the picture"

    box.check()
    assert generate(page).startswith("done")
    again = wait_new_picture(page, off["src"])
    assert mean_abs_diff(on, again) == 0, "the LoRA back on does not give the same picture again"


def test_interrupt_stops_a_long_run(lab_page, artifacts):
    page = lab_page
    set_mode(page, "txt2img")
    assert run_code(page, "setattr(s.sampling.steps, 'value', 150) or s.sampling.steps.value") == 150
    page.evaluate(ARM_JS, STATUS)
    page.locator(GENERATE).click()
    page.wait_for_function("(sel) => /^step \\d+\\/150/.test(document.querySelector(sel).textContent)", arg=STATUS)
    shot(page, artifacts, "10-lab-long-run", STUDIO)
    page.locator(INTERRUPT).click()
    page.wait_for_function("() => window.__labkitRunEnd !== null")
    end = page.evaluate("() => window.__labkitRunEnd")
    shot(page, artifacts, "11-lab-interrupted", STUDIO)
    found = re.search(r"interrupted after step (\d+)", end)
    assert found, f"the run ended with {end!r}, not interrupted"
    assert 0 < int(found.group(1)) < 150
    assert page.locator(INTERRUPT).is_disabled()
    run_code(page, "setattr(s.sampling.steps, 'value', 20)")


def test_inpaint_repaints_the_painted_region(lab_page, artifacts):
    """txt2img, "→ inpaint", paint over the object, inpaint it in another color: the picture changes where
    painted. The screenshot of this step is the README's picture of the Studio (docs/studio.png)."""
    page = lab_page
    select_tab(page, "LoRAs")
    if page.locator(LORA_BOX).first.is_checked():
        page.locator(LORA_BOX).first.uncheck()
    set_mode(page, "txt2img")
    run_code(page, "setattr(s.prompt.prompt, 'value', 'a red circle on a white background') or 1")
    assert generate(page).startswith("done")
    before = picture(page)
    page.locator(STUDIO).get_by_role("button", name="→ inpaint").click()
    select_tab(page, "input & mask")
    page.wait_for_selector(MASK_STAGE, state="visible")
    run_code(page, "s.mask.clear() or 0")
    page.locator(MASK_STAGE).scroll_into_view_if_needed()  # mouse events only land inside the viewport
    box = page.locator(MASK_OVERLAY).bounding_box()
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.5 * box["height"])
    page.mouse.down()
    for fx, fy in ((0.5, 0.25), (0.8, 0.5), (0.5, 0.75), (0.2, 0.5)):  # a loop around the picture's middle
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=8)
    page.mouse.up()
    assert run_code(page, "len(s.mask.strokes)") == 1, "the painted stroke did not reach Python"
    run_code(page, "setattr(s.prompt.prompt, 'value', 'a blue circle on a white background') or 1")
    set_mode(page, "inpaint")
    assert generate(page).startswith("done")
    after = wait_new_picture(page, before["src"])
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 1800})  # the whole Studio, mask canvas included
    page.locator(STUDIO).scroll_into_view_if_needed()
    shot(page, artifacts, "13-lab-inpainted", STUDIO)
    page.set_viewport_size(size)
    assert_not_blank(after)
    assert mean_abs_diff(before, after) > 1.0, "inpainting did not change the picture"
    mode, painted = run_code(page, "[s.result.mode, s.mask.mask.getbbox() is not None]")
    assert mode == "inpaint" and painted


# ---- Notebook 7 --------------------------------------------------------------------------------------------

def test_notebook7_generate_shows_a_picture(jupyter, browser, artifacts):
    pytest.importorskip("notebook", reason="Notebook 7 (`notebook` package) is not installed")
    write_notebook(jupyter.root / "studio_nb7.ipynb")
    console = []
    page = open_page(browser, jupyter.url("notebooks/studio_nb7.ipynb"), console)
    try:
        run_all_cells(page)
        old = output_src(page)
        assert generate(page).startswith("done")
        p = wait_new_picture(page, old)
        shot(page, artifacts, "12-notebook7-generated", STUDIO)
        assert_not_blank(p)
    finally:
        (artifacts / "notebook7-console.txt").write_text("\n".join(console) + "\n")
        page.context.close()
        jupyter.shutdown_kernels("studio_nb7.ipynb")
