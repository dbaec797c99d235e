"""LoRA speed: load, toggle and set_weight times, and generation with 0 / 1 / 2 folded LoRAs, with plain diffusers'
unfused PEFT adapters on the same files beside them. Writes benchmarks/results.md (section "lora") and
benchmarks/lora.json.

    .venv/bin/python benchmarks/lora.py [--repeats 7] [--families toy toy-xl] [--device cpu] [--dtype float32]
    .venv/bin/python benchmarks/lora.py --families sdxl --device cuda --dtype float16 --rank 32   # random SDXL
    .venv/bin/python benchmarks/lora.py --tiny --out /tmp/bench     # seconds: the same code on the smallest work

Targets (issue 5): generation with LoRAs <= 1.05x generation without; a toggle or weight change <= 0.2 s on SDXL.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from core import PROMPT, add_run_args, lab_for, sizes, update_section

ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")  # what a typical kohya/diffusers LoRA trains
FULL = {"repeats": 7, "families": ["toy", "toy-xl"], "rank": 8, "steps": 20}
TINY = {"repeats": 1, "families": ["toy"], "rank": 2, "steps": 2}


def make_lab(family, device, dtype):
    """The shipped embedded model, or random weights of the family's architecture (full size for sd1/sdxl)."""
    import torch

    from labkit.lab import Lab
    from labkit.toy.build import fresh_components

    if family in ("toy", "toy-xl"):
        lab, weights = lab_for(family)
    else:
        lab, weights = Lab(fresh_components(family), family, name=f"random-{family}"), "random weights"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if lab.components.get(name) is not None:
            lab.components[name].to(device, getattr(torch, dtype))
    lab.device, lab.dtype = device, dtype
    return lab, weights


