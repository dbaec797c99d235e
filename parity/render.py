"""Render every parity case with the tools' own sampler code and write tests/fixtures/parity/ (scratch venv).

    /work/parity-venv/bin/python parity/render.py --sources /work/parity-src --work /work/parity-work

Needs: parity/setup_env.sh (the venv and the verified source trees, SOURCES.json) and parity/export_inputs.py
(inputs in tests/fixtures/parity/, UNet weights in --work). Each tool renders in its own process (`--tool a1111`,
`--tool comfy`): A1111 patches torchsde and k_diffusion module-wide, which must not leak into ComfyUI's run.
Each worker also runs its self-checks (selfcheck.py); a failed check stops the render before fixtures change.
Writes {model}_{mode}.npz (float32 final latents in the UNet's scaled space, one key per case) and manifest.json.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
sys.path.insert(0, str(HERE))
import cases as C


def inputs(model):
    d = np.load(FIXTURES / ("toy_inputs.npz" if model == "toy" else "sd15_inputs.npz"))
    out = {k: d[k] for k in d.files}
    if model == "sd15":  # random conds, rebuilt from their seed
        from unets import sd15_conds

        cond, uncond, digest = sd15_conds()
        if digest != json.loads((FIXTURES / "inputs.json").read_text())["sd15"]["cond_sha256"]:
            raise SystemExit("sd15: the seeded conds differ from the ones export_inputs.py made")
        out.update(cond=cond.numpy(), uncond=uncond.numpy())
    return out


def floats(t):
    """float32 values as the shortest decimals that give the same float32 back."""
    return [float(repr(np.float32(v)).removeprefix("np.float32(").removesuffix(")"))
            for v in np.asarray(t, dtype=np.float32).reshape(-1)]


def evaluations(res):
    """UNet timesteps per model evaluation (cond + uncond = one evaluation, in one call of batch 2 or two of 1)."""
    per_item = [t for t, b in res["calls"] for _ in range(b)]
    return per_item[::2]


def start_factor(start, noise):
    """k with start = k * noise (txt2img), and the residual share that k does not explain."""
    s, n = np.asarray(start, np.float64).ravel(), np.asarray(noise, np.float64).ravel()
    k = float(s @ n / (n @ n))
    return k, float(np.linalg.norm(s - k * n) / np.linalg.norm(s))


# ---- workers ----------------------------------------------------------------------------------------------------
def work_a1111(args, todo, info):
    import torch
    from tool_a1111 import A1111
    from unets import Recorder, load_unet

    src = args.sources
    tool = A1111(src / "a1111", src / "k-diffusion")
    out, records = {}, {}
    for model in ("toy", "sd15"):
        mine = [c for c in todo if c.model == model]
        if not mine:
            continue
        inp = inputs(model)
        rec = Recorder(load_unet(model, args.work, info[model]["unet_fingerprint"]))
        tool.set_model(rec)
        shape = tuple(inp["noise"].shape[1:])
        for c in mine:
            r = tool.run(c.sampler_tool, c.schedule_tool or "Automatic", c.steps, torch.tensor(inp["cond"]),
                         torch.tensor(inp["uncond"]), seed=C.SEED, shape=shape, sgm=c.tool == "a1111-sgm",
                         init_latents=inp["init_latents"] if c.mode == "img2img" else None, strength=c.strength)
            out[f"{c.file}::{c.key}"] = r["latent"].numpy()
            records[(c.file, c.key)] = describe(c, r, inp)
    return tool, out, records


def work_comfy(args, todo, info):
    import torch
    from tool_comfy import Comfy
    from unets import Recorder, load_unet

    tool = Comfy(args.sources / "comfyui")
    out, records = {}, {}
    for model in ("toy", "sd15"):
        mine = [c for c in todo if c.model == model]
        if not mine:
            continue
        inp = inputs(model)
        rec = Recorder(load_unet(model, args.work, info[model]["unet_fingerprint"]))
        patcher = tool.wrapped(rec)
        for c in mine:
            r = tool.run(patcher, rec, c.sampler_tool, c.schedule_tool, c.steps, torch.tensor(inp["cond"]),
                         torch.tensor(inp["uncond"]), seed=C.SEED, size=C.SIZE,
                         init_latents=inp["init_latents"] if c.mode == "img2img" else None,
                         denoise=c.strength or 1.0)
            out[f"{c.file}::{c.key}"] = r["latent"].numpy()
            records[(c.file, c.key)] = describe(c, r, inp)
    return tool, out, records


def describe(c, r, inp):
    """The manifest entry of one rendered case."""
    d = c.record()
    noise_equal = bool(np.array_equal(r["noise"].numpy().reshape(inp["noise"].shape), inp["noise"]))
    d.update(unet_timesteps=floats(evaluations(r)), unet_evaluations=len(evaluations(r)),
             tool_noise_equals_labkit_noise=noise_equal)
    if "sigmas" in r:
        d["sigmas"] = floats(r["sigmas"])
    if "timesteps" in r:
        d["timesteps"] = [int(v) for v in r["timesteps"]]
    if "infotext" in r:
        d["infotext_extra"] = {k: (v if isinstance(v, (str, int, float, bool)) else str(v))
                               for k, v in r["infotext"].items()}
    if c.mode == "txt2img" and "start" in r:
        k, resid = start_factor(r["start"], inp["noise"])
        d["start_factor"], d["start_residual"] = float(f"{k:.9g}"), float(f"{resid:.3g}")
    if c.stochastic:
        d["noise_stream"] = ("A1111 RNG source CPU: Euler a draws from the image's ImageRNG generator after the "
                             "initial noise (TorchHijack); DPM++ 2M SDE: BrownianTreeNoiseSampler(seed=[42]) with "
                             "torchsde's randn replaced by rng.randn_local" if c.tool.startswith("a1111") else
                             "ComfyUI: Euler a uses default_noise_sampler (torch generator seeded with the KSampler "
                             "seed); DPM++ 2M SDE: BrownianTreeNoiseSampler(seed=42, cpu=True)")
    return d


def worker(args):
    import torch

    torch.set_num_threads(1)
    info = json.loads((FIXTURES / "inputs.json").read_text())
    todo = [c for c in C.cases() if (c.tool == "comfy") == (args.tool == "comfy")
            and (args.model == "all" or c.model == args.model)]
    t0 = time.perf_counter()
    tool, out, records = (work_a1111 if args.tool == "a1111" else work_comfy)(args, todo, info)
    seconds = time.perf_counter() - t0
    import selfcheck

    checks = (selfcheck.check_a1111 if args.tool == "a1111" else selfcheck.check_comfy)(tool, out, records, args, info)
    import diffusers
    import scipy
    import torchsde

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__, "torchsde": torchsde.__version__, "diffusers": diffusers.__version__}
    if args.tool == "comfy":
        import transformers

        versions["transformers"] = transformers.__version__
    part = args.work / "parts"
    part.mkdir(parents=True, exist_ok=True)
    np.savez(part / f"{args.tool}.npz", **out)
    (part / f"{args.tool}.json").write_text(json.dumps(
        {"records": list(records.values()), "checks": checks, "seconds": round(seconds, 1), "versions": versions},
        indent=1))
    failed = [ch for ch in checks if not ch["ok"]]
    for ch in checks:
        print(("ok   " if ch["ok"] else "FAIL ") + ch["name"] + ": " + ch["detail"])
    print(f"{args.tool}: {len(records)} cases in {seconds:.0f} s")
    return 1 if failed else 0


# ---- the parent: run the workers, merge -------------------------------------------------------------------------
def machine():
    cpu = ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "threads_used": 1}


def dumps(manifest):
    """Indented JSON with one line per case (keeps the file small and diffable)."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "cases"}, indent=1)
    rows = ",\n".join("  " + json.dumps(r, separators=(", ", ": ")) for r in manifest["cases"])
    return head[:-2] + ',\n "cases": [\n' + rows + "\n ]\n}\n"


