"""The sampling loop by hand: what diffusers' txt2img pipelines do, in a dozen readable lines.

`sample` gives the same latents as `lab.txt2img` (checked by `pipeline_latents` and the tests): the same prompt
embeddings (labkit's A1111-style encoding), the same float32 initial noise (labkit.noise) started as the chosen
tool starts it, the same scheduler following the same tool's noise levels (`lab.scheduler`), and per step:
scale the input, run the UNet on [negative, positive], mix with the guidance scale, let the scheduler step. LoRAs
are not applied here; load none (or compare without them).
"""

from ..noise import draw, generators
from ..prompts import encode_schedule
from ..sampling.start import first_latents
from ..steps import sampler_step


def prompt_embeddings(lab, prompt: str, negative_prompt: str = "", steps: int = 20, clip_skip: int = 1) -> list:
    """The embeddings dict for each step (prompt schedules can change them), exactly as Lab encodes them."""
    zeros = lab.config_flags.get("force_zeros_for_empty_prompt", False)  # SDXL: an empty negative is zeros
    return encode_schedule(lab, prompt, negative_prompt, steps=steps, clip_skip=clip_skip, zero_empty_negative=zeros)


def unet_inputs(lab, embeds: dict, guided: bool, width: int, height: int) -> dict:
    """The UNet's conditioning for one step: text embeddings (negative first under CFG), and for SDXL the pooled
    text embedding and the size "time ids" (original size, crop corner, target size), as the pipeline builds."""
    import torch

    both = (lambda key: torch.cat([embeds["negative_" + key], embeds[key]])) if guided else (lambda key: embeds[key])
    inputs = {"encoder_hidden_states": both("prompt_embeds")}  # (2, 77k, width) under CFG
    if "pooled_prompt_embeds" in embeds:
        text = inputs["encoder_hidden_states"]
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=text.dtype, device=text.device)
        inputs["added_cond_kwargs"] = {"text_embeds": both("pooled_prompt_embeds"),  # (2, proj)
                                       "time_ids": time_ids.repeat(len(text), 1)}  # (2, 6)
    return inputs


def sample(lab, prompt: str, negative_prompt: str = "", steps: int = 20, cfg: float = 7.0, seed: int = 0,
           sampler: str = "Euler", schedule: str = "Automatic", width: int | None = None, height: int | None = None,
           on_step=None, clip_skip: int = 1, generator=None, noise: str = "a1111-cpu"):
    """Final latents (1, C, height/8, width/8) of txt2img, computed by a hand-written loop.

    `on_step(i, total, latents)` is called after each step, as Lab's. As in Lab, the seed's generator first
    draws the initial noise and then feeds ancestral and SDE samplers their step noise; pass `generator` to
    use another one for the step noise. `noise` picks the tool whose start and noise levels are followed.
    """
    import torch

    unet = lab.components["unet"]
    width, height = width or lab.native_size, height or lab.native_size
    conds = prompt_embeddings(lab, prompt, negative_prompt, steps, clip_skip)
    p = lab.params(steps=steps, cfg=cfg, seed=seed, sampler=sampler, schedule=schedule, noise=noise)
    scheduler = lab.scheduler(p)  # the tool's noise levels and timesteps in a diffusers scheduler
    shape = (lab.components["vae"].config.latent_channels, height // lab.vae_scale, width // lab.vae_scale)
    gens = generators(seed, 1, noise)
    unit = draw(gens, 1, shape)  # (1, 4, h, w): labkit's float32 noise
    latents = first_latents(scheduler, p, unit).to(unet.device, unet.dtype)  # A1111 Euler: unit * sigma_max
    scheduler.set_timesteps(steps, device=unet.device)
    generator = gens if generator is None else generator
    guided = cfg > 1
    extra = {"generator": generator} if "generator" in _step_args(scheduler) else {}
    total = len(scheduler.timesteps)
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            inputs = unet_inputs(lab, conds[min(sampler_step(scheduler, i), steps - 1)], guided, width, height)
            x = torch.cat([latents] * 2) if guided else latents  # (2, 4, h, w): negative, positive
            x = scheduler.scale_model_input(x, t)  # Euler-like: x / sqrt(sigma^2 + 1)
            eps = unet(x, t, **inputs).sample  # (2, 4, h, w) predicted noise
            if guided:
                eps_uncond, eps_text = eps.chunk(2)  # (1, 4, h, w) each
                eps = eps_uncond + cfg * (eps_text - eps_uncond)
            latents = scheduler.step(eps, t, latents, **extra).prev_sample  # (1, 4, h, w)
            if on_step is not None:
                on_step(i, total, latents)
    return latents


def _step_args(scheduler) -> set:
    import inspect

    return set(inspect.signature(scheduler.step).parameters)


def pipeline_latents(lab, prompt: str, negative_prompt: str = "", steps: int = 20, cfg: float = 7.0, seed: int = 0,
                     sampler: str = "Euler", schedule: str = "Automatic", width: int | None = None,
                     height: int | None = None, clip_skip: int = 1):
    """The final latents (1, C, h, w) of `lab.txt2img` with the same settings, caught by its per-step callback."""
    caught = {}

    def catch(step, total, latents):
        caught["latents"] = latents.detach().clone()

    lab.txt2img(prompt, negative_prompt=negative_prompt, steps=steps, cfg=cfg, seed=seed, sampler=sampler,
                schedule=schedule, width=width, height=height, clip_skip=clip_skip, noise="a1111-cpu",
                on_step=catch)
    return caught["latents"]


def image_from(lab, latents):
    """The PIL image of latents (1, C, h, w), decoded as the pipeline decodes."""
    from .latents import decode

    return decode(lab, latents)
