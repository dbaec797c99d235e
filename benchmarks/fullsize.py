"""Full-size SD 1.5 and SDXL on this machine: open time, resident memory alone, with a rank-32 LoRA and during an
export, LoRA toggles, and seconds per step at 512 and 1024 px in float32 and bfloat16. Run by hand (never in CI):
it builds random full-size single files (fp16, the original LDM/SGM layout: the layout is checked against
kohya sd-scripts' writer by tests/test_kohya_layout.py) and a random rank-32 kohya LoRA on every Linear layer of the
UNet's transformers and of the text encoders, then measures each part in a fresh process (so one measurement's
peak is not another's). Memory is Linux's VmRSS / VmHWM (the peak is reset before each measured part through
/proc/self/clear_refs). Writes benchmarks/results.md (section "fullsize") and benchmarks/fullsize.json.

    .venv/bin/python benchmarks/fullsize.py [--families sd1 sdxl] [--sizes 512 1024] [--dtypes float32 bfloat16]
        [--steps 2] [--max-run-s 900] [--work /tmp/labkit-fullsize] [--device cpu]
    .venv/bin/python benchmarks/fullsize.py --device cuda --dtypes float16 --sizes 1024 --steps 30   # a GPU
    .venv/bin/python benchmarks/fullsize.py --tiny --out /tmp/bench     # the same code on the embedded sizes

Targets (issue 17): peak with a rank-32 LoRA <= 1.1x the model alone; a LoRA toggle <= 1 s on the CPU for SDXL;
an export's peak <= the model + its largest tensor.
"""

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from core import add_run_args, sizes, update_section

FULL = {"families": ["sd1", "sdxl"], "sizes": [512, 1024], "dtypes": ["float32", "bfloat16"], "steps": 2, "rank": 32,
        "max_run_s": 900.0}
TINY = {"families": ["toy", "toy-xl"], "sizes": [64], "dtypes": ["float32"], "steps": 2, "rank": 4,
        "max_run_s": 900.0}
PARTS = ("open", "lora", "export", "decode", "steps")
DECODE_SIZE = {"sd1": 2048, "sdxl": 2048}  # a big picture's decode, planned to fit (tiny: the embedded sizes)
TEXT_PREFIXES = {"text_encoder": ("lora_te_", "lora_te1_"), "text_encoder_2": ("lora_te2_", "lora_te2_")}


