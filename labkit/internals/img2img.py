"""img2img: strength picks where in the schedule the run starts.

labkit runs img2img as A1111 does (its default tool): build the full `steps`-step schedule, noise the image's
latents to the level of step `start_step(steps, strength)` (latents + noise * sigma there) and run the steps from
there: t_enc = int(min(strength, 0.999) * steps) and t_enc + 1 steps run, so strength 1.0 runs them all (and the
image still leaks in), strength 0.3 only the last 30 % plus one. (diffusers' own img2img pipeline runs int(steps
* strength) steps; ComfyUI runs all `steps` steps of a schedule int(steps / denoise) long: noise="comfy".)
"""


def start_step(steps: int, strength: float) -> int:
    """The first step index A1111's img2img runs: steps - t_enc - 1, t_enc = int(min(strength, 0.999) * steps)
    (modules/sd_samplers_common.setup_img2img_steps, KDiffusionSampler.sample_img2img)."""
    return steps - int(min(strength, 0.999) * steps) - 1


def expected_timesteps(lab, steps: int, strength: float, sampler: str = "Euler", schedule: str = "Automatic"):
    """The timesteps the formula predicts: the full schedule's `timesteps[start_step * order:]` (order 2 for
    Heun and DPM2, whose schedules list each inner point twice)."""
    from .schedules import scheduler_for

    scheduler = scheduler_for(lab, sampler, steps, schedule)
    return scheduler.timesteps[start_step(steps, strength) * scheduler.order:]


def timesteps_run(lab, steps: int, strength: float, sampler: str = "Euler", schedule: str = "Automatic",
                  image=None, seed: int = 0):
    """The timesteps the UNet is really called at during `lab.img2img` (observed with a forward hook), one per
    UNet call. `image` defaults to a plain grey picture of the model's native size."""
    import torch
    from PIL import Image

    unet = lab.components["unet"]
    if image is None:
        image = Image.new("RGB", (lab.native_size, lab.native_size), (128, 128, 128))
    seen = []

    def record(module, args, kwargs):
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        seen.append(torch.as_tensor(t).detach().cpu().reshape(-1)[0])

    hook = unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        lab.img2img(image, "", steps=steps, strength=strength, sampler=sampler, schedule=schedule, seed=seed)
    finally:
        hook.remove()
    return torch.stack(seen) if seen else torch.empty(0)
