"""Sweep throughput and overhead (issue #18), all in one run on this machine:

1. A generation sweep of `rows` pictures on `toy` (cfg x sampler x seeds, 64 px, `steps` steps) with
   `labkit.sweep.generate` (local engine, default workers: one process per core, cores divided), run as a whole
   command in a fresh process: imports, worker start, model loads, pictures written with recipes, tables,
   index.html and contact sheet. Against the best plain alternative, also a whole command in a fresh process: the
   same pictures in one process (torch on every core, model opened once, nothing written) at the best batch size
   of `batches`. Target: the sweep reaches >= 0.8x that throughput. The one-process runs' generation alone (no
   imports, no model load) is reported beside them: the rate a sweep of thousands of rows tends to.
2. The same sweep on engine="ray" (Ray started locally and stopped, as a user's first Ray sweep), same way: its
   overhead over the local engine.
3. A notebook sweep (papermill, one worker) of `notebook_runs` runs of a notebook that makes one toy picture:
   the time per run beyond the notebook's own cells (kernel start, papermill, files sent back). Target: <= 3 s.

Writes benchmarks/sweep.json and the `## sweep` section of benchmarks/results.md.

    .venv/bin/python benchmarks/sweep.py [--tiny] [--out DIR]
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core import add_run_args, sizes, update_section

FULL = {"seeds": 16, "cfgs": (2.0, 4.0, 6.0), "samplers": ("Euler", "DPM++ 2M"), "steps": 20,
        "batches": (1, 2, 4, 8, 16), "notebook_runs": 6}
TINY = {"seeds": 2, "cfgs": (4.0,), "samplers": ("Euler",), "steps": 2, "batches": (1, 2), "notebook_runs": 1}
PROMPT = "a red circle on a white background"
TARGET_RATIO, TARGET_NOTEBOOK_S = 0.8, 3.0
NOTEBOOK_BODY = """import labkit
lab = labkit.open("toy")
result = lab.txt2img("a blue square on a black background", steps=steps, sampler="Euler", seed=seed)
labkit.record("mean", float(sum(result.image.convert("L").getdata()) / 4096))
"""


def grid(work: dict) -> dict:
    return {"cfg": list(work["cfgs"]), "sampler": list(work["samplers"]), "seed": f"0-{work['seeds'] - 1}"}


def one_process(work: dict, batch: int) -> float:
    """The same pictures in this process at one batch size (torch on every core); seconds of generation alone."""
    import torch

    import labkit

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    lab = labkit.open("toy")
    start = time.perf_counter()
    for cfg in work["cfgs"]:
        for sampler in work["samplers"]:
            for first in range(0, work["seeds"], batch):
                lab.txt2img(PROMPT, steps=work["steps"], cfg=cfg, sampler=sampler, seed=first,
                            batch_size=min(batch, work["seeds"] - first))
    return time.perf_counter() - start


def swept(work: dict, engine: str, folder: Path) -> None:
    import labkit

    result = labkit.sweep.generate("toy", grid(work), folder / engine, engine=engine, steps=work["steps"],
                                   prompt=PROMPT, progress=False, batch=max(work["batches"]))
    assert not result.failed and len(result.rows) == rows(work), result


def child(args) -> None:
    """One measured command, in its own fresh process: prints its JSON result on the last line."""
    work = json.loads(args.work)
    if args.child == "one-process":
        print(json.dumps({"generation_s": one_process(work, args.batch)}))
    else:
        swept(work, args.child, Path(args.folder))
        print(json.dumps({}))


def whole(work: dict, kind: str, batch: int = 1, folder: Path | None = None) -> dict:
    """Wall seconds of a fresh `python benchmarks/sweep.py --child KIND` from start to exit, and what it printed."""
    command = [sys.executable, __file__, "--child", kind, "--work", json.dumps(work), "--batch", str(batch),
               "--folder", str(folder or "")]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return {"whole_s": round(seconds, 2), **{k: round(v, 2) for k, v in
                                             json.loads(done.stdout.strip().splitlines()[-1]).items()}}


def rows(work: dict) -> int:
    return work["seeds"] * len(work["cfgs"]) * len(work["samplers"])


def notebook_overhead(work: dict, folder: Path) -> dict:
    """Seconds per run of a notebook sweep against the notebook's own cells (papermill's cell durations)."""
    import nbformat

    import labkit

    cell = nbformat.v4.new_code_cell("steps = 4\nseed = 0")
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell(NOTEBOOK_BODY)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(folder / "one_picture.ipynb"))
    runs = work["notebook_runs"]
    start = time.perf_counter()
    result = labkit.sweep.notebooks(folder / "one_picture.ipynb", {"seed": f"0-{runs - 1}"}, folder / "notebooks",
                                    progress=False)
    seconds = time.perf_counter() - start
    assert not result.failed, result.failed
    own = []
    for row in result.rows:
        executed = json.loads((folder / "notebooks" / "runs" / f"{row['run']:04d}" / "notebook.ipynb").read_text())
        own.append(sum(c["metadata"].get("papermill", {}).get("duration") or 0 for c in executed["cells"]))
    return {"runs": runs, "sweep_s": round(seconds, 2), "own_s_per_run": round(sum(own) / runs, 2),
            "overhead_s_per_run": round((seconds - sum(own)) / runs, 2), "target_s": TARGET_NOTEBOOK_S}


def measure(work: dict) -> dict:
    import torch

    folder = Path(tempfile.mkdtemp(prefix="labkit-bench-sweep-"))
    try:
        baseline = {str(batch): whole(work, "one-process", batch) for batch in work["batches"]}
        best = min(baseline, key=lambda b: baseline[b]["whole_s"])
        local = whole(work, "local", folder=folder)["whole_s"]
        ray = whole(work, "ray", folder=folder)["whole_s"]
        notebook = notebook_overhead(work, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    generation = min(b["generation_s"] for b in baseline.values())
    return {"when": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "torch": torch.__version__, "rows": rows(work), "steps": work["steps"],
            "one_process": baseline, "best_batch": int(best),
            "local_s": local, "ratio": round(baseline[best]["whole_s"] / local, 3), "target_ratio": TARGET_RATIO,
            "ratio_to_generation_alone": round(generation / local, 3),
            "ray_s": ray, "ray_over_local": round(ray / local, 3), "notebook": notebook}


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    r, nb = results, results["notebook"]
    best = r["one_process"][str(r["best_batch"])]
    batches = ", ".join(f"batch {b}: {t['whole_s']} s ({t['generation_s']} s generating)"
                        for b, t in r["one_process"].items())
    lines = ["## sweep (benchmarks/sweep.py)", "",
             f"{r['when']} · {r['machine']} · torch {r['torch']} · `toy`, 64 px, {r['steps']} steps, {r['rows']} rows "
             f"(cfg x sampler x seeds); each run a whole command in a fresh process (imports, model loads; the sweep "
             f"also writes every picture with its recipe, the tables, index.html and the contact sheet)", "",
             "| run | seconds | throughput against one process at its best batch |", "|---|---|---|",
             f"| one process, nothing written ({batches}) | {best['whole_s']} | 1 (best: batch {r['best_batch']}) |",
             f"| labkit.sweep.generate, local engine | {r['local_s']} | **{r['ratio']}x** (target ≥ "
             f"{r['target_ratio']}x); {r['ratio_to_generation_alone']}x the one process's generation alone |",
             f"| labkit.sweep.generate, engine='ray' (started and stopped) | {r['ray_s']} | "
             f"{round(best['whole_s'] / r['ray_s'], 3)}x; {r['ray_over_local']}x the local engine's time |", "",
             f"Notebook sweep (papermill, one worker, {nb['runs']} runs of a one-picture notebook): {nb['sweep_s']} s, "
             f"{nb['own_s_per_run']} s per run in the notebook's own cells, **{nb['overhead_s_per_run']} s per run "
             f"beyond them** (kernel start included; target ≤ {nb['target_s']} s)."]
    update_section(out / "results.md", "sweep", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one measured command, run by this script itself
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        return child(args)
    results = measure(sizes(args, FULL, TINY))
    write(results, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
