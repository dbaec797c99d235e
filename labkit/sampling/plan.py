"""A sampling plan: the noise levels, UNet timesteps and starting latent of one run, as the chosen tool makes them.

The noise mode of a run names the tool labkit reproduces ("a1111-cpu"/"a1111-gpu": A1111, "comfy": ComfyUI); the
plan holds that tool's choices, independent of diffusers:
- sigmas: the tool's schedule (`labkit.sampling.sigmas`), cut for img2img as the tool cuts it;
- timesteps: what the UNet is fed at each step: A1111 (k-diffusion) interpolates a fractional timestep,
  ComfyUI takes the nearest training timestep;
- start: what labkit's unit noise is multiplied by (VE: x = x0 + sigma * eps), the picture's latents added for
  img2img. A1111: sigma_0, or sqrt(1 + sigma_0^2) with "SGM noise multiplier" (txt2img only); ComfyUI:
  sqrt(1 + sigma_0^2) when sigma_0 is the model's largest sigma, else sigma_0.
A1111's own DDIM and PLMS are not k-diffusion samplers: they walk an integer timestep grid from plain unit noise
(`timestep_plan`), and its UniPC a fractional one (`a1111_unipc_plan`). `labkit.sampling.fit` makes a diffusers
scheduler follow a plan.
"""

import math
from dataclasses import dataclass

from . import sigmas as S

# A1111 samplers that A1111 runs on its own timestep grid (modules/sd_samplers_timesteps.py), not k-diffusion
TIMESTEP_SAMPLERS = ("DDIM", "PLMS")
# ComfyUI stops UniPC at this sigma instead of 0 and divides by its alpha (comfy/extra_samplers/uni_pc.py)
COMFY_UNIPC_END = 1e-3


@dataclass(frozen=True, eq=False)
class Plan:
    """One run's schedule as a tool makes it. `sigmas`: float32 (k + 1,) VE noise levels, the last where the run
    ends; `timesteps`: float32 (k,) what the UNet gets at each step; `start`: the factor labkit's unit noise is
    multiplied by (VE), the picture's latents added in img2img; `start_sigma`: the noise level of that start
    (sigmas[0] but for A1111's img2img with DDIM / PLMS / UniPC, which noise one grid point higher)."""

    tool: str
    sampler: str
    schedule: str
    sigmas: object
    timesteps: object
    start: float
    start_sigma: float
    end_scale: float = 1.0  # what the final latents are multiplied by (ComfyUI's UniPC divides by alpha)
    levels: object = None  # the model's training levels as the tool holds them (sigmas.Levels)
    denoise_last: bool = False  # ComfyUI's LMS: the last step (into sigma 0) returns the denoised prediction

    @property
    def steps(self) -> int:
        """The sampler steps the run takes (UNet calls per step depend on the sampler)."""
        return len(self.timesteps)


def tool_of(noise_mode: str) -> str:
    return "comfy" if noise_mode == "comfy" else "a1111"


def plan(tool: str, sampler: str, schedule: str, steps: int, train, *, img2img: bool = False,
         strength: float = 1.0, sgm: bool = False, fixed_steps: bool = False) -> Plan:
    """The plan of `steps` steps of `sampler` on `schedule` (an A1111 schedule type, "Automatic" resolved) for
    `tool`; img2img with `strength`, A1111's denoising strength and ComfyUI's denoise. `fixed_steps`: A1111's
    rule when the steps are given (hires fix; its "img2img_fix_steps"): exactly `steps` run, the last ones of a
    schedule int(steps / min(strength, 0.999)) long (sd_samplers_common.setup_img2img_steps), as ComfyUI's
    denoise always does."""
    t_enc = steps - 1 if img2img and fixed_steps else None
    if t_enc is not None:
        steps = int(steps / min(strength, 0.999))
    if tool == "a1111" and sampler in TIMESTEP_SAMPLERS:
        return timestep_plan(sampler, steps, train, strength if img2img else None, t_enc)
    if tool == "a1111" and sampler == "UniPC":
        return a1111_unipc_plan(steps, train, strength if img2img else None, t_enc)
    if not img2img:
        sigmas = S.schedule(tool, sampler, schedule, train, steps)
    elif tool == "a1111":
        sigmas = a1111_img2img(sampler, schedule, steps, train, strength, t_enc)
    elif t_enc is not None:
        sigmas = comfy_denoise(sampler, schedule, t_enc + 1, train, strength)
    else:
        sigmas = comfy_denoise(sampler, schedule, steps, train, strength)
    end_scale = 1.0
    if tool == "comfy" and sampler == "UniPC" and float(sigmas[-1]) == 0.0:
        sigmas = sigmas.clone()
        sigmas[-1] = COMFY_UNIPC_END
        end_scale = math.sqrt(1 + COMFY_UNIPC_END ** 2)  # x / alpha(0.001)
    timesteps = (S.sigma_to_t if tool == "a1111" else S.nearest_t)(train, sigmas[:-1])
    sigma_0 = float(sigmas[0])
    start = start_factor(tool, sigma_0, float(train[-1]), sgm and not img2img)
    return Plan(tool, sampler, schedule, sigmas, timesteps, start, sigma_0, end_scale, levels=train,
                denoise_last=tool == "comfy" and sampler == "LMS" and float(sigmas[-1]) == 0.0)


