"""Every numbered notebook runs top to bottom under papermill on the embedded model; its asserts are its claims.

Executed notebooks are kept in test-artifacts/notebooks/ for inspection, with each run's seconds in
`timings.json` (the issue's budget is 60 s a notebook on 2 CPU cores; tests do not assert timings). Each
notebook declares in its metadata how many pictures or plots it must show (`"labkit": {"figures": N}`); the
executed copy must hold at least that many image outputs, so a cell that silently stops drawing fails.
"""

import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs(notebook, tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))  # no user kernelspec may shadow python3
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    executed = papermill.execute_notebook(str(notebook), str(ARTIFACTS / notebook.name), kernel_name="python3",
                                          parameters={"out_dir": str(tmp_path / "out")}, cwd=str(notebook.parent),
                                          progress_bar=False)
    record_timing(notebook.stem, time.perf_counter() - start)
    wanted = executed["metadata"].get("labkit", {}).get("figures")
    assert wanted, f"{notebook.name}: declare the pictures it shows in its metadata: \"labkit\": {{\"figures\": N}}"
    assert count_images(executed) >= wanted, f"{notebook.name}: {count_images(executed)} pictures, expected {wanted}"
    assert library_warnings(executed) == [], f"{notebook.name}: a library warning reached the reader"


def library_warnings(nb) -> list[str]:
    """Warnings printed in a notebook's outputs that a library raised (labkit's own, which teach, are allowed)."""
    texts = ["".join(out.get("text", "")) for cell in nb["cells"] if cell["cell_type"] == "code"
             for out in cell.get("outputs", []) if out.get("name") == "stderr"]
    return [line for text in texts for line in text.splitlines()
            if "Warning:" in line and "site-packages" in line]


def count_images(nb) -> int:
    """Image outputs (PNG/JPEG/SVG) in an executed notebook."""
    kinds = ("image/png", "image/jpeg", "image/svg+xml")
    return sum(any(k in out.get("data", {}) for k in kinds) for cell in nb["cells"] if cell["cell_type"] == "code"
               for out in cell.get("outputs", []))


def record_timing(name: str, seconds: float) -> None:
    path = ARTIFACTS / "timings.json"
    table = json.loads(path.read_text()) if path.exists() else {}
    table[name] = round(seconds, 1)
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def test_every_notebook_has_a_parameters_cell():
    import nbformat

    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name
        for name in ("model", "device", "dtype", "seed", "steps", "out_dir"):
            assert f"{name} =" in tagged[0].source, (path.name, name)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name}: strip outputs"


def test_every_notebook_has_what_jupyterlab_would_add_on_opening():
    """JupyterLab fills in `language_info` and the kernel's display name when a notebook's kernel starts; a
    notebook without them shows as modified as soon as it opens, and autosave rewrites it (issue #19; the browser
    test tests/browser/test_shipped_notebooks.py watches it happen)."""
    import nbformat

    for path in NOTEBOOKS:
        metadata = nbformat.read(path, as_version=4).metadata
        assert metadata.kernelspec == {"display_name": "Python 3 (ipykernel)", "language": "python",
                                       "name": "python3"}, path.name
        assert metadata.get("language_info", {}).get("name") == "python", path.name
