"""engine="ray": generation sweeps as an actor pool (one model per actor, as Ray's own Stable Diffusion batch
example loads it once per actor), notebook runs as Ray tasks. Results come back to the caller, which writes them
into the sweep's folder, so the folder lives on this machine whatever node ran the row.

`address=None` starts Ray here with this machine's cores (and stops it afterwards; call `ray.init()` yourself to
keep one running between sweeps); "auto" or "host:port" joins a running cluster, whose nodes need labkit
installed. A dead actor fails its job's rows and is replaced; Ctrl-C hands out no more jobs and waits for those in
flight.
"""

import socket

from ..errors import BadInput, LabkitError
from ..devices import cpu_cores
from .engines import call, limit_threads

CONNECT_SECONDS = 5  # how long a cluster address may take to accept a connection before the sweep gives up


def task_main(work, payload, threads: int):
    """A Ray task: one notebook run with `threads` cores."""
    limit_threads(threads)
    return call(work, None, payload)


class Holder:
    """A Ray actor's body: the state `setup` made (a model), kept for every job it runs."""

    def __init__(self, setup, threads: int):
        limit_threads(threads)
        self.state = setup() if setup else None

    def run(self, work, payload):
        return call(work, self.state, payload)


def check_address(address) -> None:
    """A "host:port" that does not accept a connection is a clear error before anything is written."""
    if address is None or address == "auto" or str(address).startswith("ray://"):
        return
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"address={address!r}: give 'auto', 'host:port' of a Ray head node, or None to start Ray here.")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise LabkitError(f"No Ray cluster answers at {address} ({error}); start one (`ray start --head`) or check "
                          f"the address; address=None runs Ray on this machine.") from None


class RayPool:
    """Jobs on Ray: tasks when there is no setup (notebooks), else `workers` actors each holding the state."""

    def __init__(self, setup, work, workers, threads: int, address=None, gpus: float = 0):
        self.setup, self.work, self.workers, self.threads = setup, work, workers, threads
        self.address, self.gpus, self.started = address, gpus, False
        self.actors = {}  # object ref of a job in flight -> the actor running it

    def connect(self) -> None:
        try:
            import ray
        except ImportError:
            raise BadInput("engine='ray' needs Ray: pip install 'labkit[ray]'.") from None
        check_address(self.address)
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, num_cpus=cpu_cores() if self.address is None else None,
                         include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            except ConnectionError as error:
                raise LabkitError(f"Could not join the Ray cluster at {self.address!r}: {error}") from None
            self.started = True

    def plan(self, workers, jobs: int) -> None:
        """How many actors or tasks at once: `workers`, else as many as the cluster has cores (or GPUs) for."""
        import ray

        if workers is None:
            free = ray.cluster_resources()
            slots = free.get("GPU", 0) // self.gpus if self.gpus else free.get("CPU", 1) // self.threads
            workers = int(max(1, slots))
        self.workers = max(1, min(int(workers), jobs or 1))

    def results(self, jobs):
        import ray

        if not ray.is_initialized():
            self.connect()
        waiting, running, draining = list(jobs), {}, False  # running: object ref -> (job, actor or None)
        idle = [self.actor() for _ in range(min(self.workers, len(waiting)))] if self.setup else []
        try:
            while waiting and not draining or running:
                while waiting and not draining and (idle or not self.setup and len(running) < self.workers):
                    job = waiting.pop(0)
                    running[self.submit(job, idle.pop() if self.setup else None)] = job, None
                try:
                    done, _ = ray.wait(list(running), num_returns=1)
                except KeyboardInterrupt:
                    draining = True
                    continue
                job, actor = running.pop(done[0])
                yield job, self.outcome(done[0], idle)
        finally:
            self.close(idle, running)
        if draining:
            raise KeyboardInterrupt

    def submit(self, job, actor):
        import ray

        if actor is None:
            remote = ray.remote(task_main).options(num_cpus=self.threads, max_retries=0)
            return remote.remote(self.work, job.payload, self.threads)
        ref = actor.run.remote(self.work, job.payload)
        self.actors[ref] = actor
        return ref

    def actor(self):
        import ray

        remote = ray.remote(Holder).options(num_cpus=self.threads, num_gpus=self.gpus, max_restarts=0)
        return remote.remote(self.setup, self.threads)

    def outcome(self, ref, idle: list):
        """The job's outcome; a dead actor's job fails and a fresh actor takes its place."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        actor = self.actors.pop(ref, None) if self.setup else None
        try:
            value = ray.get(ref)
        except RayTaskError as error:  # the actor's setup failed: no job can run
            raise LabkitError(f"A Ray sweep worker could not start: {error.cause}") from None
        except (RayActorError, WorkerCrashedError) as error:
            if actor is not None:
                idle.append(self.actor())
            return f"the Ray worker died while running this row ({type(error).__name__})"
        if actor is not None:
            idle.append(actor)
        return value

    def close(self, idle: list, running: dict) -> None:
        import ray

        for actor in [*idle, *self.actors.values()]:
            ray.kill(actor)
        if self.started:
            ray.shutdown()
