"""A shipped notebook opened in JupyterLab stays unmodified once its kernel is up (issue #19: opening one marked
it modified, and autosave then rewrote the file in the repository)."""

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: bin/setup installs it")

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
KERNEL_IDLE = "() => !!document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=idle]')"
DIRTY = ".lm-TabBar-tab.jp-mod-current.jp-mod-dirty"


@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "13_sweeps.ipynb"])
def test_opening_a_shipped_notebook_leaves_it_unmodified(browser, jupyter, artifacts, name):
    shutil.copy(NOTEBOOKS / name, jupyter.root / name)
    before = (jupyter.root / name).read_bytes()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        # a workspace of its own: the default one would reopen this notebook in the other browser tests' pages
        page.goto(jupyter.url(f"lab/workspaces/shipped-{Path(name).stem}/tree/{name}"))
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        page.wait_for_function(KERNEL_IDLE)  # the kernel answered: JupyterLab has written what it learns from it
        page.wait_for_timeout(1500)  # any later metadata change would show by now
        page.screenshot(path=str(artifacts / f"opened-{name}.png"))
        assert page.locator(DIRTY).count() == 0, "the notebook shows as modified right after opening"
    finally:
        context.close()
        jupyter.shutdown_kernels(name)
    assert (jupyter.root / name).read_bytes() == before
