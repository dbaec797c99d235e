"""Every numbered notebook runs top to bottom under papermill on the embedded model; its asserts are its claims.

Executed notebooks are kept in test-artifacts/notebooks/ for inspection.
"""

import os
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
    papermill.execute_notebook(str(notebook), str(ARTIFACTS / notebook.name), kernel_name="python3",
                               parameters={"out_dir": str(tmp_path / "out")}, cwd=str(notebook.parent),
                               progress_bar=False)
    assert (ARTIFACTS / notebook.name).exists()


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