def merge(args, parts):
    files, records, checks = {}, [], {}
    for tool, (arrays, meta) in parts.items():
        for k in arrays.files:
            file, key = k.split("::")
            files.setdefault(file, {})[key] = arrays[k].astype(np.float32)
        records += meta["records"]
        checks[tool] = meta["checks"]
    import selfcheck

    checks["cross"] = selfcheck.check_cross(files, records)
    for ch in checks["cross"]:
        print(("ok   " if ch["ok"] else "FAIL ") + ch["name"] + ": " + ch["detail"])
    if not all(ch["ok"] for ch in checks["cross"]):
        sys.exit("cross-tool self-check failed; fixtures left as they were")
    order = {(c.file, c.key): i for i, c in enumerate(C.cases())}
    records.sort(key=lambda r: order[(r["file"], r["key"])])
    sources = json.loads((args.sources / "SOURCES.json").read_text())
    manifest = {
        "about": "Final latents of A1111 v1.10.1 and ComfyUI 0.8.0 (3cd7b32) samplers on labkit's inputs; see "
                 "parity/README.md. Latents are float32 (1, 4, h, w) in the UNet's scaled space.",
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
        "sources": sources, "versions": {t: m["versions"] for t, (_, m) in parts.items()},
        "seconds": {t: m["seconds"] for t, (_, m) in parts.items()},
        "inputs": json.loads((FIXTURES / "inputs.json").read_text()),
        "conventions": {
            "cfg": 7.0, "seed": C.SEED, "size": C.SIZE, "batch": 1,
            "latent": "UNet space: A1111's sampler output as is; ComfyUI's LATENT times latent_format.scale_factor "
                      "(0.18215, ComfyUI's SD15 format; img2img init passed as init_latents / 0.18215)",
            "sigmas": "the array the tool hands its sampler function (after discard-penultimate and img2img "
                      "slicing), final value included",
            "timesteps": "A1111 DDIM/PLMS/UniPC: the integer grid passed to the sampler (UniPC: its length sets "
                         "the step count)",
            "unet_timesteps": "the t the UNet received, one per model evaluation (cond and uncond together)",
            "start_factor": "txt2img: the sampler's starting x divided by the unit noise (x = k * noise)",
            "a1111_options": {"randn_source": "CPU (labkit noise 'a1111-cpu')", "sgm_noise_multiplier":
                              "off for a1111, on for a1111-sgm", "others": "A1111 defaults (shared_options.py)"},
        },
        "skipped": C.skipped(), "checks": checks, "cases": records,
    }
    text = dumps(manifest)  # built in full before anything is written
    for file, arrays in files.items():
        np.savez(FIXTURES / file, **dict(sorted(arrays.items())))
    (FIXTURES / "manifest.json").write_text(text)
    size = sum(f.stat().st_size for f in FIXTURES.iterdir())
    print(f"{len(records)} cases, fixtures {size / 1024:.0f} KiB in {FIXTURES}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=Path, default=Path("/work/parity-src"), help="setup_env.sh's source folder")
    ap.add_argument("--work", type=Path, default=Path("/work/parity-work"), help="export_inputs.py's scratch")
    ap.add_argument("--tool", choices=["all", "a1111", "comfy"], default="all")
    ap.add_argument("--model", choices=["all", "toy", "sd15"], default="all")
    ap.add_argument("--merge-only", action="store_true", help="write the fixtures from the last workers' parts")
    args = ap.parse_args()
    if args.tool != "all":
        sys.exit(worker(args))
    if args.model != "all":
        sys.exit("--model needs --tool: the fixtures are written from a full render only")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1",
           "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    (args.work / "parts").mkdir(parents=True, exist_ok=True)
    for tool in () if args.merge_only else ("a1111", "comfy"):  # one torch process at a time
        cmd = [sys.executable, __file__, "--tool", tool, "--sources", str(args.sources), "--work", str(args.work)]
        log = args.work / "parts" / f"{tool}.log"  # the tools' progress bars and warnings
        with open(log, "w") as err:
            if subprocess.run(cmd, check=False, env=env, stderr=err).returncode:
                sys.exit(f"{tool}: render or self-check failed (see {log}); fixtures left as they were")
    parts = {t: (np.load(args.work / "parts" / f"{t}.npz"), json.loads((args.work / "parts" / f"{t}.json").read_text()))
             for t in ("a1111", "comfy")}
    merge(args, parts)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