# ---- measuring in this process ----------------------------------------------------------------------------
def status(field: str) -> int:
    """A /proc/self/status size (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def settle() -> int:
    """Resident bytes once freed memory is given back (gc, glibc's malloc_trim), with the peak reset to it."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
    return status("VmRSS")


def gib(n) -> float:
    return round(n / 2**30, 3)


# ---- the parts, each run in a child process -----------------------------------------------------------------
def build(family: str, work: Path, rank: int) -> dict:
    """A random fp16 single file of `family` and a random rank-`rank` kohya LoRA for it."""
    import torch
    from safetensors.torch import save_file

    from labkit.export import save_single_file
    from labkit.families import family as family_record
    from labkit.toy.build import fresh_components

    start, work = time.perf_counter(), Path(work)
    components = fresh_components(family, seed=0)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if components.get(name) is not None:
            components[name].half()
    path = save_single_file(components, family_record(family).checkpoint, work / f"{family}.safetensors",
                            overwrite=True)
    g, lora = torch.Generator().manual_seed(1), {}
    xl = family_record(family).layout != "sd"
    for component in ("unet", "text_encoder", "text_encoder_2"):
        model = components.get(component)
        if model is None:
            continue
        prefix = "lora_unet_" if component == "unet" else TEXT_PREFIXES[component][xl]
        for name, module in model.named_modules():
            inside = "transformer_blocks" in name or "proj_" in name if component == "unet" else "layers." in name
            if isinstance(module, torch.nn.Linear) and inside:
                key = prefix + ("" if component == "unet" else "text_model_") + \
                    name.removeprefix("text_model.").replace(".", "_")
                lora[key + ".lora_down.weight"] = (torch.randn(rank, module.in_features, generator=g) * 0.02).half()
                lora[key + ".lora_up.weight"] = (torch.randn(module.out_features, rank, generator=g) * 0.02).half()
                lora[key + ".alpha"] = torch.tensor(float(rank))
    lora_path = work / f"{family}-lora{rank}.safetensors"
    save_file(lora, str(lora_path))
    return {"file_gb": gib(path.stat().st_size), "lora_mb": round(lora_path.stat().st_size / 2**20, 1),
            "build_s": round(time.perf_counter() - start, 1)}


def open_model(path, dtype, device):
    import labkit

    start = time.perf_counter()
    lab = labkit.open(path, dtype=dtype, device=device)
    return lab, time.perf_counter() - start


def checksum(lab) -> int:
    """An exact fingerprint of every UNet and text-encoder weight (integer sums of their bit patterns)."""
    import torch

    total = 0
    for name in ("unet", "text_encoder", "text_encoder_2"):
        model = lab.components.get(name)
        for t in (model.parameters() if model is not None else ()):
            bits = t.detach().view(torch.int32 if t.element_size() == 4 else torch.int16)
            total += int(bits.sum(dtype=torch.int64))
    return total


def part_open(path, dtype, device) -> dict:
    _, seconds = open_model(path, dtype, device)
    peak = status("VmHWM")
    return {"open_s": round(seconds, 1), "load_peak_gb": gib(peak), "model_gb": gib(settle())}


def part_lora(path, lora, dtype, device) -> dict:
    lab, _ = open_model(path, dtype, device)
    alone, before = settle(), checksum(lab)
    start = time.perf_counter()
    lab.loras.load(lora)
    lab.loras.apply()
    fold_s = time.perf_counter() - start
    peak, held = status("VmHWM"), status("VmRSS")
    copies, from_file = lab.loras.backups, lab.loras.from_file
    name, offs, ons = Path(lora).stem, [], []
    for _ in range(3):
        start = time.perf_counter()
        lab.loras.disable(name)
        lab.loras.apply()
        offs.append(time.perf_counter() - start)
        start = time.perf_counter()
        lab.loras.enable(name)
        lab.loras.apply()
        ons.append(time.perf_counter() - start)
    lab.loras.unfuse()
    return {"alone_gb": gib(alone), "lora_peak_gb": gib(peak), "lora_held_gb": gib(held),
            "peak_ratio": round(peak / alone, 3), "first_fold_s": round(fold_s, 2),
            "toggle_off_s": round(statistics.median(offs), 2), "toggle_on_s": round(statistics.median(ons), 2),
            "copies": copies, "from_file": from_file, "restored_exactly": checksum(lab) == before}


def part_export(path, dtype, device, work) -> dict:
    import torch
    from safetensors import safe_open

    lab, _ = open_model(path, dtype, device)
    alone = settle()
    largest = max(t.numel() * t.element_size() for m in lab.components.values() if hasattr(m, "parameters")
                  for t in m.parameters())
    out = Path(work) / "exported.safetensors"
    start = time.perf_counter()
    lab.save_single_file(out, overwrite=True)
    seconds, peak = time.perf_counter() - start, status("VmHWM")
    same = True
    with safe_open(str(path), "pt") as a, safe_open(str(out), "pt") as b:
        same = set(a.keys()) == set(b.keys()) and all(
            torch.equal(a.get_tensor(k).to(getattr(torch, dtype)), b.get_tensor(k)) for k in a.keys())
    out.unlink()
    return {"export_s": round(seconds, 1), "export_peak_gb": gib(peak), "export_over_model_gb": gib(peak - alone),
            "largest_tensor_gb": gib(largest), "same_weights": same}


def part_steps(path, dtype, device, size, steps) -> dict:
    lab, _ = open_model(path, dtype, device)
    alone = settle()
    stamps, peaks = [], []

    def on_step(*args, **kwargs):
        stamps.append(time.perf_counter())
        peaks.append(status("VmHWM"))  # the peak so far: the UNet's, before the VAE decodes

    r = lab.txt2img("a photo of a cat", steps=steps, sampler="Euler", seed=1, width=size, height=size,
                    on_step=on_step)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])] or [r.timings["denoise"] / steps]
    return {"s_per_step": round(statistics.median(gaps), 2), "decode_s": round(r.timings["decode"], 1),
            "total_s": round(r.timings["total"], 1), "denoise_peak_gb": gib(peaks[-1]),
            "run_peak_gb": gib(status("VmHWM")), "alone_gb": gib(alone), "notes": r.notes}


