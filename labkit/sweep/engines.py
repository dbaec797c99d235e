"""Where a sweep's jobs run: in this process, in worker processes on this machine, or on Ray (ray_engine.py).

A job is a few rows run together (a batch of seeds, or one notebook run). `work(state, payload)` runs one and
returns {"rows": [result row, ...], "files": {relative path: bytes}}; `setup()` makes a worker's state once (a
model opened once per worker). Every engine yields `(job, outcome)` as jobs finish, where outcome is that dict or
an error text (a worker that died): the caller writes files and rows into the folder, so results stream back the
same way from a local worker or a Ray node.

Ctrl-C: workers ignore SIGINT, the engine stops handing out jobs, yields the jobs in flight as they finish, then
raises KeyboardInterrupt (a second Ctrl-C stops the workers at once).
"""

import os
import pickle
import signal
import traceback
from dataclasses import dataclass

from ..errors import BadInput

KEY_VARIABLE = "LABKIT_SWEEP_KEY"  # the worker's key to the parent's socket, passed in its environment


@dataclass
class Job:
    """Rows run together: their indices in the sweep, their parameters (for failure rows) and what `work` gets."""

    runs: list
    rows: list
    payload: object


def limit_threads(threads: int) -> None:
    """Give this worker `threads` cores for torch and OpenMP, so workers do not fight for the same cores."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)  # also inherited by the kernels a notebook worker starts
    import torch

    torch.set_num_threads(threads)


def call(work, state, payload):
    """work(state, payload), or the error as text: one failing job never stops the sweep."""
    try:
        return work(state, payload)
    except Exception as error:  # noqa: BLE001 - reported on the job's rows
        return f"{type(error).__name__}: {error}"


def in_process(jobs, setup, work):
    """Run the jobs here, one after another (workers=0); an interrupt stops the job it hits."""
    state = setup() if setup else None
    for job in jobs:
        yield job, call(work, state, job.payload)


def worker_main(address: str, threads: int) -> None:
    """A local worker process (`python -m labkit.sweep.worker`): connect back, ignore Ctrl-C (the parent
    decides), set threads, set up once, run jobs until told to stop (None)."""
    from multiprocessing.connection import Client

    connection = Client(address, authkey=bytes.fromhex(os.environ.pop(KEY_VARIABLE)))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads(threads)
    try:
        setup, work = connection.recv()
    except EOFError:  # the parent could not send them (or stopped first): nothing to do
        return
    try:
        state = setup() if setup else None
    except Exception as error:  # noqa: BLE001 - the parent raises it: no job could run
        connection.send(("setup failed", f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-3)}"))
        return
    connection.send(("ready", None))
    while (payload := connection.recv()) is not None:
        connection.send(("done", call(work, state, payload)))


class LocalPool:
    """`workers` processes on this machine, each with `threads` cores; a worker that dies fails its job's rows
    and is replaced. Workers are fresh interpreters (`python -m labkit.sweep.worker`, not multiprocessing's spawn,
    which would re-run a calling script that lacks an `if __name__ == "__main__":` guard)."""

    def __init__(self, setup, work, workers: int, threads: int):
        self.setup, self.work, self.workers, self.threads = setup, work, workers, threads
        self.lost = 0  # workers that died before their first job
        self.listener = None

    def start(self):
        """A new worker process and the connection to it, its setup and work sent."""
        import subprocess
        import sys

        env = dict(os.environ, **{KEY_VARIABLE: self.key.hex()})
        process = subprocess.Popen([sys.executable, "-m", "labkit.sweep.worker", self.listener.address,
                                    str(self.threads)], env=env, start_new_session=True)
        connection = self.listener.accept()
        try:
            connection.send((self.setup, self.work))
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            process.kill()
            raise BadInput(f"A sweep's work must reach its worker processes, and {error}: give functions defined in "
                           f"a module (not a lambda or a notebook cell), or workers=0 to run here.") from None
        return process, connection

    def results(self, jobs):
        from multiprocessing.connection import Listener, wait

        self.key = os.urandom(16)
        self.listener = Listener(authkey=self.key)  # a Unix socket, or a named pipe on Windows
        waiting, busy, draining = list(jobs), {}, False  # busy: connection -> (process, job or None while starting)
        try:
            for _ in range(min(self.workers, len(waiting))):
                process, connection = self.start()
                busy[connection] = (process, None)
            while busy:
                try:
                    ready = wait(list(busy))
                except KeyboardInterrupt:
                    draining = True
                    self.stop_idle(busy)
                    continue
                for connection in [c for c in busy if c in ready]:
                    yield from self.handle(connection, busy, waiting, draining)
        finally:
            for process, _ in busy.values():
                process.kill()
            self.listener.close()
        if draining:
            raise KeyboardInterrupt

    def handle(self, connection, busy, waiting, draining):
        """One worker spoke (or died): yield its finished job, then give it the next one or let it go."""
        process, job = busy.pop(connection)
        try:
            kind, outcome = connection.recv()
        except (EOFError, OSError):
            process.wait(5)
            self.lost += job is None
            if self.lost > self.workers + 2:
                from ..errors import LabkitError

                raise LabkitError(f"Sweep workers keep dying before their first job (exit code {process.returncode}): "
                                  f"out of memory? Try fewer workers (workers=1).")
            if job is not None:
                yield job, f"the worker process died while running this row (exit code {process.returncode})"
            if waiting and not draining:
                new_process, new_connection = self.start()
                busy[new_connection] = (new_process, None)
            return
        if kind == "setup failed":
            from ..errors import LabkitError

            raise LabkitError(f"A sweep worker could not start: {outcome}")
        if job is not None:
            yield job, outcome
        if not waiting or draining:
            connection.send(None)
            process.wait(30)
            return
        job = waiting.pop(0)
        try:
            connection.send(job.payload)
            busy[connection] = (process, job)
        except (BrokenPipeError, OSError):  # it died between jobs: the job goes back, a new worker starts
            waiting.insert(0, job)
            new_process, new_connection = self.start()
            busy[new_connection] = (new_process, None)

    @staticmethod
    def stop_idle(busy) -> None:
        """On Ctrl-C: workers without a job stop now; the others finish theirs."""
        for connection, (process, job) in list(busy.items()):
            if job is None:
                process.kill()
                busy.pop(connection)
