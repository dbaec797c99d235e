"""engine="ray" on a local Ray with 2 CPUs: a generation sweep as an actor pool drawing the pictures the local
engine draws, a notebook sweep as Ray tasks, a dead actor failing only its row, and results streaming into the same
folder layout."""

import numpy as np
import pytest
from PIL import Image

import labkit

ray = pytest.importorskip("ray")  # labkit[ray]: bin/setup installs it
FAST = {"prompt": "a red square on a white background", "steps": 4, "sampler": "Euler"}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_a_generation_sweep_on_ray_matches_the_local_engine(local_ray, tmp_path):
    grid = {"cfg": [2, 6], "seed": "3-4"}
    on_ray = labkit.sweep.generate("toy", grid, tmp_path / "ray", engine="ray", score="judge", progress=False, **FAST)
    here = labkit.sweep.generate("toy", grid, tmp_path / "here", workers=0, progress=False, **FAST)
    assert [r["status"] for r in on_ray.rows] == ["ok"] * 4 and "adherence" in on_ray.rows[0]
    for one, other in zip(on_ray.rows, here.rows):
        a = np.asarray(Image.open(tmp_path / "ray" / one["images"][0]), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "here" / other["images"][0]), dtype=np.int16)
        assert one["seed"] == other["seed"] and np.abs(a - b).max() <= 2
    assert (tmp_path / "ray" / "index.html").is_file() and ray.is_initialized()  # a Ray we did not start stays


def test_a_dead_actor_fails_its_row_and_a_new_one_takes_over(local_ray):
    from labkit.sweep.engines import Job
    from labkit.sweep.ray_engine import RayPool
    from tests.helpers.sweep_work import setup_state, work

    pool = RayPool(setup_state, work, 1, 1)
    outcomes = {job.runs[0]: outcome for job, outcome in pool.results(
        [Job([i], [{}], payload) for i, payload in enumerate([0, "die", 2, "fail"])])}
    assert "Ray worker died" in outcomes[1] and outcomes[3] == "ValueError: this row fails"
    assert outcomes[0]["rows"][0]["pid"] != outcomes[2]["rows"][0]["pid"]  # the replacement actor ran row 2


def test_a_notebook_sweep_runs_as_ray_tasks(local_ray, tmp_path, monkeypatch):
    import nbformat

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    cell = nbformat.v4.new_code_cell("a = 1")
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell(
        "import labkit\nassert a != 2, 'two fails'\nlabkit.record('square', a * a)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "n.ipynb"))
    result = labkit.sweep.notebooks(tmp_path / "n.ipynb", {"a": "1-3"}, tmp_path / "s", engine="ray", workers=2,
                                    progress=False)
    assert [(r["a"], r["status"], r.get("square")) for r in result.rows] == [(1, "ok", 1), (2, "failed", None),
                                                                             (3, "ok", 9)]
    assert "two fails" in result.rows[1]["error"]
    assert (tmp_path / "s" / "runs" / "0002" / "notebook.ipynb").is_file()  # the executed copy came back
