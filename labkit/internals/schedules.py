"""Noise schedules: how much noise each training timestep holds, and which of those points a sampler visits.

The model's scheduler config (beta_start, beta_end, beta_schedule) fixes betas over the training timesteps;
everything else follows: alphas_cumprod = cumprod(1 - betas) is the share of signal variance left at t,
x_t = sqrt(a) x_0 + sqrt(1 - a) noise; sigma = sqrt((1 - a) / a) is the same point on the "x_0 + sigma noise"
scale the k-diffusion samplers use; SNR = a / (1 - a) = 1 / sigma^2.
"""


def _config(source) -> dict:
    """A scheduler config from a Lab, a scheduler, or a config dict."""
    if hasattr(source, "scheduler_config"):  # a Lab
        return dict(source.scheduler_config)
    return dict(getattr(source, "config", source))


def schedule_table(lab_or_scheduler_config) -> dict:
    """{timesteps, betas, alphas_cumprod, sigmas, snr, log_snr}: numpy arrays over the training timesteps.

    Betas come from diffusers' own schedule code (DDPMScheduler on the model's config: "scaled_linear",
    "linear", trained betas, zero-terminal-SNR rescaling all handled as the model's scheduler would).
    """
    import numpy as np
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(_config(lab_or_scheduler_config))
    betas = scheduler.betas.double().numpy()  # (T,)
    a = scheduler.alphas_cumprod.double().numpy()  # (T,)
    with np.errstate(divide="ignore"):
        return {"timesteps": np.arange(len(betas)), "betas": betas, "alphas_cumprod": a,
                "sigmas": np.sqrt((1 - a) / a), "snr": a / (1 - a), "log_snr": np.log(a) - np.log(1 - a)}


def forward_noise(lab, image, timesteps, seed: int = 0):
    """(PIL images of x_t decoded, one per t; noised latents (len(timesteps), C, h, w)).

    One noise draw (seeded) is mixed into the image's latents at each t with the scheduler's `add_noise`:
    x_t = sqrt(alphas_cumprod[t]) x_0 + sqrt(1 - alphas_cumprod[t]) noise.
    """
    import torch
    from diffusers import DDPMScheduler

    from .latents import decode, encode

    scheduler = DDPMScheduler.from_config(dict(lab.scheduler_config))
    x0 = encode(lab, image)  # (1, C, h, w)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(x0)  # (1, C, h, w)
    t = torch.as_tensor(list(timesteps), dtype=torch.long)  # (N,)
    n = len(t)
    noised = scheduler.add_noise(x0.expand(n, -1, -1, -1), noise.expand(n, -1, -1, -1), t)  # (N, C, h, w)
    return [decode(lab, x[None]) for x in noised], noised


def scheduler_for(lab, sampler: str, steps: int, schedule: str = "Automatic", noise: str = "a1111-cpu"):
    """The diffusers scheduler a txt2img run of `lab` uses for `sampler` / `schedule` (following the noise levels
    of `noise`'s tool, A1111 by default), with `steps` set."""
    scheduler = lab.scheduler(lab.params(sampler=sampler, schedule=schedule, steps=steps, noise=noise))
    scheduler.set_timesteps(steps)
    return scheduler


def sampler_sigmas(lab, sampler: str, schedule: str = "Automatic", steps: int = 20, noise: str = "a1111-cpu"):
    """The sigmas the sampler walks through (numpy, usually steps + 1 values ending at 0), as labkit runs it.

    Schedulers without a sigma list (DDIM, PLMS) get sigma = sqrt((1 - a_t) / a_t) at their timesteps, then
    the level where the run ends.
    """
    import numpy as np

    scheduler = scheduler_for(lab, sampler, steps, schedule, noise)
    plan = getattr(scheduler, "labkit_plan", None)
    if plan is not None:
        return plan.sigmas.double().cpu().numpy()
    if getattr(scheduler, "sigmas", None) is not None:
        return scheduler.sigmas.double().cpu().numpy()
    a = scheduler.alphas_cumprod.double()[scheduler.timesteps.long()].cpu().numpy()  # (steps,)
    return np.append(np.sqrt((1 - a) / a), 0.0)
