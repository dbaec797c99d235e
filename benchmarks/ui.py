"""Studio responsiveness: from a slider change (live mode on) to the new picture in the panel's image widget,
against a plain diffusers call of the same picture, interleaved in one run. Writes benchmarks/results.md
(section "ui") and benchmarks/ui.json.

    .venv/bin/python benchmarks/ui.py [--repeats 10] [--model toy] [--tiny] [--out DIR]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from core import PROMPT, add_run_args, lab_for, plain_call, sizes, update_section  # noqa: E402

FULL = {"repeats": 10, "warmups": 2, "steps": 20}
TINY = {"repeats": 1, "warmups": 0, "steps": 2}  # one slider move


def slider_to_picture(studio, cfg: float, timeout: float = 60.0) -> float:
    """Seconds from moving the CFG slider to the image widget showing the new picture."""
    shown = threading.Event()

    def done(change):
        shown.set()

    studio.image.observe(done, names="value")
    start = time.perf_counter()
    studio.sampling.cfg.value = cfg  # what the browser's slider does: set the trait
    if not shown.wait(timeout):
        raise TimeoutError("the Studio showed no new picture")
    elapsed = time.perf_counter() - start
    studio.image.unobserve(done, names="value")
    studio.wait(timeout)
    return elapsed


def measure(family: str, repeats: int, steps: int = 20, warmups: int = 2) -> dict:
    from labkit import Params
    from labkit.ui import Studio

    lab, weights = lab_for(family)
    studio = Studio(lab, params=Params(prompt=PROMPT, steps=steps, sampler="Euler", seed=1, cfg=5.0))
    studio.generate()  # warm up: first run, preview fit
    studio.live.value = True
    values = [4.0, 5.0]
    ui, plain = [], []
    for i in range(warmups):
        slider_to_picture(studio, values[i % 2] + 0.5), plain_call(lab, steps, 5.0, 1)
    for i in range(repeats):  # interleaved so drifts in machine load hit both alike
        ui.append(slider_to_picture(studio, values[i % 2]))
        t = time.perf_counter()
        plain_call(lab, steps, values[i % 2], 1)
        plain.append(time.perf_counter() - t)
    ui_med, plain_med = statistics.median(ui), statistics.median(plain)
    return {"family": family, "weights": weights, "steps": steps, "debounce_s": studio.debounce,
            "repeats": repeats, "slider_to_picture_s": round(ui_med, 4), "diffusers_s": round(plain_med, 4),
            "ratio": round(ui_med / plain_med, 3), "max_s": round(max(ui), 4)}


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ui.json").write_text(json.dumps(results, indent=2) + "\n")
    steps = results["runs"][0]["steps"]
    lines = ["## ui (benchmarks/ui.py)", "",
             f"{results['when']} · {results['machine']} · torch threads {results['threads']}", "",
             "Studio with live mode on: move the CFG slider, wait until the image widget shows the new picture "
             f"(debounce, worker thread, {steps} steps, step previews, PNG encoding included); the plain diffusers "
             "call renders the same picture with no UI.", "",
             "| model | weights | slider → picture s (target ≤ 0.5) | worst s | plain diffusers s | ratio | debounce s |",
             "|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['family']} | {r['weights']} | **{r['slider_to_picture_s']}** | {r['max_s']} | "
                     f"{r['diffusers_s']} | {r['ratio']} | {r['debounce_s']} |")
    update_section(out / "results.md", "ui", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_args(parser)
    parser.add_argument("--repeats", type=int, help=f"default {FULL['repeats']} ({TINY['repeats']} with --tiny)")
    parser.add_argument("--model", action="append", help="toy (default) and/or toy-xl")
    args = parser.parse_args()
    work = sizes(args, FULL, TINY)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    results = {"when": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "threads": torch.get_num_threads(),
               "runs": [measure(family, work["repeats"], work["steps"], work["warmups"])
                        for family in (args.model or ["toy"])]}
    write(results, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
