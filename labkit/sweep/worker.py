"""A local sweep worker: `python -m labkit.sweep.worker ADDRESS THREADS`, started by engines.LocalPool."""

import sys

from .engines import worker_main

if __name__ == "__main__":
    worker_main(sys.argv[1], int(sys.argv[2]))
