"""One training run: where its files go, its device, the pools its stages share, and the records it keeps.

A stage's record (seed, steps, loss, minutes, torch version, recipe, and the hashes of the parts it was trained
on) goes into the weights folder's training.json; manifest.json lists every member whose parts are complete and
current, which is what `labkit.open` reads.
"""

import csv
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import world
from ..registry import WEIGHTS
from .data import encode_images
from .parts import ENCODER_KEYS, MEMBERS, STAGE_INPUTS, VAE_PART, load_vae_part, member_hash
from .recipe import SIZE, TRAIN_WORLD

LOGS = Path(__file__).parents[1] / "logs"
RECORDS = "training.json"  # in the weights folder: every stage's record (the VAE's scaling factor, PSNR...)


class Run:
    """One training session: output folders, device, and the rendered pools stages share (kept in memory)."""

    def __init__(self, out=WEIGHTS, logs=None, device="auto", progress=True, update_configs=None):
        import torch

        self.out = Path(out)
        self.logs = Path(logs) if logs else (LOGS if self.out.resolve() == WEIGHTS.resolve() else self.out / "logs")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.progress = progress
        # the shipped weights set the shipped configs' scaling factor; a run elsewhere (tests) leaves them alone
        self.update_configs = self.out.resolve() == WEIGHTS.resolve() if update_configs is None else update_configs
        self._pools, self._latents = {}, {}

    def pool(self, n, world_seed, styles=None):
        """(images (n, 3, 64, 64) uint8, scenes) of world.dataset(n, world_seed); rendered once per run."""
        import torch

        key = (world_seed, repr(dict(styles or {})))
        images, scenes = self._pools.get(key, (torch.empty(0, 3, SIZE, SIZE, dtype=torch.uint8), []))
        if len(scenes) < n:
            new = [world.example(world_seed, i, SIZE, styles and dict(styles))
                   for i in self.bar(range(len(scenes), n), "render")]
            pixels = np.stack([np.asarray(image, np.uint8).transpose(2, 0, 1) for image, _, _ in new])
            images = torch.cat([images, torch.from_numpy(pixels)])  # (n, 3, 64, 64)
            scenes = scenes + [scene for _, _, scene in new]
            self._pools[key] = images, scenes
        return images[:n], scenes[:n]

    def latents(self, vae, scale, n, world_seed):
        """Scaled latent means (n, 4, 8, 8) of the plain pool, on the run's device; encoded once per VAE."""
        key = (self.input_hash(VAE_PART[0]), scale, world_seed)
        done = self._latents.get(key)
        if done is None or len(done) < n:
            images, _ = self.pool(n, world_seed)
            done = encode_images(vae, images, scale, self.device, self.bar)
            self._latents[key] = done
        return done[:n]

    def part_hash(self, file):
        """sha256 of a file in the weights folder."""
        return hashlib.sha256((self.out / file).read_bytes()).hexdigest()

    def input_hash(self, file):
        """sha256 of what a later stage reads of a part file: of the VAE, its encoder half (a UNet only ever
        sees latents, and the vae-decoder stage leaves the encoder as it is); of any other part, the whole file."""
        if file != VAE_PART[0]:
            return self.part_hash(file)
        from safetensors.torch import load_file

        digest = hashlib.sha256()
        for key, tensor in sorted(load_file(str(self.out / file)).items()):
            if key.startswith(ENCODER_KEYS):
                digest.update(key.encode())
                digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()

    def bar(self, iterable, desc):
        """A tqdm progress bar (silent with progress=False)."""
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, disable=not self.progress, leave=False)


# ---- what the UNet stages start from ---------------------------------------------------------------------------

def require_vae(run) -> dict:
    """The folder's stage records, which must include a trained VAE."""
    records = read_records(run.out)
    if "vae" not in records or not (run.out / VAE_PART[0]).exists():
        raise FileNotFoundError(f"No trained VAE in {run.out}: run `python -m labkit.toy.train vae` first.")
    return records