def write_lora(lab, path, rank, seed):
    """A random attention LoRA for `lab` in kohya format (SGM names on SDXL), rank `rank`, alpha rank / 2."""
    import torch

    from labkit.lora.training import kohya_metadata, write_kohya

    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in lab.components["unet"].named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(ATTENTION):
            scale = module.in_features ** -0.5
            state[f"{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=g) * scale
            state[f"{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=g) * 0.05
    meta = kohya_metadata(lab, path, ["benchmark"], rank, rank / 2, seed=seed, n_images=1)
    return write_kohya(lab, {"unet": state}, rank / 2, path, meta)


def median_time(fn, repeats) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sync(lab):
    import torch

    if lab.device.startswith("cuda"):
        torch.cuda.synchronize()


def generate(lab, loras, steps):
    """One txt2img as the Lab runs it: apply() (a no-op when nothing changed), then the pipeline."""
    loras.apply()
    r = lab.txt2img(PROMPT, steps=steps, cfg=5.0, sampler="Euler", seed=1)
    sync(lab)
    return r


def generation_times(lab, loras, steps, repeats) -> dict:
    """{n: {image_s, step_ms}} with LoRAs a, b off (0), a on (1), both on (2), interleaved round by round so that
    drifts in machine load hit every setting alike. The refold between settings is not part of the timings."""
    settings = {0: (), 1: ("a",), 2: ("a", "b")}
    runs = {n: [] for n in settings}
    for round_ in range(repeats + 1):  # round 0 warms up
        for n, names in settings.items():
            for name in ("a", "b"):
                (loras.enable if name in names else loras.disable)(name)
            result = generate(lab, loras, steps)
            if round_:
                runs[n].append(result)
    return {n: {"image_s": round(statistics.median(r.timings["total"] for r in rs), 4),
                "step_ms": round(1000 * statistics.median(r.timings["denoise"] for r in rs) / steps, 3)}
            for n, rs in runs.items()}


def manager_times(lab, loras, files, repeats) -> dict:
    """Load (header check, tensors, layer matching), first fold, toggle off+on, and a weight change, each with the
    apply() that brings the weights in line."""
    def load_remove():
        loras.load(files[0], name="timing")
        loras.remove("timing")

    def timed_apply(change):
        def run():
            change()
            loras.apply()
            sync(lab)
        return median_time(run, repeats)

    out = {"load_s": median_time(load_remove, repeats)}
    loras.apply()  # undo the timing loads
    loras.load(files[0], name="a")
    start = time.perf_counter()
    loras.apply()
    sync(lab)
    out["first_fold_s"] = time.perf_counter() - start
    out["toggle_s"] = timed_apply(lambda: loras.disable("a") if "a" in loras.active else loras.enable("a"))
    loras.enable("a")
    weights = iter([0.5, 1.0] * repeats)
    out["set_weight_s"] = timed_apply(lambda: loras.set_weight("a", next(weights)))
    out["noop_apply_s"] = median_time(loras.apply, repeats)
    loras.set_weight("a", 1.0)
    return {k: round(v, 7) for k, v in out.items()}


def diffusers_unfused(lab, files, steps, repeats) -> dict:
    """The same files through diffusers' load_lora_weights (PEFT adapters, not fused), for comparison."""
    pipe = lab.pipe
    out = {}
    try:
        for n in (1, 2):
            pipe.unload_lora_weights()
            for i in range(n):
                pipe.load_lora_weights(str(files[i].parent), weight_name=files[i].name, adapter_name=f"l{i}")
            pipe.set_adapters([f"l{i}" for i in range(n)], [1.0] * n)
            lab.txt2img(PROMPT, steps=steps, cfg=5.0, sampler="Euler", seed=1)  # warm up
            runs = [lab.txt2img(PROMPT, steps=steps, cfg=5.0, sampler="Euler", seed=1) for _ in range(repeats)]
            out[f"{n}_step_ms"] = round(1000 * statistics.median(r.timings["denoise"] for r in runs) / steps, 3)
    except Exception as e:  # noqa: BLE001 - a comparison that cannot run is reported, not fatal
        out["error"] = f"{type(e).__name__}: {str(e)[:160]}"
    finally:
        pipe.unload_lora_weights()
    return out


def measure(family, device, dtype, rank, steps, repeats) -> dict:
    from labkit.lora import LoraManager

    lab, weights = make_lab(family, device, dtype)
    loras = LoraManager(lab, search_paths=[])
    with tempfile.TemporaryDirectory() as folder:
        files = [write_lora(lab, Path(folder) / f"bench{i}.safetensors", rank, seed=i) for i in range(2)]
        row = {"family": family, "weights": weights, "device": device, "dtype": dtype, "rank": rank, "steps": steps,
               "file_mb": round(files[0].stat().st_size / 1e6, 2)}
        row.update(manager_times(lab, loras, files, repeats))
        loras.load(files[1], name="b")
        gen = generation_times(lab, loras, steps, repeats)
        row.update({f"gen_{n}": times for n, times in gen.items()})
        loras.unfuse()
        loras.remove("a")
        loras.remove("b")
        row["diffusers_unfused"] = diffusers_unfused(lab, files, steps, repeats)
    base = row["gen_0"]["step_ms"]
    row["ratio_1"] = round(row["gen_1"]["step_ms"] / base, 3)
    row["ratio_2"] = round(row["gen_2"]["step_ms"] / base, 3)
    return row


def merged_rows(rows: list, out: Path) -> list:
    """This run's rows, plus rows of earlier runs (in `out`) on other (family, device, dtype): a CPU run and a GPU
    run share one table."""
    path, key = out / "lora.json", lambda r: (r["family"], r["device"], r["dtype"])
    old = json.loads(path.read_text()).get("rows", []) if path.exists() else []
    fresh = {key(r) for r in rows}
    return [r for r in old if key(r) not in fresh] + rows


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "lora.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["## lora (benchmarks/lora.py)", "",
             f"torch {results['torch']} · diffusers {results['diffusers']} · median of {results['repeats']} · "
             "random attention LoRAs (to_q/k/v/out) in kohya format, folded by labkit", "",
             "| model | machine | rank | load ms | first fold ms | toggle ms | set_weight ms | no-op apply µs | "
             "step ms 0 / 1 / 2 LoRAs | ratio 1 / 2 (target ≤ 1.05) | image s 0 / 1 / 2 | "
             "diffusers unfused step ms 1 / 2 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        d = r["diffusers_unfused"]
        unfused = d.get("error", "n/a")[:60] if "1_step_ms" not in d else f"{d['1_step_ms']} / {d.get('2_step_ms')}"
        lines.append(
            f"| {r['family']} ({r['weights']}) | {r['when']} · {r['machine']} · {r['device']} {r['dtype']} | "
            f"{r['rank']} | {1e3 * r['load_s']:.2f} | {1e3 * r['first_fold_s']:.2f} | **{1e3 * r['toggle_s']:.2f}** | "
            f"**{1e3 * r['set_weight_s']:.2f}** | {1e6 * r['noop_apply_s']:.1f} | "
            f"{r['gen_0']['step_ms']} / {r['gen_1']['step_ms']} / {r['gen_2']['step_ms']} | "
            f"**{r['ratio_1']} / {r['ratio_2']}** | {r['gen_0']['image_s']} / {r['gen_1']['image_s']} / "
            f"{r['gen_2']['image_s']} | {unfused} |")
    lines += ["", "toggle / set_weight include the apply() that refolds the touched weights (the Lab calls it before "
              "each generation); a no-op apply is what every generation pays when nothing changed. Folded LoRAs run "
              "the very same UNet graph as no LoRA, so the ratios differ from 1 only by timing noise (the 2 CPU "
              "cores are shared). Full-size SDXL: run with --families sdxl --device cuda --dtype float16 --rank 32 "
              "on a GPU machine.", ""]
    update_section(out / "results.md", "lora", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    parser.add_argument("--repeats", type=int, help=f"default {FULL['repeats']} ({TINY['repeats']} with --tiny)")
    parser.add_argument("--families", nargs="+", help=f"default {' '.join(FULL['families'])} "
                                                       f"({' '.join(TINY['families'])} with --tiny)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rank", type=int, help=f"default {FULL['rank']} ({TINY['rank']} with --tiny)")
    parser.add_argument("--steps", type=int, help=f"default {FULL['steps']} ({TINY['steps']} with --tiny)")
    args = parser.parse_args()
    work = sizes(args, FULL, TINY)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers
    import torch

    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"{platform.machine()}, {os.cpu_count()} cores"
    rows = [{"when": time.strftime("%Y-%m-%d"), "machine": machine,
             **measure(f, args.device, args.dtype, work["rank"], work["steps"], work["repeats"])}
            for f in work["families"]]
    results = {"torch": torch.__version__, "diffusers": diffusers.__version__, "repeats": work["repeats"],
               "rows": merged_rows(rows, args.out)}
    write(results, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
