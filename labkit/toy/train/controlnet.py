"""The `toy-controlnet` stage: a ControlNet for `toy` that follows Canny edge maps of the toy world's pictures.

It starts as ControlNet does: a copy of toy's UNet encoder (down blocks and middle block) with zero convolutions
on every residual, so at step 0 it changes nothing. The UNet and CLIP-L stay frozen; only the ControlNet learns.
The controls are the extension's own `canny` preprocessor (labkit.controlnet.preprocess) on the pool pictures:
mostly at the pictures' own size (what "pixel perfect" gives), some at A1111's default processor resolution (512)
scaled back down, so both kinds of map work. A third of the captions are dropped, so the shape comes from the
edges and the color from the prompt.
"""


import numpy as np

from .data import index_stream
from .loop import noise_scheduler, optimise
from .parts import CLIP_L_SD1, load_text_encoder_part, load_unet_part
from .recipe import SIZE, TRAIN_WORLD
from .run import finish_stage, unet_stage_start
from .text import Tokens, captions, encode_sd

FILE = "toy-controlnet.safetensors"  # in the weights folder; `lab.controlnets.load("toy-controlnet")` finds it
EMBEDDING_CHANNELS = (16, 16, 32, 32)  # the hint encoder: 64 px -> 8 latent px in three stride-2 convolutions
FULL_RES_SHARE = 0.3  # share of controls made at the processor resolution 512 and scaled down (soft edges)
PROCESSOR_RES = 512


def edge_controls(images, res: int | None = None):
    """(N, 3, 64, 64) float32 in [0, 1]: Canny maps (100 / 200) of uint8 pictures (N, 3, 64, 64), computed at
    `res` (the picture scaled up with cubic interpolation, the map scaled back down with area averaging) or, with
    None, at the pictures' own size."""
    import cv2
    import torch

    from ...controlnet.preprocess import canny

    maps = []
    for picture in images.permute(0, 2, 3, 1).numpy():  # (64, 64, 3) uint8
        if res is None:
            maps.append(canny(picture))
        else:
            big = canny(cv2.resize(picture, (res, res), interpolation=cv2.INTER_CUBIC))
            maps.append(cv2.resize(big, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(maps)).permute(0, 3, 1, 2).float() / 255.0


def train_controlnet(run, r):
    """ControlNet from toy's UNet: frozen UNet + CLIP-L, epsilon MSE through the UNet with the residuals added."""
    import torch
    import torch.nn.functional as F
    from diffusers import ControlNetModel

    from ...controlnet.export import controlnet_to_ldm
    from ...files import save_safetensors

    start, gen, rng, latents, scenes, parts = unet_stage_start(run, r, "toy")
    images, _ = run.pool(r.pool, TRAIN_WORLD)
    unet = load_unet_part(run.out, "unet_toy.safetensors", "toy", run.device)
    te = load_text_encoder_part(run.out, "toy", "text_encoder", "clip_l.safetensors", CLIP_L_SD1, run.device)
    torch.manual_seed(r.seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=EMBEDDING_CHANNELS).to(run.device)
    controlnet.requires_grad_(True)
    sharp, soft = edge_controls(images), edge_controls(images, PROCESSOR_RES)  # (N, 3, 64, 64) each
    tokens, scheduler = Tokens(parts["tokenizer"]), noise_scheduler("toy")
    batches = index_stream(len(latents), r.batch, gen)

    def loss_fn(step):
        idx = next(batches)
        keep = (torch.rand(len(idx), generator=gen) >= r.dropout).tolist()
        use_soft = (torch.rand(len(idx), 1, 1, 1, generator=gen) < FULL_RES_SHARE).float()
        control = (sharp[idx] * (1 - use_soft) + soft[idx] * use_soft).to(run.device)  # (B, 3, 64, 64)
        with torch.no_grad():
            text = encode_sd(te, tokens(captions([scenes[i] for i in idx], rng, keep)))  # (B, 77, 64)
        clean = latents[idx.to(latents.device)]
        noise = torch.randn(clean.shape, generator=gen).to(run.device)  # (B, 4, 8, 8)
        t = torch.randint(0, r.t_max, (len(idx),), generator=gen).to(run.device)
        noisy = scheduler.add_noise(clean, noise, t)
        down, mid = controlnet(noisy, t, encoder_hidden_states=text, controlnet_cond=control, return_dict=False)
        predicted = unet(noisy, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid).sample
        return F.mse_loss(predicted, noise)

    losses = optimise([(controlnet, r.lr)], loss_fn, r, "toy-controlnet", run.progress)
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in controlnet_to_ldm(controlnet).items()}
    # one metadata entry: safetensors writes several in a random order, and the file must be byte-reproducible
    save_safetensors(tensors, run.out / FILE, metadata={"labkit.controlnet": "toy, canny"})
    return finish_stage(run, "toy-controlnet", r, losses, start)
