"""ControlNet cost per step (issue #20): the plain model, one unit and two units in labkit, against diffusers' own
StableDiffusionControlNetPipeline (with a MultiControlNetModel for two) on the same pictures, interleaved in one
run on `toy` and `toy-controlnet`. Writes benchmarks/controlnet.json and the `## controlnet` section of
benchmarks/results.md.

    .venv/bin/python benchmarks/controlnet.py [--repeats 7] [--steps 20] [--tiny] [--out DIR]
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

FULL = {"repeats": 7, "warmups": 2, "steps": 20}
TINY = {"repeats": 1, "warmups": 0, "steps": 2}
CFG = 4.0


def control_picture():
    import numpy as np

    from labkit.toy import world

    return world.sample_scene(np.random.default_rng(3), allow_two=False).render(64)


def runs(lab, steps: int) -> dict:
    """name -> a function making one picture of the same work."""
    import torch
    from diffusers import MultiControlNetModel, StableDiffusionControlNetPipeline

    from labkit import ControlUnit

    picture = control_picture()
    one = ControlUnit("toy-controlnet", image=picture, module="canny", pixel_perfect=True)
    two = [one, one.replace(weight=0.5, module="lineart_standard")]
    maps = lab.txt2img(PROMPT, steps=1, control=two).control_maps
    net = lab.controlnets.get("toy-controlnet")[0]
    base = lab.pipe
    parts = dict(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    # the scheduler labkit runs for this work (DPM++ 2M on A1111's noise levels), one object per pipeline
    scheduler = lambda: lab.scheduler(lab.params(prompt=PROMPT, steps=steps, cfg=CFG))  # noqa: E731
    single = StableDiffusionControlNetPipeline(controlnet=net, scheduler=scheduler(), **parts)
    multi = StableDiffusionControlNetPipeline(controlnet=MultiControlNetModel([net, net]), scheduler=scheduler(),
                                              **parts)
    single.set_progress_bar_config(disable=True)
    multi.set_progress_bar_config(disable=True)
    common = dict(num_inference_steps=steps, guidance_scale=CFG, output_type="pil")

    def diffusers(pipe, image, scale):
        return lambda: pipe(PROMPT, image=image, controlnet_conditioning_scale=scale,
                            generator=torch.Generator().manual_seed(0), **common).images[0]

    return {
        "labkit_plain": lambda: lab.txt2img(PROMPT, steps=steps, cfg=CFG, seed=0),
        "labkit_one_unit": lambda: lab.txt2img(PROMPT, steps=steps, cfg=CFG, seed=0, control=one),
        "labkit_two_units": lambda: lab.txt2img(PROMPT, steps=steps, cfg=CFG, seed=0, control=two),
        "diffusers_one": diffusers(single, maps[0], 1.0),
        "diffusers_two": diffusers(multi, maps, [1.0, 0.5]),
    }


def measure(work: dict) -> dict:
    import torch

    import labkit

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    lab = labkit.open("toy")
    lab.limits = None
    calls = runs(lab, work["steps"])
    for _ in range(work["warmups"]):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    for _ in range(work["repeats"]):  # interleaved: a slow moment of the machine hits every variant alike
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    steps = work["steps"]
    return {
        "seconds": {name: round(s, 4) for name, s in median.items()},
        "ms_per_step": {name: round(1000 * s / steps, 2) for name, s in median.items()},
        "one_unit_over_plain": round(median["labkit_one_unit"] / median["labkit_plain"], 3),
        "two_units_over_plain": round(median["labkit_two_units"] / median["labkit_plain"], 3),
        "labkit_over_diffusers_one": round(median["labkit_one_unit"] / median["diffusers_one"], 3),
        "labkit_over_diffusers_two": round(median["labkit_two_units"] / median["diffusers_two"], 3),
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
              "torch": torch.__version__, "diffusers": diffusers.__version__, "model": "toy + toy-controlnet",
              "steps": work["steps"], "repeats": work["repeats"], **measure(work)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "controlnet.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {name} | {result['seconds'][name]:.3f} | {result['ms_per_step'][name]:.1f} |"
                     for name in result["seconds"])
    update_section(args.out / "results.md", "controlnet", f"""## controlnet (benchmarks/controlnet.py)
{result['when']}, {result['machine']}, torch {result['torch']}, diffusers {result['diffusers']}; {result['model']},
64 px, {work['steps']} steps, CFG {CFG}, median of {work['repeats']} interleaved repeats (whole calls: text encoding,
control maps, denoising, VAE decode).

| run | seconds | ms per step |
|---|---|---|
{rows}

One unit costs {result['one_unit_over_plain']}x the plain model, two units {result['two_units_over_plain']}x; labkit's
hook against diffusers' ControlNet pipeline on the same work: {result['labkit_over_diffusers_one']}x (one unit),
{result['labkit_over_diffusers_two']}x (two units).
""")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
