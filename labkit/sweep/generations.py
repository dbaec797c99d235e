"""Generation sweeps: thousands of `Params` rows on long-lived models, into one resumable results folder.

    labkit.sweep.generate("toy", {"cfg": "1-7 (+3)", "sampler": "Euler, DPM++ 2M", "seed": "0-7"},
                          out="runs/cfg", prompt="a red circle on white", score="judge")

Each worker opens the model once and runs jobs: rows that differ only by consecutive seeds run as one batch (A1111's
rule: picture i of a batch has seed + i, so a batch draws the same pictures as its rows one by one). Every picture
is saved as images/NNNNN.png with its recipe (A1111 infotext and labkit JSON); `score` adds values to each row:
"judge" (the embedded models' judge of prompt adherence) or any `fn(image, params) -> number or {name: number}`,
run here as the pictures arrive, so a lambda from a notebook cell works on every engine.
"""

import functools
import io
import time
from pathlib import Path

from .. import checks
from ..errors import BadInput
from ..params import Params
from .engines import Job
from .folder import SweepResults, open_folder
from .runner import check_engine_args, check_size, connect, engine_for, run, to_run
from .values import field_kind, grid_rows

MAX_BATCH = 4  # rows batched together at most: more rarely runs faster on a CPU and holds more memory
FIELDS = tuple(Params.__dataclass_fields__)


def canonical(name: str) -> str:
    """A Params field name from itself or A1111's axis label ("CFG Scale" or "cfg_scale" -> "cfg")."""
    from ..grids import A1111_AXES

    return A1111_AXES.get(name.strip().lower().replace("_", " "), name) if isinstance(name, str) else name


def check_fields(names) -> None:
    from ..grids import A1111_AXES

    wrong = [name for name in names if canonical(name) not in FIELDS]
    if wrong:
        hint = checks.did_you_mean(wrong[0], [*FIELDS, *A1111_AXES])
        raise BadInput(f"{', '.join(map(repr, wrong))} {'is' if len(wrong) == 1 else 'are'} not a Params field; a "
                       f"generation sweep varies {', '.join(FIELDS)}.{hint}")


def plan_rows(grid, zip: bool = False) -> list[dict]:
    """The rows of a generation sweep, field names made canonical and every value checked by Params itself."""
    kinds = {name: field_kind(canonical(name)) for name in (grid if isinstance(grid, dict) else {})}
    rows = [{canonical(k): v for k, v in row.items()} for row in grid_rows(grid, kinds, check_fields, zip)]
    from ..samplers import check as check_sampler

    for row in rows:
        p = Params(**row)  # the same checks and messages as any run
        check_sampler(p.sampler, p.schedule, p.eta)
    return rows


def batches(indices: list, rows: list, base: Params, max_batch: int) -> list[Job]:
    """Jobs of rows that differ only by consecutive seeds (at most `max_batch`); a row with a random seed, or its
    own batch_size, is a job of its own."""
    jobs = []
    for i in indices:
        p = base.replace(**rows[i])
        if jobs and joins(jobs[-1], p, max_batch):
            jobs[-1].runs.append(i)
            jobs[-1].rows.append(rows[i])
            continue
        runs, batch_rows = [i], [rows[i]]
        jobs.append(Job(runs, batch_rows, {"params": p, "runs": runs, "rows": batch_rows}))
    return jobs


def joins(job: Job, p: Params, max_batch: int) -> bool:
    """Whether `p` is the next picture of `job`'s batch: the same settings, the next seed (A1111's batch rule)."""
    first = job.payload["params"]
    return (first.seed != -1 and p.batch_size == 1 and len(job.runs) < max_batch
            and p.replace(seed=first.seed) == first and p.seed == first.seed + len(job.runs))


def open_model(model, options: dict):
    """A worker's state: the model, opened once."""
    from ..loading import open as open_lab

    return open_lab(model, **options)


def run_batch(lab, payload: dict) -> dict:
    """One job on a worker: one txt2img call for its rows; each picture encoded as PNG with its own recipe."""
    from ..noise import resolve_seed
    from ..recipes import save_image

    runs, rows = payload["runs"], payload["rows"]
    p = payload["params"]
    p = p.replace(seed=resolve_seed(p.seed), batch_size=p.batch_size if len(runs) == 1 else len(runs))
    start = time.perf_counter()
    result = lab.txt2img(params=p)
    seconds = round((time.perf_counter() - start) / len(runs), 3)
    per_row = len(result.images) // len(runs)
    out_rows, files = [], {}
    for k, (index, row) in enumerate(zip(runs, rows)):
        names = []
        for j in range(k * per_row, (k + 1) * per_row):
            name = f"images/{index:05d}.png" if per_row == 1 else f"images/{index:05d}-{j - k * per_row}.png"
            files[name] = png_bytes(save_image, result.images[j], result.params.replace(seed=result.seeds[j],
                                    batch_size=1), result.model, result.mode)
            names.append(name)
        out_rows.append({"run": index, "status": "ok", "seconds": seconds, "error": "", "cell": "", **row,
                         "seed": result.seeds[k * per_row], "images": names})
    return {"rows": out_rows, "files": files}


