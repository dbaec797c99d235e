"""Make a diffusers scheduler follow a sampling plan: the tool's sigmas, UNet timesteps and starting latent.

diffusers' schedulers build their own noise levels in `set_timesteps`; the samplers' update rules are the same as
k-diffusion's (checked against the tools in tests/sampling/test_parity.py), so labkit lets a scheduler build its
state for the plan's step count and then writes the plan's arrays into it, in the layout that scheduler keeps
(Heun and DPM2 interleave a second evaluation per step). The wrapper stays on the scheduler object labkit made
for the run; the class and its config are untouched, so `samplers.a1111_name` still reads the scheduler.

Schedulers work on one of two latents: VE (x = x0 + sigma * eps: the Euler family) or VP (x / sqrt(1 + sigma^2):
DPM-Solver, DDIM, PNDM, UniPC); `labkit.sampling.start` converts the plan's VE start.
"""

from .plan import Plan

VP_SCHEDULERS = ("DPMSolverMultistepScheduler", "DDIMScheduler", "PNDMScheduler", "UniPCMultistepScheduler",
                 "LCMScheduler")


def interleave(first, rest):
    """[a0, a1, a1, a2, a2, ...]: Heun's and DPM2's layout, one entry per UNet call."""
    import torch

    return torch.cat([first[:1], rest.repeat_interleave(2)])


def euler_like(scheduler, plan: Plan, device):
    """Euler, Euler a, LMS: one sigma and one timestep per step."""
    scheduler.sigmas = plan.sigmas.clone()
    scheduler.timesteps = plan.timesteps.to(device)


def heun(scheduler, plan: Plan, device):
    """Heun: every step but the last evaluates again at the next sigma (k-diffusion: Euler into sigma 0)."""
    import torch

    sigmas, timesteps = plan.sigmas, plan.timesteps
    scheduler.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
    scheduler.timesteps = interleave(timesteps, timesteps[1:]).to(device)


def dpm2(scheduler, plan: Plan, device):
    """DPM2: a second evaluation at the geometric midpoint of each step (none into sigma 0)."""
    import torch

    from .sigmas import nearest_t, sigma_to_t

    sigmas = plan.sigmas
    mid = sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp()  # mid[i]: between sigma i-1 and sigma i
    rule = sigma_to_t if plan.tool == "a1111" else nearest_t
    t_mid = rule(plan.levels, mid[1:-1])
    scheduler.sigmas = torch.cat([sigmas[:1], sigmas[1:].repeat_interleave(2), sigmas[-1:]])
    scheduler.sigmas_interpol = torch.cat([mid[:1], mid[1:].repeat_interleave(2), mid[-1:]])
    pairs = torch.stack([t_mid, plan.timesteps[1:]], dim=-1).flatten()
    scheduler.timesteps = torch.cat([plan.timesteps[:1], pairs]).to(device)


def multistep(scheduler, plan: Plan, device):
    """DPM-Solver++ and UniPC: sigmas (the last the end) and one timestep per step; their solvers read sigma."""
    scheduler.sigmas = plan.sigmas.clone()
    scheduler.timesteps = plan.timesteps.to(device)
    scheduler.num_inference_steps = plan.steps


def grid(scheduler, plan: Plan, device):
    """DDIM: A1111's integer grid; each step goes from t to t - stride, so the run ends at t = 1."""
    scheduler.timesteps = plan.timesteps.long().to(device)
    scheduler.num_inference_steps = stride_steps(scheduler, plan)


def plms(scheduler, plan: Plan, device):
    """PLMS: A1111's grid, its second timestep repeated (PNDM's pseudo improved Euler start runs it twice)."""
    import torch

    t = plan.timesteps.long()
    scheduler.timesteps = torch.cat([t[:1], t[1:2], t[1:]]).to(device)
    scheduler.num_inference_steps = stride_steps(scheduler, plan)


def stride_steps(scheduler, plan: Plan) -> int:
    """The step count whose stride (num_train_timesteps // steps) is the grid's: DDIM and PNDM step from t to
    t - stride, and A1111's grid ends at t = 1, one stride below its last UNet call. (Where A1111 caps its top
    timestep at 999 the first stride is shorter: that one step differs.)"""
    stride = int(plan.timesteps[-1]) - 1 if plan.steps else 0
    return scheduler.config.num_train_timesteps // stride if stride > 0 else scheduler.num_inference_steps


FITTERS = {
    "EulerDiscreteScheduler": euler_like,
    "EulerAncestralDiscreteScheduler": euler_like,
    "LMSDiscreteScheduler": euler_like,
    "HeunDiscreteScheduler": heun,
    "KDPM2DiscreteScheduler": dpm2,
    "DPMSolverMultistepScheduler": multistep,
    "UniPCMultistepScheduler": multistep,
    "DDIMScheduler": grid,
    "PNDMScheduler": plms,
}


def follows(scheduler) -> bool:
    """Whether labkit can make this scheduler follow a plan (the others keep diffusers' own schedule)."""
    return type(scheduler).__name__ in FITTERS


def install(scheduler, plan: Plan) -> None:
    """Make `scheduler` take `plan`'s sigmas and timesteps whenever a pipeline calls its `set_timesteps`."""
    fitter = FITTERS[type(scheduler).__name__]
    original = scheduler.set_timesteps

    def set_timesteps(num_inference_steps=None, device=None, **kwargs):
        original(plan.steps, device=device)
        fitter(scheduler, plan, device)
        if hasattr(scheduler, "set_begin_index"):  # the first step is the first entry, even where timesteps repeat
            scheduler.set_begin_index(0)

    scheduler.set_timesteps = set_timesteps
    scheduler.labkit_plan = plan
    if plan.denoise_last:
        denoise_last_step(scheduler, plan)


def denoise_last_step(scheduler, plan: Plan) -> None:
    """ComfyUI's LMS ends with the denoised prediction instead of integrating into sigma 0: the last `step`
    returns its `pred_original_sample` as the new sample."""
    original = scheduler.step

    def step(model_output, timestep, sample, *args, return_dict=True, **kwargs):
        out = original(model_output, timestep, sample, *args, return_dict=True, **kwargs)
        if scheduler.step_index == plan.steps:  # step_index has moved past the last step
            out.prev_sample = out.pred_original_sample.to(out.prev_sample.dtype)
        return out if return_dict else (out.prev_sample,)

    scheduler.step = step
