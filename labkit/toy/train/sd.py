"""The `toy` stage: the SD1-layout UNet and CLIP-L, trained together on the frozen VAE's latents."""

from .data import index_stream
from .loop import diffusion_loss, noise_scheduler, optimise
from .parts import CLIP_L_SD1, UNET_PREFIX, save_part
from .run import finish_stage, unet_stage_start
from .text import Tokens, captions, encode_sd


def train_toy(run, r):
    """SD1 layout: UNet + CLIP-L together; dropped captions are "" (what SD pipelines encode as the negative)."""
    import torch

    from ...export import clip_to_ldm, unet_to_ldm

    start, gen, rng, latents, scenes, parts = unet_stage_start(run, r, "toy")
    unet, te = parts["unet"].to(run.device), parts["text_encoder"].to(run.device)
    tokens, scheduler = Tokens(parts["tokenizer"]), noise_scheduler("toy")
    batches = index_stream(len(latents), r.batch, gen)

    def loss_fn(step):
        idx = next(batches)
        keep = (torch.rand(len(idx), generator=gen) >= r.dropout).tolist()
        text = encode_sd(te, tokens(captions([scenes[i] for i in idx], rng, keep)))  # (B, 77, 64)
        return diffusion_loss(unet, scheduler, latents[idx.to(latents.device)], gen, r.t_max,
                              encoder_hidden_states=text)

    losses = optimise([(unet, r.lr), (te, r.te_lr)], loss_fn, r, "toy", run.progress)
    save_part(run.out / "clip_l.safetensors", clip_to_ldm(te, CLIP_L_SD1), CLIP_L_SD1)
    save_part(run.out / "unet_toy.safetensors", unet_to_ldm(unet), UNET_PREFIX)
    return finish_stage(run, "toy", r, losses, start)