def png_bytes(save_image, image, params, model, mode) -> bytes:
    """The PNG file `save_image` writes (picture and recipe), as bytes to send back to the sweep's folder."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="labkit-png-") as scratch:
        return save_image(image, Path(scratch) / "picture.png", params, model=model, mode=mode).read_bytes()


def scorer(score, base: Params):
    """`after(row, files)` adding the score's values to a finished row; None without a score."""
    if score is None:
        return None
    if isinstance(score, str):
        if score != "judge":
            raise BadInput(f"score={score!r}: give 'judge' (the embedded models' judge) or a function "
                           f"fn(image, params) -> number or {{name: number}}.")
        from .scoring import judge_score

        score = judge_score
    checks.callback("score", score)
    return functools.partial(add_scores, score, base)


def add_scores(score, base: Params, row: dict, files: dict) -> dict:
    """The row with the mean of each score over its pictures (a failing score fails the row, not the sweep)."""
    from PIL import Image

    totals = {}
    p = base.replace(**{k: v for k, v in row.items() if k in FIELDS})
    try:
        for name in row["images"]:
            image = Image.open(io.BytesIO(files[name]))
            image.load()
            value = score(image, p)
            for key, number in (value if isinstance(value, dict) else {"score": value}).items():
                totals.setdefault(key, []).append(number)
    except Exception as error:  # noqa: BLE001 - reported on the row
        return dict(row, status="failed", error=f"score: {type(error).__name__}: {error}")
    return dict(row, **{k: sum(v) / len(v) if all(isinstance(x, (int, float)) for x in v) else v[0]
                        for k, v in totals.items()})


def generate(model, grid, out, *, params: Params | None = None, zip: bool = False, retry_failed: bool = False,
             score=None, engine: str = "local", workers=None, batch: int = MAX_BATCH, address=None, gpus=None,
             device: str = "cpu", dtype: str = "float32", confirm: bool = False, progress: bool = True,
             **settings) -> SweepResults:
    """Run one txt2img per row of `grid` (names: Params fields or A1111's axis labels; values: lists or A1111
    text; or a list of rows, or a .csv/.json file of rows) over `params` and `settings` (prompt=..., steps=...).

    `model`: a name or path each worker opens (device, dtype), or an open Lab (then the rows run here, in
    order). `engine="local"`: `workers` processes (default one per core, fewer when the model would not fit in
    memory that often), cores divided among them; `engine="ray"`: an actor pool, one model per actor (`gpus` per
    actor, default 1 when device is "cuda"; `address` as for `ray.init`). `batch`: rows with consecutive seeds run
    together, at most this many. Over 1000 rows need `confirm=True`; the error says how long they would take."""
    base = (params or Params()).replace(**settings) if settings else (params or Params())
    rows = plan_rows(grid, zip)
    batch = checks.whole("batch", batch, low=1, example="batch=4")
    gpus = (1 if str(device).startswith("cuda") else 0) if gpus is None else gpus
    check_engine_args(engine, address, gpus, workers)
    after = scorer(score, base)
    source, setup, family, fit = model_source(model, device, dtype, engine)
    check_size(len(rows), estimate(family, base, rows, device, dtype), confirm)
    definition = {"kind": "generate", "model": source, "params": base.to_dict(), "rows": rows,
                  "score": getattr(score, "__qualname__", score), "device": device, "dtype": dtype}
    pool = connect(engine, setup, run_batch, address, gpus)
    folder, done = open_folder(out, definition)
    jobs = batches(to_run(rows, done, retry_failed), rows, base, batch)
    engine_object = engine_for(pool, setup, run_batch, 0 if hasattr(model, "txt2img") else workers, len(jobs), fit)
    names = list(dict.fromkeys(k for row in rows for k in row))
    return run(engine_object, jobs, folder, done, names, f"{Path(source).name} sweep", progress, after)


def model_source(model, device: str, dtype: str, engine: str):
    """(what the definition records, the workers' setup, the model's family or None, how many copies fit in
    memory or None), every argument checked before anything runs."""
    from ..loading import check_open

    if hasattr(model, "txt2img") and hasattr(model, "components"):
        if engine != "local":
            raise BadInput("An open Lab runs its rows in this process; for engine='ray' give the model's name or path, "
                           "which each actor opens.")
        return model.name or model.family, functools.partial(same, model), model.family, None
    device, dtype = check_open(model, device, dtype, None, False, None)
    options = {"device": device, "dtype": dtype}
    path = Path(model).expanduser()
    if not path.exists():  # an embedded model name (check_open refused anything else)
        from ..toy.registry import entry

        return str(model), functools.partial(open_model, str(model), options), entry(str(model))["family"], None
    from ..detect import inspect

    info = inspect(path) if path.is_file() else None
    fit = memory_fit(info.n_params * (2 if dtype in ("float16", "bfloat16") else 4)) if info else None
    return str(path.resolve()), functools.partial(open_model, str(path.resolve()), options), \
        info.family if info else None, fit


def same(lab, *args):
    return lab


def memory_fit(model_bytes: int) -> int | None:
    """How many copies of a model fit in the memory free now (a worker holds about 1.5x its weights)."""
    try:
        import psutil
    except ImportError:
        return None
    return max(1, int(psutil.virtual_memory().available // (1.5 * model_bytes)))


def estimate(family, base: Params, rows: list, device: str, dtype: str) -> str:
    """", estimated at 2.1 h on cpu" for the confirm message (from the first row's settings), or ""."""
    from ..limits import duration, planned_seconds

    if family is None:
        return ""
    seconds = planned_seconds(family, base.replace(**rows[0]), device, dtype)
    return f", estimated at {duration(seconds * len(rows))} on {device} ({duration(seconds)} per row, one worker)"
