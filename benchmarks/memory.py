"""Memory over repeated use: open each embedded model (`labkit.models()`), run one small generation on it, drop
it, and measure the process's resident memory after each cycle (/proc/self/statm, after gc.collect()).

glibc keeps freed memory for reuse and gives it back in steps, so raw resident memory saws by 10-40 MiB from cycle
to cycle whatever the program holds. Each cycle therefore measures twice: raw, then after `malloc_trim(0)` (glibc
returns the free pages it keeps; a no-op elsewhere), which is what the process still holds. The baseline is the
median of the `window` cycles after the warm-up, the end the median of the last `window` cycles; the growth of
trimmed resident memory from one to the other must stay under 5 %, and the slope (MiB per cycle, least squares
after the warm-up) shows a steady leak that the medians could hide. The raw figures are reported beside them.
Writes the `## memory` section of benchmarks/results.md and benchmarks/memory.json.

    .venv/bin/python benchmarks/memory.py [--cycles 50] [--tiny] [--out DIR]
"""

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

from core import add_run_args, sizes, update_section

FULL = {"cycles": 50, "warmup": 5, "window": 5, "steps": 2}
TINY = {"cycles": 2, "warmup": 1, "window": 1, "steps": 1}
TARGET_PCT = 5.0  # the most resident memory may grow after the warm-up


def resident_mb() -> float:
    """The process's resident set size in MiB, read from /proc/self/statm (getrusage's peak where absent)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def use(name: str, steps: int) -> None:
    """Open `name`, make one small picture with it (img2img for a refiner), and drop it."""
    import labkit

    lab = labkit.open(name)
    settings = {"steps": steps, "sampler": "Euler", "seed": 1}
    if lab.layout == "refiner":
        from PIL import Image

        lab.img2img(Image.new("RGB", (64, 64), (200, 40, 40)), "a red circle", strength=1.0, **settings)
    else:
        lab.txt2img("a red circle", **settings)
    del lab


def trim() -> bool:
    """Ask glibc to give back the free memory it keeps (malloc_trim); False where there is no glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def cycles(models: list, count: int, steps: int) -> tuple[list[float], list[float]]:
    """(raw, trimmed) resident MiB after each cycle (every model opened, used and dropped once)."""
    raw, trimmed = [], []
    for _ in range(count):
        for name in models:
            use(name, steps)
        gc.collect()
        raw.append(round(resident_mb(), 1))
        trim()
        trimmed.append(round(resident_mb(), 1))
    return raw, trimmed


def summary(after: list, warmup: int, window: int) -> dict:
    """Baseline (median of the first `window` cycles after the warm-up), end (median of the last `window`), the
    highest, the growth in % and the slope in MiB per cycle."""
    settled = after[warmup:] or after[-1:]
    baseline, end = statistics.median(settled[:window]), statistics.median(after[-window:])
    return {"after_warmup": baseline, "end": end, "max": max(after),
            "growth_pct": round(100 * (end - baseline) / baseline, 2), "slope_mb_per_cycle": slope(settled)}


def slope(values: list) -> float:
    """MiB per cycle of the least-squares line through `values` (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    xs = range(len(values))
    mx, my = statistics.mean(xs), statistics.mean(values)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, values)) / sum((x - mx) ** 2 for x in xs), 3)


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps(results, indent=2) + "\n")
    r = results
    lines = ["## memory (benchmarks/memory.py)", "",
             f"{r['when']} · {r['machine']} · torch {r['torch']} · {r['cycles']} cycles of "
             f"{', '.join(r['models'])}: each opened, one {r['steps']}-step picture, dropped; resident memory "
             f"(/proc/self/statm) after each cycle", "",
             "| resident memory | before | after warm-up | at the end | highest | growth after warm-up | slope |",
             "|---|---|---|---|---|---|---|"]
    for label, key in (("held (after malloc_trim), target growth < 5 %", "rss_mb"), ("raw", "raw_rss_mb")):
        m = r[key]
        lines.append(f"| {label} | {r['start_mb']} MiB | {m['after_warmup']} MiB | {m['end']} MiB | {m['max']} MiB | "
                     f"**{m['growth_pct']} %** | {m['slope_mb_per_cycle']} MiB/cycle |")
    lines += ["", f"After warm-up: median of cycles {r['warmup'] + 1}-{r['warmup'] + r['window']}; at the end: median "
              f"of the last {r['window']}. Raw resident memory saws as glibc keeps freed memory and gives it back in "
              f"steps; after malloc_trim it is what the process holds.", ""]
    update_section(out / "results.md", "memory", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    parser.add_argument("--cycles", type=int, help=f"default {FULL['cycles']} ({TINY['cycles']} with --tiny)")
    args = parser.parse_args()
    work = sizes(args, FULL, TINY)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    import labkit

    models = labkit.models()
    start = resident_mb()
    raw, held = cycles(models, work["cycles"], work["steps"])
    kept = summary(held, work["warmup"], work["window"])
    results = {"when": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "torch": torch.__version__, "models": models, "cycles": work["cycles"], "warmup": work["warmup"],
               "window": work["window"], "steps": work["steps"], "start_mb": round(start, 1), "trimmed": trim(),
               "rss_mb": kept, "raw_rss_mb": summary(raw, work["warmup"], work["window"]), "target_pct": TARGET_PCT,
               "ok": kept["growth_pct"] < TARGET_PCT, "per_cycle_mb": held, "per_cycle_raw_mb": raw}
    write(results, args.out)
    print(json.dumps({k: v for k, v in results.items() if not k.startswith("per_cycle")}, indent=2))
    if work["cycles"] > work["warmup"] and not results["ok"]:
        raise SystemExit(f"resident memory grew {kept['growth_pct']} % after the warm-up (target < {TARGET_PCT} %)")


if __name__ == "__main__":
    main()