def part_decode(path, dtype, device, size) -> dict:
    """A size x size VAE decode beside the whole model, planned by labkit to fit this machine."""
    import torch

    from labkit.limits import decode_plan

    lab, _ = open_model(path, dtype, device)
    alone = settle()
    plan, need = decode_plan(lab, size, size, 1)
    latents = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    picture = lab.decode(latents)[0]
    return {"size": size, "plan": plan, "planned_gb": gib(need), "decode_s": round(time.perf_counter() - start, 1),
            "decode_peak_gb": gib(status("VmHWM")), "alone_gb": gib(alone), "picture": list(picture.size)}


def child(spec: dict) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    part, args = spec.pop("part"), spec
    parts = {"build": build, "open": part_open, "lora": part_lora, "export": part_export, "steps": part_steps,
             "decode": part_decode}
    return parts[part](**args)


# ---- the parent: one child per part -----------------------------------------------------------------------------
def run(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def estimated_seconds(family, dtype, size, steps) -> float:
    """What labkit's own estimate says a run takes (to skip runs over --max-run-s)."""
    from types import SimpleNamespace

    from labkit import Params
    from labkit.limits import estimate

    lab = SimpleNamespace(family=family, dtype=dtype, device="cpu", weight_bytes=0, offload=None, limits=None,
                          vae_scale=8, components={})
    return estimate(lab, Params(width=size, height=size, steps=steps, sampler="Euler")).seconds


def measure(family: str, work: Path, w: dict, device: str, parts, row: dict) -> dict:
    """`row` (the family's earlier results, or {}) with `parts` of every dtype measured again."""
    row = {**row, "family": family, "device": device,
           "build": run({"part": "build", "family": family, "work": str(work), "rank": w["rank"]})}
    path, lora = str(work / f"{family}.safetensors"), str(work / f"{family}-lora{w['rank']}.safetensors")
    specs = {"open": {}, "lora": {"lora": lora}, "export": {"work": str(work)},
             "decode": {"size": DECODE_SIZE.get(family, 128)}}
    for dtype in w["dtypes"]:
        row[dtype] = {**row.get(dtype, {})}
        for part in (p for p in PARTS[:-1] if p in parts):
            row[dtype][part] = run({"part": part, "path": path, "dtype": dtype, "device": device, **specs[part]})
        if "steps" not in parts:
            print(json.dumps({family: {dtype: row[dtype]}}), flush=True)
            continue
        row[dtype]["steps"] = {}
        for size in w["sizes"]:
            guess = estimated_seconds(family, dtype, size, w["steps"])
            row[dtype]["steps"][str(size)] = (
                {"skipped": f"estimated {guess:.0f} s > --max-run-s {w['max_run_s']:.0f}"} if guess > w["max_run_s"]
                else run({"part": "steps", "path": path, "dtype": dtype, "device": device, "size": size,
                          "steps": w["steps"]}))
        print(json.dumps({family: {dtype: row[dtype]}}), flush=True)
    Path(path).unlink(missing_ok=True)
    Path(lora).unlink(missing_ok=True)
    return row


def write(results: dict, out: Path) -> None:
    (out / "fullsize.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["## fullsize (benchmarks/fullsize.py)", "",
             f"{results['when']} · {results['machine']} · torch {results['torch']} · random weights, fp16 files, "
             f"a rank-{results['rank']} kohya LoRA on every transformer and text-encoder Linear", "",
             "| model | dtype | open s | load peak GiB | model GiB | + LoRA peak GiB (ratio, target ≤ 1.1) | copies / "
             "from file | toggle off / on s | restored | export peak GiB (over model; largest tensor) | "
             "s/step per size | decode s | peak GiB denoising / decoding |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        for dtype in results["dtypes"]:
            r = row.get(dtype, {})
            o, lo, ex = r.get("open", {}), r.get("lora", {}), r.get("export", {})
            steps = " / ".join(f"{size}: {s.get('s_per_step', s.get('skipped', s.get('error')))}"
                               for size, s in r.get("steps", {}).items())
            decode = " / ".join(f"{size}: {s.get('decode_s', '-')}" for size, s in r.get("steps", {}).items())
            peaks = " / ".join(f"{size}: {s.get('denoise_peak_gb', '-')} / {s.get('run_peak_gb', '-')}"
                               for size, s in r.get("steps", {}).items())
            lines.append(
                f"| {row['family']} | {dtype} | {o.get('open_s', o.get('error'))} | {o.get('load_peak_gb')} | "
                f"{lo.get('alone_gb', lo.get('error'))} | {lo.get('lora_peak_gb')} (**{lo.get('peak_ratio')}**) | "
                f"{lo.get('copies')} / {lo.get('from_file')} | **{lo.get('toggle_off_s')} / {lo.get('toggle_on_s')}** |"
                f" {lo.get('restored_exactly')} | {ex.get('export_peak_gb', ex.get('error'))} "
                f"({ex.get('export_over_model_gb')}; {ex.get('largest_tensor_gb')}) | {steps} | {decode} | {peaks} |")
    lines += ["", "A big picture's VAE decode beside the whole model, planned by labkit to fit this machine "
              "(`limits.decode_plan`):", "", "| model | dtype | size | plan | planned GiB | decode s | peak GiB "
              "(model alone) |", "|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        for dtype in results["dtypes"]:
            d = row.get(dtype, {}).get("decode")
            if d:
                lines.append(f"| {row['family']} | {dtype} | {d.get('size', d.get('error'))} | {d.get('plan')} | "
                             f"{d.get('planned_gb')} | {d.get('decode_s')} | {d.get('decode_peak_gb')} "
                             f"({d.get('alone_gb')}) |")
    lines += ["", "Offload (`offload='model'|'sequential'`) needs a GPU; on a CPU labkit explains that there is "
              "nothing to offload. Steps are medians of the gaps between step callbacks (Euler, CFG 7). Memory "
              "includes the Python process itself (about 0.5 GiB with torch and diffusers loaded)."]
    update_section(out / "results.md", "fullsize", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--families", nargs="+")
    parser.add_argument("--sizes", nargs="+", type=int)
    parser.add_argument("--dtypes", nargs="+")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--rank", type=int)
    parser.add_argument("--max-run-s", type=float, dest="max_run_s")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("/tmp/labkit-fullsize"))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="measure only these again, keeping the other results in fullsize.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    w = sizes(args, FULL, TINY)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    earlier = args.out / "fullsize.json"
    keep = set(args.parts) != set(PARTS) and earlier.exists()
    before = json.loads(earlier.read_text()) if keep else {"rows": [], "dtypes": []}
    old = {row["family"]: row for row in before["rows"]}
    dtypes = list(dict.fromkeys(before["dtypes"] + w["dtypes"]))  # the table shows what was kept too
    results = {"when": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "torch": torch.__version__, "rank": w["rank"], "dtypes": dtypes, "sizes": w["sizes"],
               "steps": w["steps"], "rows": [row for family, row in old.items() if family not in w["families"]]}
    for family in w["families"]:  # written after each family: a long run stopped half-way keeps what it measured
        results["rows"].append(measure(family, args.work, w, args.device, args.parts, old.get(family, {})))
        write(results, args.out)


if __name__ == "__main__":
    main()
