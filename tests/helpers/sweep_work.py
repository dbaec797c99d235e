"""Work functions for sweep-engine tests, importable by worker processes and Ray workers (they run the jobs)."""

import os


def setup_state():
    return {"pid": os.getpid()}


def work(state, payload):
    """A job: "die" kills the worker mid-row, "fail" raises, anything else is an ok row naming the worker."""
    if payload == "die":
        os._exit(7)
    if payload == "fail":
        raise ValueError("this row fails")
    return {"rows": [{"run": payload, "status": "ok", "seconds": 0.0, "error": "", "cell": "",
                      "pid": state["pid"] if state else os.getpid(), "threads": os.environ.get("OMP_NUM_THREADS")}],
            "files": {f"files/{payload}.txt": str(payload).encode()}}


def broken_setup():
    raise RuntimeError("no model here")
