"""The `toy-upscaler` stage: a 2x upscaler for the toy world, in spandrel's Compact (SRVGGNetCompact) layout.

Real-ESRGAN's Compact network (convolutions with PReLU, a pixel shuffle, plus the input scaled up by nearest
neighbour) is the smallest architecture A1111, ComfyUI and spandrel all load. It learns to turn toy pictures at
64 px into the same scenes rendered at 128 px (mean squared error: what PSNR scores). Random flips, quarter turns
and RGB/BGR swaps make it follow neither orientation nor channel order (A1111 feeds BGR, ComfyUI RGB). Trained on
32 px patches of clean renderings (a first try that also trained on VAE round trips, with L1 and weight EMA,
gained only 0.8 dB over Lanczos: labkit/toy/README.md); scored on held-out scenes against PIL's Lanczos, and on
their VAE round trips (what a hires fix first pass hands it).
"""

import time

import numpy as np

from .. import world
from .data import to_unit
from .loop import optimise
from .parts import load_vae_part
from .recipe import HELD_OUT_WORLD, TRAIN_WORLD
from .run import finish_stage, require_vae

FILE = "toy-upscaler.safetensors"  # in the weights folder; the upscaler registry lists it as "toy-upscaler"
SCALE, FEATURES, CONVS = 2, 32, 8  # Compact's upscale, num_feat, num_conv
LOW, PATCH = 64, 32  # picture side at the low resolution, training patch side (low resolution)
EVAL_SCENES = 200  # held-out scenes scored (fewer with a smaller pool: quick test runs)


def compact():
    """A fresh Compact network (labkit's upscaler library: spandrel)."""
    from ...upscalers.library import spandrel

    spandrel()
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=3, num_out_ch=3, num_feat=FEATURES, num_conv=CONVS, upscale=SCALE)


def scene_pairs(n, world_seed, run):
    """(low (n, 3, 64, 64), high (n, 3, 128, 128)) uint8 tensors of world scenes rendered at both sizes."""
    import torch

    lows, highs = [], []
    for i in run.bar(range(n), "render"):
        _, _, scene = world.example(world_seed, i, 8, {None: 0.5, "outlined": 0.25, "striped": 0.25})
        lows.append(np.asarray(scene.render(LOW)).transpose(2, 0, 1))
        highs.append(np.asarray(scene.render(LOW * SCALE)).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(lows)), torch.from_numpy(np.stack(highs))


def vae_round_trip(run, images):
    """uint8 (N, 3, 64, 64) pictures encoded and decoded by the toy VAE (latent means), as uint8."""
    import torch

    vae = load_vae_part(run.out, run.device)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            x = to_unit(images[start:start + 256]).to(run.device)
            y = vae.decode(vae.encode(x).latent_dist.mean).sample
            out.append(((y.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).cpu())  # truncated, as the pipelines make them
    return torch.cat(out)


def augment(low, high, gen):
    """The same random flip, quarter turn and channel order applied to a batch's two sides."""
    import torch

    turns = int(torch.randint(0, 4, (1,), generator=gen))
    low, high = torch.rot90(low, turns, (2, 3)), torch.rot90(high, turns, (2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        low, high = low.flip(3), high.flip(3)
    if torch.rand(1, generator=gen) < 0.5:
        low, high = low.flip(1), high.flip(1)  # RGB <-> BGR
    return low, high


def train_upscaler(run, r):
    """Mean squared error between the network's 2x picture and the scene rendered at 2x, on random aligned
    patches."""
    import torch
    import torch.nn.functional as F

    from ...files import save_safetensors

    require_vae(run)
    start, gen = time.perf_counter(), torch.Generator().manual_seed(r.seed)
    low, high = scene_pairs(r.pool, TRAIN_WORLD, run)
    torch.manual_seed(r.seed)
    net = compact().to(run.device)

    def loss_fn(step):
        idx = torch.randint(0, len(low), (r.batch,), generator=gen)
        y, x = (int(v) for v in torch.randint(0, LOW - PATCH + 1, (2,), generator=gen))
        lo = low[idx][:, :, y:y + PATCH, x:x + PATCH].float() / 255
        hi = high[idx][:, :, SCALE * y:SCALE * (y + PATCH), SCALE * x:SCALE * (x + PATCH)].float() / 255
        lo, hi = augment(lo, hi, gen)
        return F.mse_loss(net(lo.to(run.device)), hi.to(run.device))

    losses = optimise([(net, r.lr)], loss_fn, r, "toy-upscaler", run.progress)
    net = net.to("cpu", torch.float16).float()  # score what ships
    scores = held_out_scores(net, run, min(EVAL_SCENES, r.pool))
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
    save_safetensors(tensors, run.out / FILE, metadata={"labkit.upscaler": "toy, 2x"})
    return finish_stage(run, "toy-upscaler", r, losses, start, **scores)


def psnr(a, b) -> float:
    """PSNR in dB of two uint8 arrays of the same shape."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def held_out_scores(net, run, n=EVAL_SCENES) -> dict:
    """Mean PSNR (dB) against the 128 px renderings of held-out scenes: the network and Lanczos from the 64 px
    rendering, and the network from its VAE round trip."""
    import torch
    from PIL import Image

    low, high = scene_pairs(n, HELD_OUT_WORLD, run)
    trip = vae_round_trip(run, low)
    scores = {"psnr": [], "psnr_lanczos": [], "psnr_vae": [], "psnr_vae_lanczos": []}
    with torch.no_grad():
        for source, key in ((low, "psnr"), (trip, "psnr_vae")):
            out = net(source.float() / 255).clamp(0, 1).mul(255).round().to(torch.uint8)
            for i in range(n):
                scores[key].append(psnr(out[i], high[i]))
                picture = Image.fromarray(source[i].permute(1, 2, 0).numpy())
                big = np.asarray(picture.resize((LOW * SCALE,) * 2, Image.LANCZOS)).transpose(2, 0, 1)
                scores[key + "_lanczos"].append(psnr(big, high[i]))
    return {k: round(float(np.mean(v)), 3) for k, v in scores.items()}
