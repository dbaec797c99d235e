"""Speed of the embedded models: seconds per picture at 64x64, 20 steps, CFG, for batch sizes 1 / 8 / 32.
Writes the `## toy` section of benchmarks/results.md and benchmarks/toy.json.

    .venv/bin/python benchmarks/toy.py [--repeats 5]
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from core import update_section

HERE = Path(__file__).parent
BATCHES = (1, 8, 32)


def per_picture(lab, batch: int, repeats: int) -> float:
    run = lambda: lab.txt2img("a red circle on a white background", steps=20, cfg=4.0,  # noqa: E731
                              sampler="DPM++ 2M", seed=0, batch_size=batch)
    run()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    import labkit

    rows = []
    for name in (n for n in labkit.models() if n != "toy-xl-refiner"):
        lab = labkit.open(name)
        rows.append({"model": name, **{f"batch_{b}": round(per_picture(lab, b, args.repeats), 4) for b in BATCHES}})
    results = {"when": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}
    (HERE / "toy.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["## toy (benchmarks/toy.py)", "",
             f"{results['when']} · {results['machine']} · torch {results['torch']} · {results['threads']} threads · "
             "64x64, 20 steps DPM++ 2M, CFG 4 (target for `toy`: ≤ 0.5 s per picture at batch 1)", "",
             "| model | s/picture, batch 1 | batch 8 | batch 32 |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | **{r['batch_1']}** | {r['batch_8']} | {r['batch_32']} |" for r in rows]
    update_section(HERE / "results.md", "toy", "\n".join(lines) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
