"""The optimisation loop every stage shares, and the diffusion objective of the UNet stages."""

import json

import numpy as np

from ...families import FAMILIES


def param_groups(module, lr, weight_decay):
    """AdamW groups: decay on weight matrices and kernels; none on biases, norms and embedding tables."""
    import torch

    tables = {id(p) for m in module.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2 and id(p) not in tables]
    rest = [p for p in params if not (p.ndim >= 2 and id(p) not in tables)]
    return [{"params": decay, "lr": lr, "weight_decay": weight_decay}, {"params": rest, "lr": lr, "weight_decay": 0.0}]


def optimise(trained, loss_fn, r, desc, progress=True):
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

    config = json.loads((FAMILIES[family].config / "scheduler" / "scheduler_config.json").read_text())
    keep = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
    return DDPMScheduler.from_config({k: config[k] for k in keep if k in config})
