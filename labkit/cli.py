"""The `labkit` command (also `python -m labkit`). One subcommand so far:

    labkit sweep toy cfg="1-7 (+3)" sampler="Euler, DPM++ 2M" seed=0-7 --prompt "a red circle" --score judge \
        --out runs/cfg
    labkit sweep notebooks/05_sampling_loop.ipynb seed=0-3 steps="10, 30" --out runs/05

A target ending in .ipynb is swept with papermill, anything else is a model (an embedded name, a checkpoint or a
diffusers folder) whose generations are swept. Axes are NAME=VALUES in A1111's X/Y/Z syntax; --rows takes a
.csv/.json file of rows instead. The results folder's index.html is printed at the end.
"""

import argparse
import sys

from .errors import BadInput, LabkitError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="labkit", description="labkit on the command line")
    commands = root.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", help="run a notebook or a model over a grid of settings",
                                description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    sweep.add_argument("target", help="a notebook (.ipynb), or a model: embedded name, checkpoint or folder")
    sweep.add_argument("axes", nargs="*", metavar="NAME=VALUES", help="an axis: values as A1111 writes them")
    sweep.add_argument("--out", required=True, help="the results folder (made; a rerun resumes it)")
    sweep.add_argument("--rows", help="a .csv or .json file of rows instead of axes")
    sweep.add_argument("--zip", action="store_true", help="zip the axes (row i takes value i of each) instead of "
                                                          "every combination")
    sweep.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="a fixed setting of every generation (e.g. --set steps=20); repeatable")
    sweep.add_argument("--prompt", help="the prompt of every generation (an axis 'prompt=...' varies it)")
    sweep.add_argument("--score", help="'judge' adds the embedded models' prompt adherence to each row")
    sweep.add_argument("--engine", default="local", choices=("local", "ray"))
    sweep.add_argument("--workers", type=int, help="worker processes or Ray actors (default: one per core)")
    sweep.add_argument("--batch", type=int, default=4, help="rows with consecutive seeds run together, at most this "
                                                              "many (default 4)")
    sweep.add_argument("--address", help="engine ray: 'auto' or host:port of a cluster (default: Ray starts here)")
    sweep.add_argument("--retry-failed", action="store_true", help="run the failed rows of the folder again")
    sweep.add_argument("--yes", action="store_true", help="run a sweep of over 1000 rows without asking")
    return root


def pairs(texts: list, what: str) -> dict:
    """{"cfg": "1-7 (+3)"} from ["cfg=1-7 (+3)"]."""
    found = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise BadInput(f"{what} {text!r}: write NAME=VALUES, e.g. cfg=\"1-7 (+3)\" or sampler=\"Euler, DPM++ 2M\".")
        found[name.strip()] = value
    return found


def sweep(args):
    from .sweep.generations import generate
    from .sweep.papermill_runs import notebooks
    from .sweep.values import cell_value

    grid = args.rows or pairs(args.axes, "axis")
    common = {"zip": args.zip, "retry_failed": args.retry_failed, "engine": args.engine, "address": args.address,
              "confirm": args.yes}
    if args.target.lower().endswith(".ipynb"):
        if args.set or args.prompt or args.score:
            raise BadInput("--set, --prompt and --score are for model sweeps; a notebook takes its settings as axes "
                           "(NAME=VALUE with one value keeps it fixed).")
        return notebooks(args.target, grid, args.out, workers=1 if args.workers is None else args.workers, **common)
    settings = {name: cell_value(value) for name, value in pairs(args.set, "--set").items()}
    if args.prompt is not None:
        settings["prompt"] = args.prompt
    return generate(args.target, grid, args.out, score=args.score, workers=args.workers, batch=args.batch, **common,
                    **settings)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        results = sweep(args)
    except LabkitError as error:
        print(f"labkit: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"{results!r}\nopen {results.index}")
    return 1 if results.failed else 0
