"""Parity with A1111 and ComfyUI: labkit's final latents against the tools' own (tests/fixtures/parity, rendered by
parity/render.py with A1111 v1.10.1's and ComfyUI 0.8.0's sampler code), for every case of the fixtures.

The error of a case is ||labkit - tool|| / ||tool(N + 1 steps) - tool(N steps)||: labkit's distance from the tool
as a share of the smallest setting change (one more step). A case matches when that is below 1 %. Writes
benchmarks/results.md (section "parity", the table docs/parity.md points to) and benchmarks/parity.json.

    .venv/bin/python benchmarks/parity.py [--tiny] [--out DIR]      # --tiny: a few cases (what the tests run)
    LABKIT_FULLSIZE_CPU=1 .venv/bin/python benchmarks/parity.py      # also the full-size SD 1.5 cases (~4.5 GB)
"""

import argparse
import json
import os
import statistics
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
TOLERANCE = 0.01  # of the distance between N and N + 1 steps
# what labkit cannot match, and why (the cases stay in the table, marked)
CANNOT = {
    ("comfy", "Euler a"): "ComfyUI draws the ancestral noise from its own sampler seed, not the picture's generator",
    ("a1111", "DPM++ 2M SDE"): "A1111 draws Brownian-tree noise (torchsde); diffusers' DPM-Solver++ SDE draws "
                               "Gaussian noise per step",
    ("a1111-sgm", "DPM++ 2M SDE"): "as without the SGM multiplier: Brownian-tree noise",
    ("comfy", "DPM++ 2M SDE"): "ComfyUI draws Brownian-tree noise; diffusers draws Gaussian noise per step",
    ("comfy", "uni_pc_bh2"): "ComfyUI's uni_pc_bh2 has no A1111 name, so no labkit sampler (labkit's UniPC is bh1)",
}
PROMPT_KEYS = ("prompt", "negative_prompt", "seed")


def manifest() -> dict:
    return json.loads((FIXTURES / "manifest.json").read_text())


def cases(model: str = "toy") -> list[dict]:
    """The fixture cases of `model` with N steps, each with its N + 1 step twin as `next`."""
    every = manifest()["cases"]
    by_key = {(c["file"], c["key"]): c for c in every if c["model"] == model}  # keys repeat across files
    found = []
    for (file, key), case in by_key.items():
        head, _, steps = key.rpartition("__")
        twin = by_key.get((file, f"{head}__{int(steps) + 1}"))
        if twin is not None:
            found.append({**case, "next": twin})
    return sorted(found, key=lambda c: (c["file"], c["key"]))


def why_not(case: dict) -> str | None:
    return CANNOT.get((case["tool"], case["sampler"])) or CANNOT.get((case["tool"], case["sampler_tool"]))


def params_of(case: dict, lab, inputs: dict):
    """The labkit settings of a case: the tool's noise mode, the SGM multiplier, the same sampler and schedule."""
    tool = case["tool"]
    return lab.params(prompt=inputs["prompt"], negative_prompt=inputs["negative_prompt"], seed=inputs["seed"],
                      steps=case["steps"], cfg=manifest()["conventions"]["cfg"], sampler=case["sampler"],
                      schedule=case["schedule"], width=64, height=64, strength=case["strength"] or 0.75,
                      noise="comfy" if tool == "comfy" else "a1111-cpu", sgm_noise_multiplier=tool == "a1111-sgm")


def run_case(lab, case: dict, picture=None):
    """labkit's final latents (numpy) for a case."""
    inputs = manifest()["inputs"]["toy"]
    p = params_of(case, lab, inputs)
    result = lab.img2img(picture, params=p) if case["mode"] == "img2img" else lab.txt2img(params=p)
    return result.latents.numpy()


def error(got, case: dict, latents: dict) -> float:
    """labkit's distance from the tool's latent as a share of the tool's N vs N + 1 step distance."""
    import numpy as np

    ref, twin = latents[case["file"]][case["key"]], latents[case["next"]["file"]][case["next"]["key"]]
    return float(np.linalg.norm(got - ref) / np.linalg.norm(twin - ref))


def fixture_latents() -> dict:
    import numpy as np

    return {path.name: dict(np.load(path)) for path in FIXTURES.glob("*_*2img.npz")}


def toy_picture():
    from labkit.toy import world

    about = manifest()["inputs"]["toy"]["picture"]
    return world.example(about["world_seed"], about["world_index"], about["size"])[0]


def measure(selected: list[dict]) -> list[dict]:
    """Run labkit on every selected toy case; one row per case."""
    import labkit

    lab, latents, picture = labkit.open("toy"), fixture_latents(), toy_picture()
    return [row(case, error(run_case(lab, case, picture), case, latents)) for case in selected]


