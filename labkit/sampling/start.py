"""How a Lab's run starts: the scheduler following the tool's plan, and the latents the sampling loop begins with.

`scheduler_for` builds the diffusers scheduler of an A1111 sampler name and, where labkit can make that scheduler
follow a plan (`fit.FITTERS`), installs the plan of the run's tool (its noise mode). `first_latents` turns
labkit's float32 unit noise (and, for img2img, the picture's latents) into the tool's starting point, in the
scheduler's space; the pipeline is given that divided by `init_noise_sigma`, which it multiplies back.
Samplers labkit cannot fit (DPM++ SDE, DPM2 a, LCM) keep diffusers' schedule and get only the tool's start.
"""

import math

from . import fit
from .plan import plan, tool_of
from .sigmas import training_levels

COMFY_RUNS_AS = {"DDIM": "Euler"}  # ComfyUI's "ddim" sampler is Euler on the chosen schedule
NO_PLAN = {"comfy": ("PLMS",)}  # samplers a tool does not have: diffusers' own schedule
PLANNED_MODES = ("txt2img", "img2img")  # inpaint follows the plan only when it starts from pure noise; a
# refiner finishing a base's run ("txt2img") follows the base's plan from where the base stopped


def scheduler_for(lab, p, mode: str = "txt2img", fixed_steps: bool = False):
    """The scheduler of `p`'s sampler for `lab`, following the plan of `p.noise`'s tool where it can
    (`fixed_steps`: img2img running exactly p.steps steps, as hires fix does: `plan.plan`)."""
    from ..noise import batch_seeds
    from ..samplers import SAMPLERS, canonical, make_scheduler

    tool, (sampler, schedule) = tool_of(p.noise), canonical(p.sampler, p.schedule)
    runs_as = COMFY_RUNS_AS.get(sampler, sampler) if tool == "comfy" else sampler
    wanted = mode in PLANNED_MODES or mode == "inpaint" and p.strength == 1.0
    if lab.layout == "refiner" and mode != "txt2img":  # a refiner's own img2img runs diffusers' img2img pipeline
        wanted = False
    followable = SAMPLERS[runs_as][0] in fit.FITTERS  # the diffusers class labkit can make follow a plan
    scheduler = make_scheduler(runs_as, schedule, lab.scheduler_config, eta=p.eta, planned=wanted and followable)
    if "noise_sampler_seed" in scheduler.config:  # SDE samplers: Brownian noise seeded from the images' seeds
        seeds = batch_seeds(p.seed, p.batch_size, p.noise)
        scheduler = type(scheduler).from_config(scheduler.config, noise_sampler_seed=seeds)
    if wanted and fit.follows(scheduler) and sampler not in NO_PLAN.get(tool, ()):
        run = plan(tool, sampler, schedule, p.steps, training_levels(lab.scheduler_config, tool),
                   img2img=mode == "img2img", strength=p.strength, sgm=p.sgm_noise_multiplier,
                   fixed_steps=fixed_steps)
        fit.install(scheduler, run)
    return scheduler


def first_latents(scheduler, p, noise, image_latents=None):
    """The latents the sampling loop starts from, in the scheduler's space: (B, C, h, w).

    noise * the plan's start factor (VE), plus the picture's latents for img2img, as the tool starts it; in a VP
    scheduler divided by sqrt(1 + sigma^2). Without a plan: diffusers' own schedule, started as the tool would."""
    run = getattr(scheduler, "labkit_plan", None)
    if run is None:
        scheduler.set_timesteps(p.steps)
        x = noise * float(scheduler.init_noise_sigma)
        if type(scheduler).__name__ not in fit.VP_SCHEDULERS and (tool_of(p.noise) == "comfy" or
                                                                  p.sgm_noise_multiplier):
            sigma_0 = float(scheduler.sigmas[0])  # the tool starts at sqrt(1 + sigma^2), diffusers at sigma
            x = x / float(scheduler.init_noise_sigma) * math.sqrt(1 + sigma_0 ** 2)
        return x
    x = noise * run.start if image_latents is None else image_latents + noise * run.start  # (B, C, h, w), VE
    scheduler.set_timesteps(run.steps)
    vp = type(scheduler).__name__ in fit.VP_SCHEDULERS
    return x / math.sqrt(1 + run.start_sigma ** 2) if vp else x


def pipeline_latents(scheduler, latents):
    """What a diffusers pipeline must be given as `latents=` to start from `latents` (it multiplies them by
    `init_noise_sigma`)."""
    return latents / scheduler.init_noise_sigma