def start_factor(tool: str, sigma_0: float, sigma_max: float, sgm: bool) -> float:
    """What unit noise is multiplied by at the start (KDiffusionSampler.sample / sample_img2img in A1111, the
    model's noise_scaling in ComfyUI)."""
    if tool == "comfy":
        full = math.isclose(sigma_0, sigma_max, rel_tol=1e-5) or sigma_0 > sigma_max  # ComfyUI's max_denoise
        return math.sqrt(1 + sigma_0 ** 2) if full else sigma_0
    return math.sqrt(1 + sigma_0 ** 2) if sgm else sigma_0


def a1111_img2img(sampler, schedule, steps, train, strength, t_enc=None):
    """A1111's img2img cut: t_enc = int(min(strength, 0.999) * steps) (or as given) and the last t_enc + 1 steps
    run (sd_samplers_common.setup_img2img_steps, KDiffusionSampler.sample_img2img)."""
    t_enc = int(min(strength, 0.999) * steps) if t_enc is None else t_enc
    return S.schedule("a1111", sampler, schedule, train, steps)[steps - t_enc - 1:]


def comfy_denoise(sampler, schedule, steps, train, denoise):
    """ComfyUI's denoise: the last `steps` steps of a schedule int(steps / denoise) long (KSampler.set_steps);
    above 0.9999 the whole schedule."""
    if denoise > 0.9999:
        return S.schedule("comfy", sampler, schedule, train, steps)
    return S.schedule("comfy", sampler, schedule, train, int(steps / denoise))[-(steps + 1):]


def a1111_grid(steps: int) -> list[int]:
    """A1111's timestep grid for DDIM / PLMS: 1, 1 + 1000 // n, ... (the top capped at 999), ascending."""
    return sorted({min(t + 1, 999) for t in range(0, 1000, 1000 // steps)})


def timestep_plan(sampler: str, steps: int, train, strength: float | None, t_enc: int | None = None) -> Plan:
    """A1111's DDIM / PLMS (modules/sd_samplers_timesteps.py): unit VP noise at the top of its integer grid, a
    UNet call at each grid point above t = 1, the run ending at t = 1. img2img (`strength`) noises the picture
    at grid point t_enc (counted from t = 1) and calls the UNet from the point below it on, as A1111 does."""
    import torch

    grid = a1111_grid(steps)
    top = len(grid) - 1 if strength is None else int(min(strength, 0.999) * steps) if t_enc is None else t_enc
    called = grid[1:top + (strength is None)][::-1]
    sigmas = S.t_to_sigma(train, torch.tensor(called + [1], dtype=torch.float32))
    noised = float(S.t_to_sigma(train, torch.tensor(float(grid[top]))))
    start = math.sqrt(1 + noised ** 2) if strength is None else noised  # txt2img: unit noise in VP
    return Plan("a1111", sampler, "Automatic", sigmas, torch.tensor(called, dtype=torch.float32), start, noised,
                levels=train)


def a1111_unipc_plan(steps: int, train, strength: float | None, t_enc: int | None = None) -> Plan:
    """A1111's UniPC (modules/models/diffusion/uni_pc): len(range(0, 1000, 1000 // steps)) steps uniform in
    continuous time, the UNet fed t from 999 down in equal fractional steps to t = 0 (sigma_min, not 0); the noise
    level of a fractional t comes from interpolating log alpha (its NoiseScheduleVP), not log sigma. img2img:
    t_enc steps from A1111 grid point t_enc - 1 down, the picture noised at grid point t_enc (as for DDIM)."""
    import torch

    if strength is None:
        t = torch.linspace(len(train) - 1, 0, len(range(0, 1000, 1000 // steps)) + 1)
        sigmas = alpha_interpolated_sigma(train, t)
        sigma_0 = float(sigmas[0])
        return Plan("a1111", "UniPC", "Automatic", sigmas, t[:-1].clone(), math.sqrt(1 + sigma_0 ** 2), sigma_0,
                    levels=train)
    grid = a1111_grid(steps)
    t_enc = max(int(min(strength, 0.999) * steps) if t_enc is None else t_enc, 1)
    t = torch.linspace(float(grid[t_enc - 1]), 0, t_enc + 1)
    noised = float(S.t_to_sigma(train, torch.tensor(float(grid[t_enc]))))
    return Plan("a1111", "UniPC", "Automatic", alpha_interpolated_sigma(train, t), t[:-1].clone(), noised, noised,
                levels=train)


def alpha_interpolated_sigma(train, t):
    """The VE sigma at fractional timesteps when log(alpha) = log(sqrt(abar)) is interpolated linearly in t."""
    import torch

    log_alpha = -0.5 * torch.log1p(train.sigmas.double() ** 2)  # abar = 1 / (1 + sigma^2)
    t = torch.as_tensor(t, dtype=torch.float64).clamp(0, len(train) - 1)
    low, w = t.floor().long(), t.frac()
    high = torch.clamp(low + 1, max=len(train) - 1)
    la = (1 - w) * log_alpha[low] + w * log_alpha[high]
    return torch.sqrt(torch.expm1(-2 * la)).float()  # sigma^2 = 1 / abar - 1 = exp(-2 log alpha) - 1
