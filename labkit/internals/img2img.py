"""img2img: strength picks where in the schedule the run starts.

The pipeline builds the full `steps`-step schedule, noises the image's latents to the level of the step
`start_step(steps, strength)` and runs only the steps from there: strength 1.0 runs them all (from pure noise),
strength 0.3 only the last 30%.
"""


def start_step(steps: int, strength: float) -> int:
    """The first step index the img2img pipeline runs (diffusers' `get_timesteps`):
    init_timestep = min(int(steps * strength), steps); t_start = max(steps - init_timestep, 0)."""
    init_timestep = min(int(steps * strength), steps)
    return max(steps - init_timestep, 0)


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
