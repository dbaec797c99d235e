"""`python -m labkit.toy.train <stage|all> [options]`: train stages in order into a weights folder."""

import argparse
import json
import os
from pathlib import Path

from ..registry import WEIGHTS
from .recipe import STAGES
from .run import Run
from .stages import train

OVERRIDES = (("steps", int), ("batch", int), ("seed", int), ("pool", int), ("lr", float))  # recipe fields


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(prog="python -m labkit.toy.train",
                                     description="Train labkit's embedded models on the toy world.")
    parser.add_argument("stage", choices=(*STAGES, "all"), help="a stage, or all of them in order")
    for name, kind in OVERRIDES:
        parser.add_argument(f"--{name}", type=kind, help="override the recipe's value (every stage with 'all')")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="weights folder (default: the shipped one)")
    parser.add_argument("--logs", type=Path, help="loss logs folder (default: labkit/toy/logs, or OUT/logs)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1...")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Run(args.out, args.logs, args.device, progress=not args.quiet)
    overrides = {name: getattr(args, name) for name, _ in OVERRIDES if getattr(args, name) is not None}
    for stage in STAGES if args.stage == "all" else (args.stage,):
        record = train(stage, run, **overrides)
        shown = {k: v for k, v in record.items() if k != "recipe"}
        print(f"{stage}: {json.dumps(shown)}", flush=True)


if __name__ == "__main__":
    main()
