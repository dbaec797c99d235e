"""The `vae` and `vae-decoder` stages: the AutoencoderKL every toy member shares, then its decoder alone."""

import time

from .data import encode_images, index_stream, to_unit
from .loop import optimise
from .parts import VAE_PART, VAE_PREFIX, load_vae_part, save_part
from .recipe import HELD_OUT_WORLD, TRAIN_WORLD, VAE_STYLES
from .run import finish_stage, require_vae, stage_record, write_log, write_record


def train_vae(run, r):
    """AutoencoderKL: L1 + MSE reconstruction of a posterior sample + a tiny KL; then scaling factor and PSNR.

    Into the shipped weights folder, the toy config folders are then rewritten with the new scaling factor."""
    import torch

    from ...export import vae_to_ldm
    from ..build import fresh_components

    start, gen = time.perf_counter(), torch.Generator().manual_seed(r.seed)
    vae = fresh_components("toy", r.seed)["vae"].to(run.device)
    images, _ = run.pool(r.pool, TRAIN_WORLD, VAE_STYLES)
    batches = index_stream(len(images), r.batch, gen)

    def loss_fn(step):
        x = to_unit(images[next(batches)]).to(run.device)  # (B, 3, 64, 64)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample  # (B, 3, 64, 64)
        return reconstruction_loss(recon, x, r) + r.kl * posterior.kl().mean()

    losses = optimise([(vae, r.lr)], loss_fn, r, "vae", run.progress)
    save_part(run.out / VAE_PART[0], vae_to_ldm(vae), VAE_PREFIX)
    vae = load_vae_part(run.out, run.device)  # measure what ships
    scale = scaling_factor(encode_images(vae, images[:r.scale_images], 1.0, run.device))
    held_out, _ = run.pool(r.eval_images, HELD_OUT_WORLD, VAE_STYLES)
    record = stage_record(r, losses, start, run, scaling_factor=scale, psnr=psnr(vae, held_out, run.device))
    write_log(run, "vae", losses)
    write_record(run, "vae", record)
    if run.update_configs:  # the configs read the scaling factor from the record just written
        from ...configs import make_configs

        make_configs.write_configs(weights=run.out)
    return record


def train_vae_decoder(run, r):
    """The VAE's decoder (and post_quant_conv) alone, on the VAE's own pool (every style) with gray backgrounds
    drawn r.gray_weight times as often: thin outlines and stripes on gray are the faintest strokes the VAE draws.
    The encoder is frozen, so every latent, the scaling factor and every UNet trained on them stay valid."""
    import torch
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from ...export import vae_to_ldm

    require_vae(run)
    start, gen = time.perf_counter(), torch.Generator().manual_seed(r.seed)
    vae = load_vae_part(run.out, run.device)
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

    losses = optimise([(decoder, r.lr)], loss_fn, r, "vae-decoder", run.progress)
    save_part(run.out / VAE_PART[0], vae_to_ldm(vae), VAE_PREFIX)
    held_out, _ = run.pool(r.eval_images, HELD_OUT_WORLD, VAE_STYLES)
    return finish_stage(run, "vae-decoder", r, losses, start,
                        psnr=psnr(load_vae_part(run.out, run.device), held_out, run.device))


def reconstruction_loss(recon, x, r):
    """The VAE stages' pixel loss: L1 + r.mse * MSE."""
    import torch.nn.functional as F

    return F.l1_loss(recon, x) + r.mse * F.mse_loss(recon, x)


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
