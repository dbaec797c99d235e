"""Generation sweeps (labkit.sweep.generate) on the embedded toy model: a picture with its recipe per row, rows
batched by consecutive seeds drawing the same pictures as one by one, scores, resumption and retries, worker
processes with divided threads, and the results folder a user opens (tables, index.html, contact sheet)."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

import labkit
from labkit.devices import cpu_cores as cpu_count

FAST = {"prompt": "a blue triangle on a black background", "steps": 4, "sampler": "Euler"}


def pixels(folder, row) -> np.ndarray:
    return np.asarray(Image.open(folder / row["images"][0]).convert("RGB"), dtype=np.int16)


def test_each_row_is_a_picture_with_its_recipe_and_scores(tmp_path):
    out = tmp_path / "sweep"
    result = labkit.sweep.generate("toy", {"cfg": [1, 4], "seed": "5-7"}, out, workers=0, score="judge",
                                   progress=False, **FAST)
    assert [(r["cfg"], r["seed"], r["status"]) for r in result.rows] == [(c, s, "ok") for c in (1, 4)
                                                                        for s in (5, 6, 7)]
    for row in result.rows:
        [name] = row["images"]
        p = labkit.read_params(out / name)  # the file carries the row's own recipe
        assert (p.cfg, p.seed, p.steps, p.prompt, p.batch_size) == (row["cfg"], row["seed"], 4, FAST["prompt"], 1)
        assert 0 <= row["adherence"] <= 1 and row["all_right"] in (0, 1)
    assert len({pixels(out, r).tobytes() for r in result.rows}) == 6  # six different pictures
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(t["cfg"], t["seed"]) for t in table] == [(str(r["cfg"]), str(r["seed"])) for r in result.rows]
    assert "adherence" in table[0] and json.loads((out / "results.json").read_text()) == result.rows
    assert (out / "index.html").is_file() and result.index == out / "index.html"
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width > 3 * 64 and sheet.height > 64  # every picture on it, enlarged, with captions
    assert len(result.table()) == 6 and (out / "results.parquet").is_file()  # pandas + pyarrow are installed


def test_consecutive_seeds_run_as_one_batch_and_draw_the_same_pictures(tmp_path):
    from labkit.sweep.generations import batches

    rows = [{"seed": s} for s in (0, 1, 2, 3, 4, 9)] + [{"seed": 5, "cfg": 3.0}]
    jobs = batches(list(range(len(rows))), rows, labkit.Params(**FAST), max_batch=4)
    assert [job.runs for job in jobs] == [[0, 1, 2, 3], [4], [5], [6]]  # at most 4; a gap or a change splits
    random_first = batches([0, 1], [{"seed": -1}, {"seed": 0}], labkit.Params(**FAST), max_batch=4)
    assert [job.runs for job in random_first] == [[0], [1]]  # a random seed never heads a batch
    grid = {"seed": "0-3"}
    batched = labkit.sweep.generate("toy", grid, tmp_path / "a", workers=0, progress=False, **FAST)
    single = labkit.sweep.generate("toy", grid, tmp_path / "b", workers=0, batch=1, progress=False, **FAST)
    for one, other in zip(batched.rows, single.rows):
        assert one["seed"] == other["seed"]
        assert np.abs(pixels(tmp_path / "a", one) - pixels(tmp_path / "b", other)).max() <= 2


def test_a_row_with_its_own_batch_size_keeps_all_its_pictures(tmp_path):
    result = labkit.sweep.generate("toy", {"batch_size": [3]}, tmp_path / "s", workers=0, progress=False,
                                   seed=11, **FAST)
    [row] = result.rows
    assert row["images"] == [f"images/00000-{k}.png" for k in range(3)]
    assert [labkit.read_params(tmp_path / "s" / name).seed for name in row["images"]] == [11, 12, 13]


def test_resumed_sweeps_skip_finished_rows_and_retry_failures_on_request(tmp_path):
    out, calls, broken = tmp_path / "s", [], {"cfg": 4}

    def score(image, params):
        calls.append(params.cfg)
        if params.cfg == broken["cfg"]:
            raise RuntimeError("scorer broke")
        return float(np.asarray(image).mean())

    first = labkit.sweep.generate("toy", {"cfg": [1, 4]}, out, workers=0, score=score, progress=False, **FAST)
    assert [r["status"] for r in first.rows] == ["ok", "failed"] and "scorer broke" in first.rows[1]["error"]
    assert isinstance(first.rows[0]["score"], float)
    calls.clear()
    again = labkit.sweep.generate("toy", {"cfg": [1, 4]}, out, workers=0, score=score, progress=False, **FAST)
    assert calls == [] and again.rows == first.rows  # nothing ran again
    broken["cfg"] = None
    retried = labkit.sweep.generate("toy", {"cfg": [1, 4]}, out, workers=0, score=score, progress=False,
                                    retry_failed=True, **FAST)
    assert calls == [4] and [r["status"] for r in retried.rows] == ["ok", "ok"]


def test_worker_processes_divide_the_cores_and_draw_the_pictures_of_one_process(tmp_path):
    grid = {"cfg": [2, 5], "seed": "0-1"}
    local = labkit.sweep.generate("toy", grid, tmp_path / "w", workers=2, batch=1, progress=False, **FAST)
    here = labkit.sweep.generate("toy", grid, tmp_path / "h", workers=0, batch=1, progress=False, **FAST)
    assert [r["status"] for r in local.rows] == ["ok"] * 4
    for one, other in zip(local.rows, here.rows):
        assert np.abs(pixels(tmp_path / "w", one) - pixels(tmp_path / "h", other)).max() <= 2


def test_a_dead_worker_fails_its_row_and_the_others_go_on(monkeypatch):
    from labkit.sweep.engines import Job, LocalPool
    from tests.helpers.sweep_work import setup_state, work

    jobs = [Job([i], [{"x": i}], payload) for i, payload in enumerate([0, "die", 2, "fail", 4])]
    pool = LocalPool(setup_state, work, workers=2, threads=max(1, cpu_count() // 2))
    outcomes = {job.runs[0]: outcome for job, outcome in pool.results(jobs)}
    assert sorted(outcomes) == [0, 1, 2, 3, 4]
    assert "worker process died" in outcomes[1] and "exit code 7" in outcomes[1]
    assert outcomes[3] == "ValueError: this row fails"
    ok = [outcomes[i]["rows"][0] for i in (0, 2, 4)]
    assert {row["threads"] for row in ok} == {str(max(1, cpu_count() // 2))}  # the cores divided
    assert len({row["pid"] for row in ok}) >= 2  # a replacement worker took over after the death


def test_a_worker_that_cannot_start_stops_the_sweep_with_its_reason():
    from labkit.sweep.engines import Job, LocalPool
    from tests.helpers.sweep_work import broken_setup, work

    with pytest.raises(labkit.LabkitError, match="could not start: RuntimeError: no model here"):
        list(LocalPool(broken_setup, work, workers=1, threads=1).results([Job([0], [{}], 0)]))
    with pytest.raises(labkit.BadInput, match="not a lambda"):  # a lambda cannot reach another process
        list(LocalPool(lambda: None, work, workers=1, threads=1).results([Job([0], [{}], 0)]))


def test_axes_take_a1111_labels_and_rows_from_a_csv_file(tmp_path):
    from labkit.sweep.generations import plan_rows

    assert plan_rows({"CFG Scale": "3, 5"}) == [{"cfg": 3.0}, {"cfg": 5.0}]
    assert plan_rows({"cfg_scale": "2-4 [2]", "Sampler": "Euler, DPM++ 2M"}, zip=True) == [
        {"cfg": 2.0, "sampler": "Euler"}, {"cfg": 4.0, "sampler": "DPM++ 2M"}]
    (tmp_path / "rows.csv").write_text("prompt,cfg,seed\na red circle,4,1\n\"a blue star, small\",7.5,2\n")
    assert plan_rows(tmp_path / "rows.csv") == [{"prompt": "a red circle", "cfg": 4, "seed": 1},
                                                {"prompt": "a blue star, small", "cfg": 7.5, "seed": 2}]
