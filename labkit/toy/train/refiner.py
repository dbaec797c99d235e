"""The `toy-xl-refiner` stage: the SDXL-refiner-layout UNet on the low-noise end; toy-xl's G frozen."""

from .data import index_stream
from .loop import diffusion_loss, noise_scheduler, optimise
from .parts import CLIP_G_XL, UNET_PREFIX, load_text_encoder_part, save_part
from .run import finish_stage, unet_stage_start
from .text import Tokens, captions, encode_xl, refiner_time_ids


def train_refiner(run, r):
    """SDXL refiner layout: UNet only, low-noise timesteps, G frozen; dropped captions are "" at aesthetic 2.5."""
    import torch

    from ...export import unet_to_ldm

    start, gen, rng, latents, scenes, parts = unet_stage_start(run, r, "toy-xl-refiner")
    unet = parts["unet"].to(run.device)
    te_g = load_text_encoder_part(run.out, "toy-xl", "text_encoder_2", "clip_g.safetensors", CLIP_G_XL, run.device)
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

    losses = optimise([(unet, r.lr)], loss_fn, r, "toy-xl-refiner", run.progress)
    save_part(run.out / "unet_toy_xl_refiner.safetensors", unet_to_ldm(unet), UNET_PREFIX)
    return finish_stage(run, "toy-xl-refiner", r, losses, start)
