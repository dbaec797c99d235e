"""The `toy-inpaint` stage: a 9-channel UNet started from toy's, fed its extra channels as the SD inpainting
pipeline builds them (mask, masked-picture latents); CLIP-L frozen."""

import time

import numpy as np

from .. import world
from .data import index_stream, to_unit
from .loop import diffusion_loss, noise_scheduler, optimise
from .parts import CLIP_L_SD1, UNET_PREFIX, load_text_encoder_part, load_unet_part, save_part
from .recipe import SIZE, TRAIN_WORLD
from .run import finish_stage, vae_and_latents
from .text import Tokens, captions, encode_sd


def train_inpaint(run, r):
    """9-channel UNet from toy's UNet: input cat([noisy latents, mask, masked-image latents]) as the SD inpaint
    pipeline builds it; CLIP-L frozen; dropped captions are ""."""
    import torch

    from ...export import unet_to_ldm
    from ..build import fresh_components

    start, gen, rng = time.perf_counter(), torch.Generator().manual_seed(r.seed), np.random.default_rng(r.seed)
    vae, scale, latents = vae_and_latents(run, r)
    images, scenes = run.pool(r.pool, TRAIN_WORLD)
    object_masks = torch.stack([torch.stack([torch.from_numpy(np.asarray(world.inpaint_mask(s, SIZE, i)) > 127)
                                             for i in (0, min(1, len(s.objects) - 1))])
                                for s in run.bar(scenes, "masks")])  # (N, 2, 64, 64) bool
    parts = fresh_components("toy", r.seed, in_channels=9)
    unet = inpaint_unet(parts["unet"], load_unet_part(run.out, "unet_toy.safetensors", "toy", "cpu")).to(run.device)
    te = load_text_encoder_part(run.out, "toy", "text_encoder", "clip_l.safetensors", CLIP_L_SD1, run.device)
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

    losses = optimise([(unet, r.lr)], loss_fn, r, "toy-inpaint", run.progress)
    save_part(run.out / "unet_toy_inpaint.safetensors", unet_to_ldm(unet), UNET_PREFIX)
    return finish_stage(run, "toy-inpaint", r, losses, start)


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


def inpaint_unet(fresh, trained):
    """`fresh` (9 input channels) holding all of `trained`'s weights; conv_in's 5 extra input channels are zero."""
    import torch

    state = trained.state_dict()
    conv = state["conv_in.weight"]  # (C, 4, 3, 3)
    extra = torch.zeros(conv.shape[0], fresh.config.in_channels - conv.shape[1], *conv.shape[2:])  # (C, 5, 3, 3)
    state["conv_in.weight"] = torch.cat([conv, extra], dim=1)  # (C, 9, 3, 3)
    fresh.load_state_dict(state)
    return fresh
