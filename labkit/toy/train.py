"""Train labkit's embedded model family on the toy world: `python -m labkit.toy.train <member|all> [options]`.

Stages run in this order; later ones reuse (frozen) the parts earlier ones wrote, read back from disk in float16,
exactly as they ship:

    vae             AutoencoderKL (64x64 <-> 4x8x8); also sets the toy VAE configs' scaling_factor
    vae-decoder     the VAE's decoder alone, gray backgrounds oversampled (the encoder, so every latent, stays)
    toy             SD1-layout UNet + CLIP-L text encoder, trained together
    toy-xl          SDXL-layout UNet + OpenCLIP-G-like encoder (CLIP-L frozen)
    toy-xl-refiner  SDXL-refiner UNet on the low-noise end (G frozen)
    toy-inpaint     9-channel UNet started from toy's UNet (CLIP-L frozen)

Text is encoded exactly as the diffusers pipelines encode prompts at inference (tests/test_toy_train.py checks
it against `encode_prompt`), and caption dropout feeds the unconditional input each pipeline uses for an empty
negative prompt. Everything random comes from generators seeded from the stage's seed: a rerun on the same
machine writes the same bytes.
"""

import argparse
import csv
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from . import world
from .registry import WEIGHTS

LOGS = Path(__file__).parent / "logs"
STAGES = ("vae", "vae-decoder", "toy", "toy-xl", "toy-xl-refiner", "toy-inpaint")
RECORDS = "training.json"  # in the weights folder: every stage's record (the VAE's scaling factor, PSNR...)

VAE_PREFIX, UNET_PREFIX = "first_stage_model.", "model.diffusion_model."
CLIP_L_SD1, CLIP_L_XL = "cond_stage_model.transformer.", "conditioner.embedders.0.transformer."
CLIP_G_XL, CLIP_G_REFINER = "conditioner.embedders.1.model.", "conditioner.embedders.0.model."
VAE_PART = ("vae.safetensors", VAE_PREFIX)
ENCODER_KEYS = ("encoder.", "quant_conv.")  # the VAE part's encoder half: all that the UNet stages read of it
# member -> (family, variant, parts [(file, key prefix), ...]); each part file holds its keys without the prefix
MEMBERS = MappingProxyType({
    "toy": ("toy", None, (VAE_PART, ("clip_l.safetensors", CLIP_L_SD1), ("unet_toy.safetensors", UNET_PREFIX))),
    "toy-xl": ("toy-xl", None, (VAE_PART, ("clip_l.safetensors", CLIP_L_XL), ("clip_g.safetensors", CLIP_G_XL),
                                ("unet_toy_xl.safetensors", UNET_PREFIX))),
    "toy-xl-refiner": ("toy-xl-refiner", None, (VAE_PART, ("clip_g.safetensors", CLIP_G_REFINER),
                                                ("unet_toy_xl_refiner.safetensors", UNET_PREFIX))),
    "toy-inpaint": ("toy", "inpaint", (VAE_PART, ("clip_l.safetensors", CLIP_L_SD1),
                                       ("unet_toy_inpaint.safetensors", UNET_PREFIX))),
})

# stage -> the parts it reads (frozen or as a start); recorded by hash, so a member trained on parts that were
# retrained since is left out of the manifest instead of shipping mismatched pieces
STAGE_INPUTS = MappingProxyType({
    "vae-decoder": ("vae.safetensors",),
    "toy": ("vae.safetensors",),
    "toy-xl": ("vae.safetensors", "clip_l.safetensors"),
    "toy-xl-refiner": ("vae.safetensors", "clip_g.safetensors"),
    "toy-inpaint": ("vae.safetensors", "clip_l.safetensors", "unet_toy.safetensors"),
})

TRAIN_WORLD, HELD_OUT_WORLD = 0, 1  # world.dataset seeds: training pools / the VAE's held-out images
VAE_STYLES = MappingProxyType({None: 0.5, "outlined": 0.25, "striped": 0.25})  # the VAE sees every style
SIZE = 64  # pixels; latents are SIZE / 8
XL_TIME_IDS = (SIZE, SIZE, 0, 0, SIZE, SIZE)  # original size, crop top-left, target size
REFINER_SIZE_IDS = (SIZE, SIZE, 0, 0)  # original size, crop top-left; the aesthetic score follows
AESTHETIC, NEGATIVE_AESTHETIC = 6.0, 2.5  # diffusers' img2img defaults for aesthetic_score / negative_...