def vae_and_latents(run, r):
    """The frozen VAE, its scaling factor (from the vae stage's record) and the plain pool's latents."""
    scale = require_vae(run)["vae"]["scaling_factor"]
    vae = load_vae_part(run.out, run.device)
    return vae, scale, run.latents(vae, scale, r.pool, TRAIN_WORLD)


def unet_stage_start(run, r, family: str):
    """(start time, torch generator, numpy rng, pool latents, pool scenes, fresh components) of a UNet stage,
    made in this order so every stage's random draws stay where they were."""
    import torch

    from ..build import fresh_components

    start, gen, rng = time.perf_counter(), torch.Generator().manual_seed(r.seed), np.random.default_rng(r.seed)
    _, _, latents = vae_and_latents(run, r)
    _, scenes = run.pool(r.pool, TRAIN_WORLD)
    return start, gen, rng, latents, scenes, fresh_components(family, r.seed)


# ---- records, manifest and logs --------------------------------------------------------------------------------

def _write_json(path, data):
    from ...files import save_json

    path.parent.mkdir(parents=True, exist_ok=True)
    save_json(data, path)


def read_records(out):
    """{stage: record} of every stage trained into `out` (training.json)."""
    path = Path(out) / RECORDS
    return json.loads(path.read_text()) if path.exists() else {}


def write_record(run, stage, record):
    """Store the stage's record, then rewrite manifest.json with every complete member: all its parts exist and
    the parts it was trained on are still the ones in the folder."""
    records = {**read_records(run.out), stage: record}
    _write_json(run.out / RECORDS, records)
    manifest = {}
    for member, (family, variant, parts) in MEMBERS.items():
        if member not in records or not all((run.out / f).exists() for f, _ in parts):
            continue
        stale = [f for f, h in records[member].get("inputs", {}).items() if run.input_hash(f)[:10] != h]
        if stale:
            print(f"{member} left out of the manifest: trained on an older {', '.join(stale)}; retrain it.")
            continue
        manifest[member] = {"family": family, "variant": variant, "parts": [list(p) for p in parts],
                            "hash": member_hash(run.out, member), **records[member]}
    _write_json(run.out / "manifest.json", manifest)


def write_log(run, stage, losses):
    """logs/<stage>.csv (step, loss) and logs/<stage>.png (the loss curve, with a moving average)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    run.logs.mkdir(parents=True, exist_ok=True)
    with open(run.logs / f"{stage}.csv", "w", newline="") as f:
        csv.writer(f).writerows([("step", "loss"), *enumerate(losses)])
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot(losses, color="0.75", lw=0.6, label="loss")
    ax.plot(np.arange(len(smooth)) + window - 1, smooth, color="C0", label=f"mean of {window}")
    ax.set(yscale="log", xlabel="step", ylabel="loss", title=f"{stage}: training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run.logs / f"{stage}.png", dpi=100)


def stage_record(r, losses, start, run, **extra):
    """What the manifest and training.json keep of a stage; "loss" is the mean of the last 100 steps."""
    import torch

    tail = losses[-min(100, len(losses)):]
    return {"seed": r.seed, "steps": r.steps, "batch": r.batch, "lr": r.lr, "te_lr": r.te_lr or None,
            "loss": round(float(np.mean(tail)), 5), "minutes": round((time.perf_counter() - start) / 60, 2),
            "torch": torch.__version__, "device": run.device.type, **extra, "recipe": asdict(r)}


def finish_stage(run, stage, r, losses, start, **extra):
    """Record a trained stage (with the hashes of the parts it read), write its loss log, update the manifest."""
    record = stage_record(r, losses, start, run, inputs={f: run.input_hash(f)[:10] for f in STAGE_INPUTS[stage]},
                          **extra)
    write_log(run, stage, losses)
    write_record(run, stage, record)
    return record
