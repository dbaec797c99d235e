"""The `toy-xl` stage: the SDXL-layout UNet and the OpenCLIP-G-like encoder, trained together; CLIP-L frozen."""

from .data import index_stream
from .loop import diffusion_loss, noise_scheduler, optimise
from .parts import CLIP_G_XL, CLIP_L_SD1, UNET_PREFIX, load_text_encoder_part, save_part
from .run import finish_stage, unet_stage_start
from .text import Tokens, captions, encode_xl, xl_time_ids


def train_toy_xl(run, r):
    """SDXL layout: UNet + G together, CLIP-L frozen; dropped captions are zeros (force_zeros_for_empty_prompt),
    or "" for a share r.null_text of them."""
    import torch

    from ...export import open_clip_to_ldm, unet_to_ldm

    start, gen, rng, latents, scenes, parts = unet_stage_start(run, r, "toy-xl")
    unet, te_g = parts["unet"].to(run.device), parts["text_encoder_2"].to(run.device)
    te_l = load_text_encoder_part(run.out, "toy", "text_encoder", "clip_l.safetensors", CLIP_L_SD1, run.device)
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

    losses = optimise([(unet, r.lr), (te_g, r.te_lr)], loss_fn, r, "toy-xl", run.progress)
    save_part(run.out / "clip_g.safetensors", open_clip_to_ldm(te_g, CLIP_G_XL), CLIP_G_XL)
    save_part(run.out / "unet_toy_xl.safetensors", unet_to_ldm(unet), UNET_PREFIX)
    return finish_stage(run, "toy-xl", r, losses, start)