@dataclass(frozen=True)
class Recipe:
    """Everything that decides one stage's weights (with the code and the torch build)."""

    seed: int
    steps: int
    batch: int
    lr: float  # UNet (VAE for the vae stage)
    te_lr: float = 0.0  # the text encoder trained in this stage; 0: none
    pool: int = 16000  # training images (rendered once; latents precomputed for the UNet stages)
    weight_decay: float = 0.01  # on weight matrices and kernels only (not biases, norms, embeddings)
    warmup: float = 0.05  # share of steps with a linear warmup, then cosine decay to 0
    grad_clip: float = 1.0
    ema: float = 0.999  # decay of the weights' EMA (what is saved); 0: save the raw weights
    dropout: float = 0.1  # caption dropout: share of samples trained unconditionally
    null_text: float = 0.0  # toy-xl: share of those encoded as "" rather than zeros (see README)
    t_max: int = 1000  # timesteps drawn uniformly from [0, t_max)
    kl: float = 1e-6  # vae: KL (summed over the latent) weight
    mse: float = 0.1  # vae: MSE weight beside L1
    scale_images: int = 4096  # vae: images for scaling_factor = 1 / std(latent means)
    eval_images: int = 256  # vae: held-out images for the PSNR
    gray_weight: float = 1.0  # vae-decoder: how much more often gray-background pictures are drawn


RECIPES = MappingProxyType({
    "vae": Recipe(seed=101, steps=4000, batch=32, lr=1e-3, pool=8000, ema=0.0),
    "vae-decoder": Recipe(seed=106, steps=1600, batch=32, lr=2e-4, pool=6000, ema=0.0, gray_weight=3.0),
    "toy": Recipe(seed=102, steps=4000, batch=64, lr=1e-3, te_lr=3e-4),
    "toy-xl": Recipe(seed=103, steps=5000, batch=64, lr=1e-3, te_lr=3e-4, null_text=0.5),
    "toy-xl-refiner": Recipe(seed=104, steps=2400, batch=64, lr=1e-3, t_max=200),
    "toy-inpaint": Recipe(seed=105, steps=1200, batch=64, lr=5e-4, pool=8000),
})


# ---- one run: where things go, the device, and what stages share -----------------------------------------

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


# ---- text encoding: exactly what the diffusers pipelines do at inference ----------------------------------

def token_ids(tokenizer, prompts):
    """(B, 77) ids, padded and truncated as every SD/SDXL pipeline tokenizes."""
    return tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def encode_sd(text_encoder, ids):
    """StableDiffusionPipeline.encode_prompt: the last hidden state, after the final layer norm."""
    return text_encoder(ids.to(text_encoder.device))[0]  # (B, 77, width)


def encode_xl(text_encoders, ids):
    """StableDiffusionXL(Img2Img)Pipeline.encode_prompt: every encoder's penultimate hidden state, side by side,
    and the last encoder's projected pooled output. Returns (embeds (B, 77, sum of widths), pooled (B, proj))."""
    import torch

    hidden, pooled = [], None
    for encoder, encoder_ids in zip(text_encoders, ids):
        out = encoder(encoder_ids.to(encoder.device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])  # (B, 77, width): no final layer norm
        pooled = out[0] if out[0].ndim == 2 else pooled  # text_embeds of the encoder with a projection
    return torch.cat(hidden, dim=-1), pooled


def xl_time_ids(batch):
    """SDXL base `time_ids` (B, 6): StableDiffusionXLPipeline._get_add_time_ids for a 64x64 picture, uncropped."""
    import torch

    return torch.tensor([XL_TIME_IDS], dtype=torch.float32).repeat(batch, 1)


def refiner_time_ids(keep):
    """SDXL refiner `time_ids` (B, 5): size, crop and the aesthetic score (6.0 with a caption, 2.5 without), as
    StableDiffusionXLImg2ImgPipeline._get_add_time_ids gives for the prompt and the negative prompt."""
    import torch

    score = torch.where(keep, AESTHETIC, NEGATIVE_AESTHETIC)[:, None]  # (B, 1)
    return torch.cat([torch.tensor([REFINER_SIZE_IDS], dtype=torch.float32).repeat(len(keep), 1), score], dim=1)


