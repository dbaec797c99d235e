"""labkit vs a plain diffusers pipeline call on the same components, scheduler, noise and prompt, in one run;
plus `import labkit` time. Writes benchmarks/results.md (section "core") and benchmarks/core.json.

    .venv/bin/python benchmarks/core.py [--repeats 15] [--tiny] [--out DIR]

Every benchmark takes --tiny (the same code path on the smallest work, in seconds: what tests/benchmarks runs, so
the scripts cannot rot) and --out (the folder for its results files; default benchmarks/, the committed ones).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
PROMPT = "a red circle on a white background"
FULL = {"repeats": 15, "warmups": 3, "steps": 20, "families": ("toy", "toy-xl"), "imports": 7}
TINY = {"repeats": 1, "warmups": 1, "steps": 2, "families": ("toy",), "imports": 1}


def lab_for(family: str):
    """The trained embedded model when shipped, else the same architecture with random weights."""
    import labkit
    from labkit.lab import Lab
    from labkit.toy.build import fresh_components

    name = {"toy": "toy", "toy-xl": "toy-xl"}[family]
    if name in labkit.models():
        return labkit.open(name), "trained"
    return Lab(fresh_components(family), family, name=f"random-{family}"), "random weights"


def plain_call(lab, steps: int, cfg: float, seed: int, output_type: str = "pil"):
    """What a diffusers user writes for the same work: the stock pipeline, called with the scheduler labkit runs
    (Euler on A1111's noise levels, `lab.scheduler`) and the same starting latents passed in."""
    from labkit.noise import initial_noise
    from labkit.sampling.start import first_latents, pipeline_latents

    pipe = lab.pipe
    p = lab.params(sampler="Euler", steps=steps, cfg=cfg, seed=seed)
    pipe.scheduler = lab.scheduler(p)
    start = first_latents(pipe.scheduler, p, initial_noise(seed, 1, (4, 8, 8), "a1111-cpu"))
    latents = pipeline_latents(pipe.scheduler, start)
    return pipe(PROMPT, num_inference_steps=steps, guidance_scale=cfg, latents=latents,
                output_type=output_type).images[0]


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def compare(family: str, repeats: int, steps: int = 20, cfg: float = 5.0, warmups: int = 3) -> dict:
    lab, weights = lab_for(family)
    run_lab = lambda: lab.txt2img(PROMPT, steps=steps, cfg=cfg, sampler="Euler", seed=1)  # noqa: E731
    run_plain = lambda: plain_call(lab, steps, cfg, 1)  # noqa: E731
    for _ in range(warmups):  # warm up both paths
        run_lab(), run_plain()
    lab_times, plain_times = [], []
    for _ in range(repeats):  # interleaved so drifts in machine load hit both alike
        lab_times += timed(run_lab, 1)
        plain_times += timed(run_plain, 1)
    # the same work: the same final latents (the pixels differ by rounding: labkit truncates to 8 bits as A1111
    # and ComfyUI do, diffusers rounds)
    same = bool((run_lab().latents[0] == plain_call(lab, steps, cfg, 1, output_type="latent").float().cpu()).all())
    lab_med, plain_med = statistics.median(lab_times), statistics.median(plain_times)
    return {"family": family, "weights": weights, "steps": steps, "cfg": cfg, "repeats": repeats,
            "labkit_s": round(lab_med, 4), "diffusers_s": round(plain_med, 4), "ratio": round(lab_med / plain_med, 3),
            "best_ratio": round(min(lab_times) / min(plain_times), 3), "same_latents": same}


def import_time(repeats: int = 7) -> float:
    code = "import time; t = time.perf_counter(); import labkit; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(repeats)]
    return round(statistics.median(runs), 4)


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "core.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["## core (benchmarks/core.py)", "",
             f"{results['when']} · {results['machine']} · torch {results['torch']} · diffusers {results['diffusers']}",
             "", "| model | weights | steps | labkit s | plain diffusers s | ratio (target ≤ 1.03) | fastest / fastest "
             "| same latents |", "|---|---|---|---|---|---|---|---|"]
    for r in results["generation"]:
        lines.append(f"| {r['family']} | {r['weights']} | {r['steps']} | {r['labkit_s']} | {r['diffusers_s']} | "
                     f"**{r['ratio']}** | {r['best_ratio']} | {r['same_latents']} |")
    lines += ["", f"`import labkit`: **{results['import_s']} s** (target ≤ 0.3 s), "
              f"median of {results['import_repeats']} fresh interpreters.", "",
              "Times are medians of interleaved runs; the machine's other tenants move them by several per cent from "
              "run to run, so the ratio of the fastest runs is given too.", ""]
    update_section(out / "results.md", "core", "\n".join(lines))


def update_section(path: Path, name: str, text: str) -> None:
    """Replace the `## name` section of a markdown results file (other sections are kept)."""
    sections = {}
    if path.exists():
        for chunk in path.read_text().split("\n## ")[1:]:
            sections[chunk.split(" ", 1)[0].split("\n", 1)[0]] = "## " + chunk.rstrip() + "\n"
    sections[name] = text.rstrip() + "\n"
    header = "# Benchmark results\n\nEach section is written by the script it names; rerun it to refresh.\n\n"
    path.write_text(header + "\n".join(sections[k] for k in sorted(sections)))


def add_run_args(parser) -> None:
    """--tiny and --out, which every benchmark takes."""
    parser.add_argument("--tiny", action="store_true",
                        help="the same code path on the smallest work, in seconds (what tests/benchmarks runs)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the results files (default: benchmarks/)")


def sizes(args, full: dict, tiny: dict) -> dict:
    """The work to do: `tiny` with --tiny, else `full`; an option given on the command line (--repeats, ...) with
    an entry's name overrides it."""
    work = dict(tiny if args.tiny else full)
    work.update({key: value for key, value in vars(args).items() if key in work and value is not None})
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    parser.add_argument("--repeats", type=int, help=f"default {FULL['repeats']} ({TINY['repeats']} with --tiny)")
    args = parser.parse_args()
    work = sizes(args, FULL, TINY)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers
    import torch

    results = {"when": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "torch": torch.__version__, "diffusers": diffusers.__version__,
               "generation": [compare(family, work["repeats"], work["steps"], warmups=work["warmups"])
                              for family in work["families"]],
               "import_s": import_time(work["imports"]), "import_repeats": work["imports"]}
    write(results, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