def row(case: dict, err: float) -> dict:
    return {"key": case["key"], "mode": case["mode"], "tool": case["tool"], "sampler": case["sampler"],
            "sampler_tool": case["sampler_tool"], "schedule": case["schedule"], "steps": case["steps"],
            "error": err, "matches": err < TOLERANCE, "cannot": why_not(case)}


def measure_sd15() -> list[dict]:
    """The full-size cases: a random SD 1.5 UNet rebuilt from its seed, the fixtures' random conditioning given to
    the Lab in place of its text encoder's (the UNet and noise are what the cases test). Needs ~4.5 GB."""
    import numpy as np
    import torch

    from labkit.lab import Lab
    from labkit.toy.build import fresh_components

    about = manifest()["inputs"]["sd15"]
    lab = Lab(fresh_components("sd1", seed=about["unet_seed"]), "sd1", name="sd15-random")
    generator = torch.Generator().manual_seed(about["cond_seed"])
    cond, uncond = torch.randn(1, 77, 768, generator=generator), torch.randn(1, 77, 768, generator=generator)
    lab.encode_prompt = lambda p, batch_size=None: [{"prompt_embeds": cond, "negative_prompt_embeds": uncond}]
    latents = {"sd15_txt2img.npz": dict(np.load(FIXTURES / "sd15_txt2img.npz"))}
    rows = []
    for case in cases("sd15"):
        p = lab.params(seed=about["seed"], steps=case["steps"], cfg=manifest()["conventions"]["cfg"],
                       sampler=case["sampler"], schedule=case["schedule"], width=64, height=64,
                       noise="comfy" if case["tool"] == "comfy" else "a1111-cpu")
        rows.append(row(case, error(lab.txt2img(params=p).latents.numpy(), case, latents)))
    return rows


def table(rows: list[dict]) -> str:
    """docs/parity.md: a line per tool x sampler (worst error over its schedules), then the exceptions."""
    groups = {}
    for row in rows:
        groups.setdefault((row["mode"], row["tool"], row["sampler_tool"] or row["sampler"]), []).append(row)
    lines = ["| mode | tool | sampler (tool's name) | schedules | worst error | median | matches |", "|---|---|---|---|---|---|---|"]
    for (mode, tool, sampler), group in sorted(groups.items()):
        worst, median = max(r["error"] for r in group), statistics.median(r["error"] for r in group)
        verdict = "yes" if all(r["matches"] for r in group) else ("no: " + group[0]["cannot"] if group[0]["cannot"]
                                                                  else "NO")
        scheds = ", ".join(sorted({r["schedule"] for r in group}))
        lines.append(f"| {mode} | {tool} | {sampler} | {scheds} | {worst:.1e} | {median:.1e} | {verdict} |")
    return "\n".join(lines)


def section(rows: list[dict], full: list[dict]) -> str:
    """The "parity" section of benchmarks/results.md."""
    m = manifest()
    matched = sum(r["matches"] for r in rows if not r["cannot"])
    total = sum(1 for r in rows if not r["cannot"])
    return (f"## parity (benchmarks/parity.py)\n\n{len(rows)} cases of the embedded `toy` model against A1111 "
            f"v1.10.1 and ComfyUI 0.8.0 (tests/fixtures/parity); {matched} of the {total} cases labkit means to "
            f"match are within {TOLERANCE:.0%} of a one-step change. Error = ||labkit - tool|| / ||tool(N+1) - "
            f"tool(N)||, N = 6 steps (img2img: strength 0.5), CFG {m['conventions']['cfg']}, seed "
            f"{m['conventions']['seed']}, 64x64; the worst and median error over the schedules of each row.\n\n"
            f"{table(rows)}\n" + (f"\nThe full-size SD 1.5 layout (a random UNet rebuilt from its seed, "
                                    f"LABKIT_FULLSIZE_CPU=1): worst error {max(r['error'] for r in full):.1e} over "
                                    f"{len(full)} cases ({', '.join(sorted({r['key'] for r in full}))}).\n"
                                    if full else ""))


def main() -> None:
    from core import add_run_args, update_section

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    selected = cases()
    if args.tiny:
        selected = [c for c in selected if c["sampler"] in ("Euler", "DPM++ 2M") and c["schedule"] == "Karras"]
    rows = measure(selected)
    full = measure_sd15() if os.environ.get("LABKIT_FULLSIZE_CPU") and not args.tiny else []
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"tolerance": TOLERANCE, "rows": rows} | ({"sd15": full} if full else {})
    (args.out / "parity.json").write_text(json.dumps(results, indent=1) + "\n")
    update_section(args.out / "results.md", "parity", section(rows, full))
    bad = [r["key"] for r in rows if not r["matches"] and not r["cannot"]]
    print(f"{len(rows)} cases, {len(bad)} unexpected misses: {bad[:10]}")


if __name__ == "__main__":
    main()
