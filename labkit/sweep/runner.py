"""The loop every sweep shares: pick the rows still to run, hand their jobs to an engine, stream what comes back
into the folder (files, rows, tables every few seconds), show a progress bar with an ETA, and leave the folder
resumable whatever happens (a failure, a dead worker, Ctrl-C)."""

import time

from .. import checks
from ..errors import BadInput, TooLarge
from ..devices import cpu_cores
from .engines import LocalPool, in_process
from .folder import finish, save_files, write_results

CONFIRM_ROWS = 1000  # a sweep of more rows runs only when asked (confirm=True, or --yes on the command line)
WRITE_EVERY = 2.0  # seconds between rewrites of the results tables while a sweep runs
ENGINES = ("local", "ray")


def check_size(rows: int, estimate: str, confirm: bool) -> None:
    if rows > CONFIRM_ROWS and not confirm:
        raise TooLarge(f"This sweep has {rows} rows{estimate}; a sweep over {CONFIRM_ROWS} rows runs only when asked: "
                       f"pass confirm=True (labkit sweep: --yes), or give the grid fewer values.")


def to_run(rows: list, done: dict, retry_failed: bool) -> list[int]:
    """Indices of the rows still to run: not yet run, or failed when retrying failures."""
    checks.flag("retry_failed", retry_failed)
    return [i for i in range(len(rows)) if i not in done or (retry_failed and done[i]["status"] != "ok")]


def split_workers(workers, jobs: int, memory_fit: int | None = None) -> tuple[int, int]:
    """(workers, threads each): by default one worker per core (fewer when there are fewer jobs or the model does
    not fit that many times in memory), the cores divided among them."""
    cores = cpu_cores()
    if workers is None:
        workers = max(1, min(cores, jobs, memory_fit or cores))
    workers = checks.whole("workers", workers, low=0, example="workers=2")
    return workers, max(1, cores // max(workers, 1))


def connect(engine: str, setup, work, address, gpus):
    """The Ray pool, connected before the folder is touched (a dead address leaves nothing written); None for
    the local engine."""
    if engine != "ray":
        return None
    from .ray_engine import RayPool

    pool = RayPool(setup, work, None, 1, address, gpus)
    pool.connect()
    return pool


def engine_for(ray_pool, setup, work, workers, jobs: int, memory_fit: int | None = None):
    """An object whose `results(jobs)` yields (job, outcome) as jobs finish: the Ray pool sized for the jobs, in
    this process (workers=0), or local worker processes."""
    if ray_pool is not None:
        ray_pool.plan(workers, jobs)
        return ray_pool
    workers, threads = split_workers(workers, jobs, memory_fit)
    return InProcess(setup, work) if workers == 0 else LocalPool(setup, work, workers, threads)


class InProcess:
    """workers=0: jobs run in this very process (handy to debug; a crash here is the caller's crash)."""

    def __init__(self, setup, work):
        self.setup, self.work = setup, work

    def results(self, jobs):
        return in_process(jobs, self.setup, self.work)


def failed_rows(job, error: str) -> list[dict]:
    return [{"run": run, "status": "failed", "seconds": 0.0, "error": error, "cell": "", **row}
            for run, row in zip(job.runs, job.rows)]


def run(engine, jobs: list, folder, done: dict, parameters: list, title: str, progress: bool = True,
        after=None):
    """Run `jobs` on `engine` into `folder` (with `done` rows kept); `after(row, files)` may add values to each
    finished row (scores). Returns the SweepResults; on Ctrl-C saves everything, says how to resume, re-raises."""
    from tqdm.auto import tqdm

    results, last = dict(done), time.monotonic()
    bar = tqdm(total=sum(len(job.runs) for job in jobs), desc=title, unit="row", disable=not progress)
    interrupted = False
    try:
        for job, outcome in engine.results(jobs):
            rows = failed_rows(job, outcome) if isinstance(outcome, str) else outcome["rows"]
            files = {} if isinstance(outcome, str) else outcome.get("files", {})
            save_files(folder, files)
            for row in rows:
                results[row["run"]] = after(row, files) if after and row["status"] == "ok" else row
            bar.update(len(rows))
            if time.monotonic() - last > WRITE_EVERY:
                write_results(folder, [results[i] for i in sorted(results)], parquet=False)
                last = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        final = finish(folder, [results[i] for i in sorted(results)], parameters, title)
    if interrupted:
        print(f"Sweep interrupted: {len(results)} rows saved in {folder}; run the same sweep again to go on.")
        raise KeyboardInterrupt
    return final


def check_engine_args(engine: str, address, gpus, workers) -> None:
    checks.choose("engine", engine, ENGINES)
    if workers is not None:
        checks.whole("workers", workers, low=0, example="workers=2")
    if address is not None and engine != "ray":
        raise BadInput(f"address={address!r} is for engine='ray' (a Ray cluster); with engine={engine!r} leave it out.")
    checks.real("gpus", gpus, low=0, example="gpus=1")
