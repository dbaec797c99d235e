"""Hires fix cost (issue #21): the single pass at 64 px, hires fix to 128 px with a latent, a pixel and a model
upscaler, and a direct generation at 128 px, interleaved in one run on `toy`; and upscaler throughput on a 512 px
picture (toy-upscaler in one piece and in 128 px tiles, Lanczos). Writes benchmarks/hires.json and the `## hires`
section of benchmarks/results.md.

    .venv/bin/python benchmarks/hires.py [--repeats 7] [--steps 20] [--tiny] [--out DIR]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from core import PROMPT, add_run_args, sizes, update_section  # noqa: E402

FULL = {"repeats": 7, "warmups": 1, "steps": 20, "side": 512}
TINY = {"repeats": 1, "warmups": 0, "steps": 2, "side": 64}
CFG, DENOISE = 4.0, 0.35


def generations(lab, steps: int) -> dict:
    """name -> one picture of the work (hires passes: `steps` each, A1111's default hires steps 0)."""
    hires = dict(hires=True, strength=DENOISE)
    common = dict(steps=steps, cfg=CFG, seed=0)
    return {
        "single_64": lambda: lab.txt2img(PROMPT, **common),
        "hires_latent_128": lambda: lab.txt2img(PROMPT, **common, **hires, hires_upscaler="Latent"),
        "hires_lanczos_128": lambda: lab.txt2img(PROMPT, **common, **hires, hires_upscaler="Lanczos"),
        "hires_toy_upscaler_128": lambda: lab.txt2img(PROMPT, **common, **hires, hires_upscaler="toy-upscaler"),
        "direct_128": lambda: lab.txt2img(PROMPT, **common, width=128, height=128),
    }


def upscales(side: int) -> dict:
    """name -> one 2x upscale of a side x side picture."""
    import numpy as np
    from PIL import Image

    import labkit

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8))
    model = labkit.load_upscaler("toy-upscaler")
    return {
        "toy_upscaler_whole": lambda: labkit.upscale(picture, model, 2, tile=max(side, 32), overlap=0),
        "toy_upscaler_tiles_128": lambda: labkit.upscale(picture, model, 2, tile=128, overlap=16),
        "lanczos": lambda: labkit.upscale(picture, "Lanczos", 2),
    }


def timed(calls: dict, work: dict) -> dict:
    """Median seconds of each call, interleaved (a slow moment of the machine hits every variant alike)."""
    for _ in range(work["warmups"]):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    for _ in range(work["repeats"]):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def measure(work: dict) -> dict:
    import torch

    import labkit

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    lab = labkit.open("toy")
    lab.limits = None
    gen = timed(generations(lab, work["steps"]), work)
    up = timed(upscales(work["side"]), work)
    megapixels = (2 * work["side"]) ** 2 / 1e6
    return {
        "seconds": {name: round(s, 4) for name, s in gen.items()},
        "hires_over_single": {name: round(gen[name] / gen["single_64"], 3) for name in gen if name.startswith("hires")},
        "hires_over_direct_128": {name: round(gen[name] / gen["direct_128"], 3) for name in gen
                                  if name.startswith("hires")},
        "upscale_seconds": {name: round(s, 4) for name, s in up.items()},
        "upscale_megapixels_per_s": {name: round(megapixels / s, 3) for name, s in up.items()},
        "tiles_over_whole": round(up["toy_upscaler_tiles_128"] / up["toy_upscaler_whole"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_args(parser)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--steps", type=int)
    args = parser.parse_args()
    work = sizes(args, FULL, TINY)
    import diffusers
    import torch

    result = {"when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "torch": torch.__version__, "diffusers": diffusers.__version__, "model": "toy + toy-upscaler",
              "steps": work["steps"], "repeats": work["repeats"], "denoise": DENOISE, "upscale_side": work["side"],
              **measure(work)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hires.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {name} | {s:.3f} |" for name, s in result["seconds"].items())
    ups = "\n".join(f"| {name} | {s:.3f} | {result['upscale_megapixels_per_s'][name]:.2f} |"
                    for name, s in result["upscale_seconds"].items())
    update_section(args.out / "results.md", "hires", f"""## hires (benchmarks/hires.py)
{result['when']}, {result['machine']}, torch {result['torch']}, diffusers {result['diffusers']}; {result['model']},
{work['steps']} steps a pass (hires steps 0: as many as the first pass), denoise {DENOISE}, CFG {CFG}, median of
{work['repeats']} interleaved repeats of whole calls.

| run | seconds |
|---|---|
{rows}

hires fix over the single pass: {result['hires_over_single']}; over a direct 128 px generation:
{result['hires_over_direct_128']}.

Upscaling a {work['side']} px picture 2x:

| upscaler | seconds | output Mpx/s |
|---|---|---|
{ups}

128 px tiles (overlap 16) over one piece: {result['tiles_over_whole']}x.
""")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
