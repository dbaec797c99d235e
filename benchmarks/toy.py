"""Speed of the embedded models: seconds per picture at 64x64, 20 steps, CFG, for batch sizes 1 / 8 / 32.
Writes the `## toy` section of benchmarks/results.md and benchmarks/toy.json.

    .venv/bin/python benchmarks/toy.py [--repeats 5] [--tiny] [--out DIR]
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from core import add_run_args, sizes, update_section

FULL = {"repeats": 5, "steps": 20, "batches": (1, 8, 32), "models": None}  # models None: every base model
TINY = {"repeats": 1, "steps": 2, "batches": (1, 2), "models": ("toy",)}


def per_picture(lab, batch: int, repeats: int, steps: int = 20) -> float:
    run = lambda: lab.txt2img("a red circle on a white background", steps=steps, cfg=4.0,  # noqa: E731
                              sampler="DPM++ 2M", seed=0, batch_size=batch)
    run()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) / batch


def write(results: dict, work: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy.json").write_text(json.dumps(results, indent=2) + "\n")
    first, *others = work["batches"]
    lines = ["## toy (benchmarks/toy.py)", "",
             f"{results['when']} · {results['machine']} · torch {results['torch']} · {results['threads']} threads · "
             f"64x64, {work['steps']} steps DPM++ 2M, CFG 4 (target for `toy`: ≤ 0.5 s per picture at batch 1)", "",
             " | ".join(["| model", f"s/picture, batch {first}", *(f"batch {b}" for b in others)]) + " |",
             "|---" * (1 + len(work["batches"])) + "|"]
    for r in results["rows"]:
        cells = [r["model"], f"**{r[f'batch_{first}']}**", *(str(r[f"batch_{b}"]) for b in others)]
        lines.append("| " + " | ".join(cells) + " |")
    update_section(out / "results.md", "toy", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    parser.add_argument("--repeats", type=int, help=f"default {FULL['repeats']} ({TINY['repeats']} with --tiny)")
    args = parser.parse_args()
    work = sizes(args, FULL, TINY)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    import labkit

    rows = []
    for name in work["models"] or [n for n in labkit.models() if n != "toy-xl-refiner"]:
        lab = labkit.open(name)
        rows.append({"model": name, **{f"batch_{b}": round(per_picture(lab, b, work["repeats"], work["steps"]), 4)
                                       for b in work["batches"]}})
    results = {"when": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}
    write(results, work, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