def inpaint_extra(vae, images, masks, scale, gen):
    """The inpainting UNet's extra input channels (B, 5, h, w): the mask resized to latent size and the latents
    of the masked image (a posterior sample, scaled), as StableDiffusionInpaintPipeline.prepare_mask_latents
    builds them. `images` (B, 3, H, W) in [-1, 1]; `masks` (B, 1, H, W) binary, 1 = repaint."""
    import torch
    import torch.nn.functional as F

    masked = images * (masks < 0.5)  # (B, 3, H, W): the pipeline's masked image
    with torch.no_grad():
        masked_latents = vae.encode(masked).latent_dist.sample(generator=gen) * scale  # (B, 4, h, w)
    small_masks = F.interpolate(masks, size=masked_latents.shape[-2:])  # (B, 1, h, w), nearest like the pipeline
    return torch.cat([small_masks, masked_latents], dim=1)


class Tokens:
    """Token ids per caption, cached (a caption recurs many times in a run; tokenizing is the slow part)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def __call__(self, prompts):
        import torch

        missing = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if missing:
            self.cache.update(zip(missing, token_ids(self.tokenizer, missing)))
        return torch.stack([self.cache[p] for p in prompts])  # (B, 77)


# ---- data ---------------------------------------------------------------------------------------------------

def to_unit(images):
    """uint8 (B, 3, H, W) -> float32 in [-1, 1], as world.to_tensor_batch and the pipelines' preprocessing."""
    return images.float() / 127.5 - 1.0


def index_stream(n, batch, gen):
    """Endless batches of pool indices: shuffled epochs, each image once per epoch."""
    import torch

    order = torch.empty(0, dtype=torch.long)
    while True:
        while len(order) < batch:
            order = torch.cat([order, torch.randperm(n, generator=gen)])
        yield order[:batch]
        order = order[batch:]


def encode_images(vae, images, scale, device, bar=lambda x, desc: x, chunk=256):
    """Scaled latent means (N, 4, h, w) of uint8 images: what the UNets are trained to denoise."""
    import torch

    out = []
    with torch.no_grad():
        for start in bar(range(0, len(images), chunk), "encode"):
            x = to_unit(images[start:start + chunk]).to(device)  # (b, 3, 64, 64)
            out.append(vae.encode(x).latent_dist.mean * scale)  # (b, 4, 8, 8)
    return torch.cat(out)


def captions(scenes, rng, keep, null=""):
    """A caption variant per scene (world.caption, fresh each draw); `null` where `keep` is False."""
    return [world.caption(scene, rng) if k else null for scene, k in zip(scenes, keep)]


# ---- the optimisation loop shared by every stage -------------------------------------------------------------

def param_groups(module, lr, weight_decay):
    """AdamW groups: decay on weight matrices and kernels; none on biases, norms and embedding tables."""
    import torch

    tables = {id(p) for m in module.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2 and id(p) not in tables]
    rest = [p for p in params if not (p.ndim >= 2 and id(p) not in tables)]
    return [{"params": decay, "lr": lr, "weight_decay": weight_decay}, {"params": rest, "lr": lr, "weight_decay": 0.0}]


def fit(trained, loss_fn, r, desc, progress=True):
    """Optimise `trained` [(module, lr)] for r.steps steps of loss_fn(step); returns the per-step losses.

    AdamW, linear warmup then cosine decay, gradient clipping; with r.ema the modules end holding the EMA."""
    import torch
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from tqdm.auto import tqdm

    groups = [g for module, lr in trained for g in param_groups(module, lr, r.weight_decay)]
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, round(r.warmup * r.steps)), r.steps)
    ema = None
    if r.ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(params, decay=r.ema, foreach=True)
    for module, _ in trained:
        module.train()
    losses = []
    bar = tqdm(range(r.steps), desc=desc, disable=not progress)
    for step in bar:
        loss = loss_fn(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, r.grad_clip)
        optimizer.step()
        schedule.step()
        if ema is not None:
            ema.step(params)
        losses.append(loss.item())
        if step % 20 == 0 or step == r.steps - 1:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    if ema is not None:
        ema.copy_to(params)
    for module, _ in trained:
        module.eval()
    return losses


