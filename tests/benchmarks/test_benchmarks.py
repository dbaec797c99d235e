"""Every benchmarks/*.py runs end to end in its tiny mode (the same code path on the smallest work, results written
into a temporary folder), so the hand-run benchmarks cannot rot unnoticed. A new script needs a `--tiny` mode and
an entry in EXPECTED: the results files it writes and their structure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HELPERS = set()  # benchmarks/*.py that are shared modules, not benchmarks (none: core.py is both, with a tiny mode)
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name not in HELPERS)

# The structure of a results JSON file: a dict holds exactly these keys, each checked in turn; a one-element list
# is a non-empty list whose items all match it; ANY matches anything; another value must be equal.
ANY = object()
AGREEMENT = dict.fromkeys(["eye sees an outline", "eye sees an outline or maybe", "eye shape right",
                           "judge says outlined", "judge shape right", "shape verdicts agree", "style verdicts agree"],
                          ANY)
GEN_TIMES = {"image_s": ANY, "step_ms": ANY}
MEMORY = {"after_warmup": ANY, "end": ANY, "max": ANY, "growth_pct": ANY, "slope_mb_per_cycle": ANY}
RUNS = ("labkit_plain", "labkit_one_unit", "labkit_two_units", "diffusers_one", "diffusers_two")  # controlnet.py
HIRES_RUNS = ("single_64", "hires_latent_128", "hires_lanczos_128", "hires_toy_upscaler_128", "direct_128")
UPSCALES = ("toy_upscaler_whole", "toy_upscaler_tiles_128", "lanczos")  # hires.py
EXPECTED = {  # script: ({results file: structure}, the results.md section it writes or None)
    "core.py": ({"core.json": {
        "when": ANY, "machine": ANY, "torch": ANY, "diffusers": ANY, "import_s": ANY, "import_repeats": 1,
        "generation": [{"family": "toy", "weights": ANY, "steps": 2, "cfg": ANY, "repeats": 1, "labkit_s": ANY,
                        "diffusers_s": ANY, "ratio": ANY, "best_ratio": ANY, "same_latents": True}]}}, "## core (benchmarks/core.py)"),
    "lora.py": ({"lora.json": {
        "torch": ANY, "diffusers": ANY, "repeats": 1,
        "rows": [{"when": ANY, "machine": ANY, "family": "toy", "weights": ANY, "device": "cpu", "dtype": "float32",
                  "rank": 2, "steps": 2, "file_mb": ANY, "load_s": ANY, "first_fold_s": ANY, "toggle_s": ANY,
                  "set_weight_s": ANY, "noop_apply_s": ANY, "gen_0": GEN_TIMES, "gen_1": GEN_TIMES, "gen_2": GEN_TIMES,
                  "diffusers_unfused": {"1_step_ms": ANY, "2_step_ms": ANY},  # no "error": the comparison ran
                  "ratio_1": ANY, "ratio_2": ANY}]}}, "## lora (benchmarks/lora.py)"),
    "toy.py": ({"toy.json": {
        "when": ANY, "machine": ANY, "torch": ANY, "threads": ANY,
        "rows": [{"model": "toy", "batch_1": ANY, "batch_2": ANY}]}}, "## toy (benchmarks/toy.py)"),
    "ui.py": ({"ui.json": {
        "when": ANY, "machine": ANY, "threads": ANY,
        "runs": [{"family": "toy", "weights": ANY, "steps": 2, "debounce_s": ANY, "repeats": 1,
                  "slider_to_picture_s": ANY, "diffusers_s": ANY, "ratio": ANY, "max_s": ANY}]}},
              "## ui (benchmarks/ui.py)"),
    "memory.py": ({"memory.json": {
        "when": ANY, "machine": ANY, "torch": ANY, "models": ANY, "cycles": 2, "warmup": 1, "window": 1, "steps": 1,
        "start_mb": ANY, "trimmed": ANY, "rss_mb": MEMORY, "raw_rss_mb": MEMORY, "target_pct": 5.0, "ok": ANY,
        "per_cycle_mb": [ANY], "per_cycle_raw_mb": [ANY]}}, "## memory (benchmarks/memory.py)"),
    "fullsize.py": ({"fullsize.json": {
        "when": ANY, "machine": ANY, "torch": ANY, "rank": 4, "dtypes": ["float32"], "sizes": [64], "steps": 2,
        "rows": [{"family": ANY, "device": "cpu",
                  "build": {"file_gb": ANY, "lora_mb": ANY, "build_s": ANY},
                  "float32": {"open": {"open_s": ANY, "load_peak_gb": ANY, "model_gb": ANY},
                              "lora": {"alone_gb": ANY, "lora_peak_gb": ANY, "lora_held_gb": ANY, "peak_ratio": ANY,
                                       "first_fold_s": ANY, "toggle_off_s": ANY, "toggle_on_s": ANY, "copies": 0,
                                       "from_file": ANY, "restored_exactly": True},
                              "export": {"export_s": ANY, "export_peak_gb": ANY, "export_over_model_gb": ANY,
                                         "largest_tensor_gb": ANY, "same_weights": True},
                              "decode": {"size": 128, "plan": "whole", "planned_gb": ANY, "decode_s": ANY,
                                         "decode_peak_gb": ANY, "alone_gb": ANY, "picture": [128]},
                              "steps": {"64": {"s_per_step": ANY, "decode_s": ANY, "total_s": ANY,
                                               "denoise_peak_gb": ANY, "run_peak_gb": ANY, "alone_gb": ANY, "notes": ANY}}}}]}},
                    "## fullsize (benchmarks/fullsize.py)"),
    "judge_vs_eye.py": ({"judge_vs_eye.json": {
        "pictures": 6, "weights": ANY, "labels_made_on": ANY,
        "between labellers": {"shape verdicts agree": ANY, "style verdicts agree": ANY},
        "per labeller": {"judge": [AGREEMENT], "judge without gap closing": [AGREEMENT]},
        "verdicts": [{"prompt": ANY, "seed": ANY, "judge": ANY, "judge without gap closing": ANY}]}}, None),
    "sweep.py": ({"sweep.json": {
        "when": ANY, "machine": ANY, "torch": ANY, "rows": 2, "steps": 2,
        "one_process": {"1": {"whole_s": ANY, "generation_s": ANY}, "2": {"whole_s": ANY, "generation_s": ANY}},
        "best_batch": ANY, "local_s": ANY, "ratio": ANY, "target_ratio": 0.8, "ratio_to_generation_alone": ANY,
        "ray_s": ANY, "ray_over_local": ANY,
        "notebook": {"runs": 1, "sweep_s": ANY, "own_s_per_run": ANY, "overhead_s_per_run": ANY, "target_s": 3.0}}},
        "## sweep (benchmarks/sweep.py)"),
    "controlnet.py": ({"controlnet.json": {
        "when": ANY, "machine": ANY, "torch": ANY, "diffusers": ANY, "model": "toy + toy-controlnet", "steps": 2,
        "repeats": 1, "seconds": dict.fromkeys(RUNS, ANY), "ms_per_step": dict.fromkeys(RUNS, ANY),
        "one_unit_over_plain": ANY, "two_units_over_plain": ANY, "labkit_over_diffusers_one": ANY,
        "labkit_over_diffusers_two": ANY}}, "## controlnet (benchmarks/controlnet.py)"),
    "hires.py": ({"hires.json": {
        "when": ANY, "machine": ANY, "torch": ANY, "diffusers": ANY, "model": "toy + toy-upscaler", "steps": 2,
        "repeats": 1, "denoise": 0.35, "upscale_side": 64, "seconds": dict.fromkeys(HIRES_RUNS, ANY),
        "hires_over_single": dict.fromkeys(HIRES_RUNS[1:4], ANY), "hires_over_direct_128": dict.fromkeys(
            HIRES_RUNS[1:4], ANY), "upscale_seconds": dict.fromkeys(UPSCALES, ANY),
        "upscale_megapixels_per_s": dict.fromkeys(UPSCALES, ANY), "tiles_over_whole": ANY}},
        "## hires (benchmarks/hires.py)"),
    "parity.py": ({"parity.json": {
        "tolerance": 0.01,
        "rows": [{"key": ANY, "mode": ANY, "tool": ANY, "sampler": ANY, "sampler_tool": ANY, "schedule": "Karras",
                  "steps": 6, "error": ANY, "matches": True, "cannot": None}]}}, "## parity (benchmarks/parity.py)"),
}


def check(value, shape, where="") -> None:
    """Assert that `value` has the structure `shape` (see EXPECTED)."""
    if isinstance(shape, dict):
        assert isinstance(value, dict) and set(value) == set(shape), f"{where}: keys {sorted(value)}"
        for key, inner in shape.items():
            check(value[key], inner, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list) and value, f"{where}: {value!r} is not a non-empty list"
        for i, item in enumerate(value):
            check(item, shape[0], f"{where}[{i}]")
    elif shape is not ANY:
        assert value == shape, f"{where}: {value!r} != {shape!r}"


def test_every_benchmark_is_listed():
    """A benchmark without an entry here has no tiny mode that the tests run."""
    assert set(EXPECTED) == set(SCRIPTS), "give each benchmarks/*.py a --tiny mode and an entry in EXPECTED"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_tiny_mode_runs_and_writes_its_results(script, tmp_path):
    assert script in EXPECTED, f"benchmarks/{script}: give it a --tiny mode and an entry in EXPECTED"
    files, section = EXPECTED[script]
    run = subprocess.run([sys.executable, f"benchmarks/{script}", "--tiny", "--out", str(tmp_path)], cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    written = {p.name for p in tmp_path.iterdir()}
    assert written == set(files) | ({"results.md"} if section else set())
    for name, shape in files.items():
        check(json.loads((tmp_path / name).read_text()), shape, name)
    if section:
        text = (tmp_path / "results.md").read_text()
        assert text.startswith("# Benchmark results\n") and f"\n{section}\n" in text