def diffusion_loss(unet, scheduler, latents, gen, t_max, extra=None, **conditioning):
    """Epsilon-prediction MSE at timesteps uniform in [0, t_max), noised with diffusers' DDPM add_noise.

    `extra`: channels concatenated after the noisy latents (the inpainting UNet's mask and masked image)."""
    import torch
    import torch.nn.functional as F

    b = len(latents)
    noise = torch.randn(latents.shape, generator=gen).to(latents.device)  # (B, 4, 8, 8)
    t = torch.randint(0, t_max, (b,), generator=gen).to(latents.device)  # (B,)
    noisy = scheduler.add_noise(latents, noise, t)
    model_input = noisy if extra is None else torch.cat([noisy, extra], dim=1)  # (B, 4 or 9, 8, 8)
    return F.mse_loss(unet(model_input, t, **conditioning).sample, noise)


def noise_scheduler(family):
    """DDPM with the family's training schedule (scaled_linear betas, 1000 steps)."""
    from diffusers import DDPMScheduler

    from ..loading import CONFIGS

    config = json.loads((CONFIGS / family / "scheduler" / "scheduler_config.json").read_text())
    keep = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
    return DDPMScheduler.from_config({k: config[k] for k in keep if k in config})


# ---- parts on disk ------------------------------------------------------------------------------------------

def save_part(path, ldm, prefix):
    """Write LDM-layout tensors as a float16 part file, keys without `prefix`; atomic (temp file + rename)."""
    import torch

    from ..files import save_safetensors

    if not all(key.startswith(prefix) for key in ldm):
        raise ValueError(f"{path.name}: every key must start with {prefix!r}.")
    tensors = {key.removeprefix(prefix): t.detach().to("cpu", torch.float16).contiguous() for key, t in ldm.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(tensors, path)


def read_part(out, file, prefix):
    """A part file's tensors as float32, under their full LDM keys."""
    from safetensors.torch import load_file

    return {prefix + k: v.float() for k, v in load_file(str(Path(out) / file)).items()}


def load_vae(out, device):
    """The shipped (float16-rounded) VAE as float32."""
    from diffusers import AutoencoderKL

    from ..loading import CONFIGS

    vae = AutoencoderKL.from_single_file(read_part(out, *VAE_PART), config=str(CONFIGS / "toy"), subfolder="vae",
                                         local_files_only=True)
    return _frozen(vae, device)


def load_text_encoder(out, family, sub, file, prefix, device):
    """A shipped text encoder (CLIP-L or G part) as float32, read by diffusers' single-file converter."""
    import transformers
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    from ..loading import CONFIGS

    config = json.loads((CONFIGS / family / sub / "config.json").read_text())
    model = create_diffusers_clip_model_from_ldm(getattr(transformers, config["architectures"][0]),
                                                 read_part(out, file, prefix), subfolder=sub,
                                                 config=str(CONFIGS / family), local_files_only=True)
    return _frozen(model.float(), device)


def load_unet(out, file, family, device):
    """A shipped UNet part as float32."""
    from diffusers import UNet2DConditionModel

    from ..loading import CONFIGS

    unet = UNet2DConditionModel.from_single_file(read_part(out, file, UNET_PREFIX), config=str(CONFIGS / family),
                                                 subfolder="unet", local_files_only=True)
    return _frozen(unet, device)


def _frozen(module, device):
    module.to(device).eval().requires_grad_(False)
    return module


def member_hash(out, member):
    """First 10 hex digits of sha256 over the member's part files' bytes, in part order."""
    digest = hashlib.sha256()
    for file, _ in MEMBERS[member][2]:
        digest.update((Path(out) / file).read_bytes())
    return digest.hexdigest()[:10]


def _write_json(path, data):
    from ..files import save_text

    path.parent.mkdir(parents=True, exist_ok=True)
    save_text(json.dumps(data, indent=2) + "\n", path)


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


def _record(r, losses, start, run, **extra):
    """What the manifest and training.json keep of a stage; "loss" is the mean of the last 100 steps."""
    import torch

    tail = losses[-min(100, len(losses)):]
    return {"seed": r.seed, "steps": r.steps, "batch": r.batch, "lr": r.lr, "te_lr": r.te_lr or None,
            "loss": round(float(np.mean(tail)), 5), "minutes": round((time.perf_counter() - start) / 60, 2),
            "torch": torch.__version__, "device": run.device.type, **extra, "recipe": asdict(r)}


# ---- the VAE's numbers ---------------------------------------------------------------------------------------

def scaling_factor(latent_means):
    """1 / std of the latent means (all channels and positions), rounded to 4 decimals."""
    return round(1.0 / latent_means.float().std().item(), 4)


def psnr(vae, images, device):
    """Mean PSNR (dB) of VAE reconstructions (posterior mean) of uint8 images, at 8-bit precision."""
    import torch

    with torch.no_grad():
        x = to_unit(images).to(device)  # (N, 3, 64, 64)
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample
    pixels = ((recon.clamp(-1, 1) + 1) * 127.5).round().cpu()
    mse = ((pixels - images.float()) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)  # (N,)
    return round(float((10 * torch.log10(255.0 ** 2 / mse)).mean()), 2)


# ---- the stages ---------------------------------------------------------------------------------------------

def train_vae(run, r):
    """AutoencoderKL: L1 + MSE reconstruction of a posterior sample + a tiny KL; then scaling factor and PSNR."""
    import torch

    from ..export import vae_to_ldm
    from .build import fresh_components

    start, gen = time.perf_counter(), torch.Generator().manual_seed(r.seed)
    vae = fresh_components("toy", r.seed)["vae"].to(run.device)
    images, _ = run.pool(r.pool, TRAIN_WORLD, VAE_STYLES)
    batches = index_stream(len(images), r.batch, gen)

    def loss_fn(step):
        x = to_unit(images[next(batches)]).to(run.device)  # (B, 3, 64, 64)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample  # (B, 3, 64, 64)
        return reconstruction_loss(recon, x, r) + r.kl * posterior.kl().mean()

    losses = fit([(vae, r.lr)], loss_fn, r, "vae", run.progress)
    save_part(run.out / VAE_PART[0], vae_to_ldm(vae), VAE_PREFIX)
    vae = load_vae(run.out, run.device)  # measure what ships
    scale = scaling_factor(encode_images(vae, images[:r.scale_images], 1.0, run.device))
    held_out, _ = run.pool(r.eval_images, HELD_OUT_WORLD, VAE_STYLES)
    record = _record(r, losses, start, run, scaling_factor=scale, psnr=psnr(vae, held_out, run.device))
    write_log(run, "vae", losses)
    write_record(run, "vae", record)
    if run.update_configs:  # the configs read the scaling factor from the record just written
        from ..configs import make_configs

        make_configs.write_configs(weights=run.out)
    return record


def train_vae_decoder(run, r):
    """The VAE's decoder (and post_quant_conv) alone, on the VAE's own pool (every style) with gray backgrounds
    drawn r.gray_weight times as often: thin outlines and stripes on gray are the faintest strokes the VAE draws.
    The encoder is frozen, so every latent, the scaling factor and every UNet trained on them stay valid."""
    import torch
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from ..export import vae_to_ldm

    _require_vae(run)
    start, gen = time.perf_counter(), torch.Generator().manual_seed(r.seed)
    vae = load_vae(run.out, run.device)
    images, scenes = run.pool(r.pool, TRAIN_WORLD, VAE_STYLES)
    odds = torch.tensor([r.gray_weight if scene.background == "gray" else 1.0 for scene in scenes])  # (N,)
    with torch.no_grad():  # the posterior of every image, once: (N, 8, 8, 8) means and log-variances
        moments = torch.cat([vae.quant_conv(vae.encoder(to_unit(images[i:i + 256]).to(run.device)))
                             for i in range(0, len(images), 256)])
    decoder = torch.nn.ModuleList([vae.post_quant_conv, vae.decoder]).requires_grad_(True)

    def loss_fn(step):
        idx = torch.multinomial(odds, r.batch, replacement=True, generator=gen)  # (B,)
        x = to_unit(images[idx]).to(run.device)  # (B, 3, 64, 64)
        recon = vae.decode(DiagonalGaussianDistribution(moments[idx]).sample(generator=gen)).sample
        return reconstruction_loss(recon, x, r)

    losses = fit([(decoder, r.lr)], loss_fn, r, "vae-decoder", run.progress)
    save_part(run.out / VAE_PART[0], vae_to_ldm(vae), VAE_PREFIX)
    held_out, _ = run.pool(r.eval_images, HELD_OUT_WORLD, VAE_STYLES)
    return _finish(run, "vae-decoder", r, losses, start, psnr=psnr(load_vae(run.out, run.device), held_out,
                                                                    run.device))


def reconstruction_loss(recon, x, r):
    """The VAE stages' pixel loss: L1 + r.mse * MSE."""
    import torch.nn.functional as F

    return F.l1_loss(recon, x) + r.mse * F.mse_loss(recon, x)


def _require_vae(run) -> dict:
    """The folder's stage records, which must include a trained VAE."""
    records = read_records(run.out)
    if "vae" not in records or not (run.out / VAE_PART[0]).exists():
        raise FileNotFoundError(f"No trained VAE in {run.out}: run `python -m labkit.toy.train vae` first.")
    return records


def _vae_and_latents(run, r):
    """The frozen VAE, its scaling factor (from the vae stage's record) and the plain pool's latents."""
    scale = _require_vae(run)["vae"]["scaling_factor"]
    vae = load_vae(run.out, run.device)
    return vae, scale, run.latents(vae, scale, r.pool, TRAIN_WORLD)


def train_toy(run, r):
    """SD1 layout: UNet + CLIP-L together; dropped captions are "" (what SD pipelines encode as the negative)."""
    import torch

    from ..export import clip_to_ldm, unet_to_ldm

    start, gen, rng, latents, scenes, parts = _stage_start(run, r, "toy")
    unet, te = parts["unet"].to(run.device), parts["text_encoder"].to(run.device)
    tokens, scheduler = Tokens(parts["tokenizer"]), noise_scheduler("toy")
    batches = index_stream(len(latents), r.batch, gen)

    def loss_fn(step):
        idx = next(batches)
        keep = (torch.rand(len(idx), generator=gen) >= r.dropout).tolist()
        text = encode_sd(te, tokens(captions([scenes[i] for i in idx], rng, keep)))  # (B, 77, 64)
        return diffusion_loss(unet, scheduler, latents[idx.to(latents.device)], gen, r.t_max,
                              encoder_hidden_states=text)

    losses = fit([(unet, r.lr), (te, r.te_lr)], loss_fn, r, "toy", run.progress)
    save_part(run.out / "clip_l.safetensors", clip_to_ldm(te, CLIP_L_SD1), CLIP_L_SD1)
    save_part(run.out / "unet_toy.safetensors", unet_to_ldm(unet), UNET_PREFIX)
    return _finish(run, "toy", r, losses, start)


def _stage_start(run, r, family: str):
    """(start time, torch generator, numpy rng, pool latents, pool scenes, fresh components) of a UNet stage,
    made in this order so every stage's random draws stay where they were."""
    import torch

    from .build import fresh_components

    start, gen, rng = time.perf_counter(), torch.Generator().manual_seed(r.seed), np.random.default_rng(r.seed)
    _, _, latents = _vae_and_latents(run, r)
    _, scenes = run.pool(r.pool, TRAIN_WORLD)
    return start, gen, rng, latents, scenes, fresh_components(family, r.seed)


def train_toy_xl(run, r):
    """SDXL layout: UNet + G together, CLIP-L frozen; dropped captions are zeros (force_zeros_for_empty_prompt)."""
    import torch

    from ..export import open_clip_to_ldm, unet_to_ldm

    start, gen, rng, latents, scenes, parts = _stage_start(run, r, "toy-xl")
    unet, te_g = parts["unet"].to(run.device), parts["text_encoder_2"].to(run.device)
    te_l = load_text_encoder(run.out, "toy", "text_encoder", "clip_l.safetensors", CLIP_L_SD1, run.device)
    tokens = (Tokens(parts["tokenizer"]), Tokens(parts["tokenizer_2"]))
    scheduler = noise_scheduler("toy-xl")
    batches = index_stream(len(latents), r.batch, gen)

    def loss_fn(step):
        idx = next(batches)
        u = torch.rand(len(idx), generator=gen)
        keep, zero = u >= r.dropout, u < r.dropout * (1 - r.null_text)  # (B,) each; the rest: ""
        prompts = captions([scenes[i] for i in idx], rng, keep.tolist())
        with torch.no_grad():
            hidden_l, _ = encode_xl([te_l], [tokens[0](prompts)])  # (B, 77, 64), frozen
        hidden_g, pooled = encode_xl([te_g], [tokens[1](prompts)])  # (B, 77, 96), (B, 96)
        text = torch.cat([hidden_l, hidden_g], dim=-1)  # (B, 77, 160)
        on = (~zero).float().to(run.device)  # (B,)
        return diffusion_loss(unet, scheduler, latents[idx.to(latents.device)], gen, r.t_max,
                              encoder_hidden_states=text * on[:, None, None],
                              added_cond_kwargs={"text_embeds": pooled * on[:, None],  # (B, 96)
                                                 "time_ids": xl_time_ids(len(idx)).to(run.device)})

    losses = fit([(unet, r.lr), (te_g, r.te_lr)], loss_fn, r, "toy-xl", run.progress)
    save_part(run.out / "clip_g.safetensors", open_clip_to_ldm(te_g, CLIP_G_XL), CLIP_G_XL)
    save_part(run.out / "unet_toy_xl.safetensors", unet_to_ldm(unet), UNET_PREFIX)
    return _finish(run, "toy-xl", r, losses, start)


def train_refiner(run, r):
    """SDXL refiner layout: UNet only, low-noise timesteps, G frozen; dropped captions are "" at aesthetic 2.5."""
    import torch

    from ..export import unet_to_ldm

    start, gen, rng, latents, scenes, parts = _stage_start(run, r, "toy-xl-refiner")
    unet = parts["unet"].to(run.device)
    te_g = load_text_encoder(run.out, "toy-xl", "text_encoder_2", "clip_g.safetensors", CLIP_G_XL, run.device)
    tokens, scheduler = Tokens(parts["tokenizer_2"]), noise_scheduler("toy-xl-refiner")
    batches = index_stream(len(latents), r.batch, gen)

    def loss_fn(step):
        idx = next(batches)
        keep = torch.rand(len(idx), generator=gen) >= r.dropout  # (B,)
        with torch.no_grad():
            text, pooled = encode_xl([te_g], [tokens(captions([scenes[i] for i in idx], rng, keep.tolist()))])
        return diffusion_loss(unet, scheduler, latents[idx.to(latents.device)], gen, r.t_max,
                              encoder_hidden_states=text,  # (B, 77, 96)
                              added_cond_kwargs={"text_embeds": pooled,  # (B, 96)
                                                 "time_ids": refiner_time_ids(keep).to(run.device)})

    losses = fit([(unet, r.lr)], loss_fn, r, "toy-xl-refiner", run.progress)
    save_part(run.out / "unet_toy_xl_refiner.safetensors", unet_to_ldm(unet), UNET_PREFIX)
    return _finish(run, "toy-xl-refiner", r, losses, start)


def inpaint_masks(scenes, object_masks, gen, full=0.25, objects=0.4):
    """Binary masks (B, 1, 64, 64): `full` whole-image, `objects` one object's grown silhouette, else a rectangle."""
    import torch

    b = len(scenes)
    u = torch.rand(b, generator=gen).tolist()
    which = torch.randint(0, 2, (b,), generator=gen).tolist()  # which object, when there are two
    box = torch.randint(8, 49, (b, 2), generator=gen)  # rectangle (w, h) in pixels
    corner = (torch.rand(b, 2, generator=gen) * (SIZE - box + 1)).long()  # (x0, y0)
    masks = torch.zeros(b, 1, SIZE, SIZE)
    for i, scene in enumerate(scenes):
        if u[i] < full:
            masks[i] = 1.0
        elif u[i] < full + objects:
            masks[i, 0] = object_masks[i, which[i] % len(scene.objects)].float()
        else:
            (x, y), (w, h) = corner[i].tolist(), box[i].tolist()
            masks[i, 0, y:y + h, x:x + w] = 1.0
    return masks


def train_inpaint(run, r):
    """9-channel UNet from toy's UNet: input cat([noisy latents, mask, masked-image latents]) as the SD inpaint
    pipeline builds it; CLIP-L frozen; dropped captions are ""."""
    import torch

    from ..export import unet_to_ldm
    from .build import fresh_components

    start, gen, rng = time.perf_counter(), torch.Generator().manual_seed(r.seed), np.random.default_rng(r.seed)
    vae, scale, latents = _vae_and_latents(run, r)
    images, scenes = run.pool(r.pool, TRAIN_WORLD)
    object_masks = torch.stack([torch.stack([torch.from_numpy(np.asarray(world.inpaint_mask(s, SIZE, i)) > 127)
                                             for i in (0, min(1, len(s.objects) - 1))])
                                for s in run.bar(scenes, "masks")])  # (N, 2, 64, 64) bool
    parts = fresh_components("toy", r.seed, in_channels=9)
    unet = inpaint_unet(parts["unet"], load_unet(run.out, "unet_toy.safetensors", "toy", "cpu")).to(run.device)
    te = load_text_encoder(run.out, "toy", "text_encoder", "clip_l.safetensors", CLIP_L_SD1, run.device)
    tokens, scheduler = Tokens(parts["tokenizer"]), noise_scheduler("toy")
    batches = index_stream(len(latents), r.batch, gen)

    def loss_fn(step):
        idx = next(batches)
        keep = (torch.rand(len(idx), generator=gen) >= r.dropout).tolist()
        masks = inpaint_masks([scenes[i] for i in idx], object_masks[idx], gen).to(run.device)  # (B, 1, 64, 64)
        extra = inpaint_extra(vae, to_unit(images[idx]).to(run.device), masks, scale, gen)  # (B, 5, 8, 8)
        with torch.no_grad():
            text = encode_sd(te, tokens(captions([scenes[i] for i in idx], rng, keep)))  # (B, 77, 64)
        return diffusion_loss(unet, scheduler, latents[idx.to(latents.device)], gen, r.t_max,
                              encoder_hidden_states=text, extra=extra)

    losses = fit([(unet, r.lr)], loss_fn, r, "toy-inpaint", run.progress)
    save_part(run.out / "unet_toy_inpaint.safetensors", unet_to_ldm(unet), UNET_PREFIX)
    return _finish(run, "toy-inpaint", r, losses, start)


def inpaint_unet(fresh, trained):
    """`fresh` (9 input channels) holding all of `trained`'s weights; conv_in's 5 extra input channels are zero."""
    import torch

    state = trained.state_dict()
    conv = state["conv_in.weight"]  # (C, 4, 3, 3)
    extra = torch.zeros(conv.shape[0], fresh.config.in_channels - conv.shape[1], *conv.shape[2:])  # (C, 5, 3, 3)
    state["conv_in.weight"] = torch.cat([conv, extra], dim=1)  # (C, 9, 3, 3)
    fresh.load_state_dict(state)
    return fresh


def _finish(run, stage, r, losses, start, **extra):
    record = _record(r, losses, start, run, inputs={f: run.input_hash(f)[:10] for f in STAGE_INPUTS[stage]},
                     **extra)
    write_log(run, stage, losses)
    write_record(run, stage, record)
    return record


TRAINERS = MappingProxyType({"vae": train_vae, "vae-decoder": train_vae_decoder, "toy": train_toy, "toy-xl": train_toy_xl,
                             "toy-xl-refiner": train_refiner, "toy-inpaint": train_inpaint})


def train(stage, run=None, **overrides):
    """Train one stage with its recipe (fields overridden by `overrides`); returns its record."""
    if stage not in TRAINERS:
        raise ValueError(f"Unknown stage {stage!r}; train one of {', '.join(STAGES)} or 'all'.")
    unknown = set(overrides) - {f.name for f in fields(Recipe)}
    if unknown:
        raise TypeError(f"Not recipe fields: {', '.join(sorted(unknown))}.")
    return TRAINERS[stage](run or Run(), replace(RECIPES[stage], **overrides))


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(prog="python -m labkit.toy.train",
                                     description="Train labkit's embedded models on the toy world.")
    parser.add_argument("stage", choices=(*STAGES, "all"), help="a stage, or all of them in order")
    for name, kind in (("steps", int), ("batch", int), ("seed", int), ("pool", int), ("lr", float)):
        parser.add_argument(f"--{name}", type=kind, help="override the recipe's value (every stage with 'all')")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="weights folder (default: the shipped one)")
    parser.add_argument("--logs", type=Path, help="loss logs folder (default: labkit/toy/logs, or OUT/logs)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1...")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Run(args.out, args.logs, args.device, progress=not args.quiet)
    overrides = {k: getattr(args, k) for k in ("steps", "batch", "seed", "pool", "lr") if getattr(args, k) is not None}
    for stage in STAGES if args.stage == "all" else (args.stage,):
        record = train(stage, run, **overrides)
        shown = {k: v for k, v in record.items() if k != "recipe"}
        print(f"{stage}: {json.dumps(shown)}", flush=True)


if __name__ == "__main__":
    main()
