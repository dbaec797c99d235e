"""The noise levels A1111 and ComfyUI sample at, computed as they compute them.

Both tools work on the model's 1000 training noise levels sigma_t = sqrt((1 - abar_t) / abar_t), with abar built
in float64 and held in float32, and step through a schedule of sigmas that ends at 0. diffusers builds the same
kinds of schedule with small differences (float32 abar, sigma interpolated linearly instead of in log sigma,
"trailing" instead of SGM Uniform's grid, no dropped penultimate sigma for DPM2...), so labkit computes each
tool's own schedule here and hands it to the diffusers scheduler (`labkit.sampling.fit`).

Sources read (behaviour only; no code taken): A1111 v1.10.1 `modules/sd_schedulers.py` and
`modules/sd_samplers_kdiffusion.py`, k-diffusion ab527a9 `k_diffusion/external.py` and `sampling.py`, ComfyUI
`comfy/samplers.py` and `comfy/model_sampling.py`. Torch is imported inside the functions.
"""

import math

TOOLS = ("a1111", "comfy")
BETA_SHAPE = (0.6, 0.6)  # A1111's and ComfyUI's default alpha, beta of the Beta schedule
KARRAS_RHO = 7.0
# samplers whose schedule is computed one step longer and loses its next-to-last sigma
DISCARD_PENULTIMATE = {"a1111": ("DPM2", "DPM2 a", "DPM++ 3M SDE"), "comfy": ("DPM2", "DPM2 a", "UniPC")}


class Levels:
    """The model's 1000 training noise levels as a tool holds them: `sigmas` float32 (t = 0 first) and their
    logarithms `logs`, which the timestep rules and log-sigma interpolation use (A1111 takes the log of its
    float32 sigmas; ComfyUI of float64 ones, then rounds: at a tie between two timesteps that decides)."""

    def __init__(self, sigmas, logs):
        self.sigmas, self.logs = sigmas, logs

    def __len__(self) -> int:
        return len(self.sigmas)

    def __getitem__(self, index):
        return self.sigmas[index]


def training_levels(config, tool: str = "a1111") -> Levels:
    """The training levels of a model's scheduler config, built as `tool` builds them: betas and their cumulative
    product in float64; A1111 (ldm) then stores abar in float32 and takes sigma and its log in float32, ComfyUI
    takes sigma and its log in float64 and stores float32."""
    import torch

    n = config["num_train_timesteps"]
    start, end = config["beta_start"], config["beta_end"]
    if config.get("beta_schedule", "scaled_linear") == "scaled_linear":
        betas = torch.linspace(start ** 0.5, end ** 0.5, n, dtype=torch.float64) ** 2
    elif config["beta_schedule"] == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    else:
        raise ValueError(f"beta_schedule {config['beta_schedule']!r}: labkit reproduces linear ones only")
    abar = torch.cumprod(1.0 - betas, dim=0)
    if tool == "comfy":
        sigmas = ((1 - abar) / abar) ** 0.5
        return Levels(sigmas.float(), sigmas.log().float())
    abar = abar.float()
    sigmas = ((1 - abar) / abar) ** 0.5
    return Levels(sigmas, sigmas.log())


def training_sigmas(config):
    """The model's training noise levels (1000,) float32, t = 0 first (A1111's)."""
    return training_levels(config).sigmas


def sigma_to_t(train: Levels, sigma):
    """k-diffusion's fractional timestep of each sigma: linear in log sigma between the two nearest levels."""
    import torch

    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    log_train, log_sigma = train.logs, sigma.log()
    dists = log_sigma - log_train[:, None]
    low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=len(train) - 2)
    w = ((log_train[low] - log_sigma) / (log_train[low] - log_train[low + 1])).clamp(0, 1)
    return ((1 - w) * low + w * (low + 1)).view(sigma.shape)


def nearest_t(train: Levels, sigma):
    """ComfyUI's timestep of each sigma: the training level nearest in log sigma (ties to the lower one)."""
    import torch

    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    return (sigma.log() - train.logs[:, None]).abs().argmin(dim=0).view(sigma.shape).float()


def t_to_sigma(train: Levels, t):
    """The noise level of a (fractional) timestep, interpolated in log sigma."""
    import torch

    t = torch.as_tensor(t, dtype=torch.float32).clamp(0, len(train) - 1)
    low, high, w = t.floor().long(), t.ceil().long(), t.frac()
    return ((1 - w) * train.logs[low] + w * train.logs[high]).exp()


def with_zero(sigmas):
    import torch

    return torch.cat([torch.as_tensor(sigmas, dtype=torch.float32), torch.zeros(1)])


# ---- the schedules (n = steps; each returns n + 1 sigmas ending at 0, fewer where a tool drops duplicates) ----
def uniform(train, n):
    """k-diffusion's get_sigmas: t from 999 to 0 in n equal steps (A1111 "Uniform", Euler's "Automatic")."""
    import torch

    return with_zero(t_to_sigma(train, torch.linspace(len(train) - 1, 0, n)))


def normal(train, n, sgm=False):
    """t from the timestep of sigma_max to that of sigma_min (999 to 0) in equal steps: n points, or n + 1 with the
    last dropped for SGM Uniform (A1111 "Normal"/"SGM Uniform", ComfyUI normal/sgm_uniform)."""
    import torch

    start, end = float(sigma_to_t(train, train[-1])), float(sigma_to_t(train, train[0]))
    t = torch.linspace(start, end, n + 1)[:-1] if sgm else torch.linspace(start, end, n)
    return with_zero(t_to_sigma(train, t))


def simple(train, n):
    """Every (1000 / n)-th training level from the top (A1111 "Simple", ComfyUI simple)."""
    step = len(train) / n
    return with_zero([float(train[-(1 + int(i * step))]) for i in range(n)])


def ddim(train, n):
    """The training levels at t = 1, 1 + 1000 // n, ... below 1000, from the top (A1111 "DDIM", ComfyUI
    ddim_uniform): n + 1 points or more when n does not divide 1000."""
    step = max(len(train) // n, 1)
    return with_zero([float(train[t]) for t in range(1, len(train), step)][::-1])


def karras(train, n, rho=KARRAS_RHO):
    """Karras et al.'s schedule between the model's smallest and largest sigma (k-diffusion get_sigmas_karras)."""
    import torch

    sigma_min, sigma_max = float(train[0]), float(train[-1])
    ramp = torch.linspace(0, 1, n)
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return with_zero((high + ramp * (low - high)) ** rho)


def exponential(train, n):
    """Equal steps in log sigma from the largest to the smallest sigma (k-diffusion get_sigmas_exponential)."""
    import torch

    return with_zero(torch.linspace(math.log(float(train[-1])), math.log(float(train[0])), n).exp())


def beta_a1111(train, n, shape=BETA_SHAPE):
    """A1111's Beta schedule: sigma_min + ppf(1 - linspace(0, 1, n)) * (sigma_max - sigma_min)."""
    import numpy as np
    from scipy import stats

    sigma_min, sigma_max = float(train[0]), float(train[-1])
    ppf = [stats.beta.ppf(x, *shape) for x in 1 - np.linspace(0, 1, n)]
    return with_zero([sigma_min + x * (sigma_max - sigma_min) for x in ppf])


def beta_comfy(train, n, shape=BETA_SHAPE):
    """ComfyUI's Beta schedule: training levels at t = rint(ppf(1 - i / n) * 999), repeated ones dropped."""
    import numpy as np
    from scipy import stats

    ts = np.rint(stats.beta.ppf(1 - np.linspace(0, 1, n, endpoint=False), *shape) * (len(train) - 1))
    kept = [int(t) for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]]
    return with_zero([float(train[t]) for t in kept])


# A1111 schedule name -> each tool's function; ComfyUI has no "Uniform": its normal gives the same sigmas
SCHEDULES = {
    "a1111": {"Uniform": uniform, "Normal": normal, "SGM Uniform": lambda tr, n: normal(tr, n, sgm=True),
              "Simple": simple, "DDIM": ddim, "Karras": karras, "Exponential": exponential, "Beta": beta_a1111},
    "comfy": {"Uniform": normal, "Normal": normal, "SGM Uniform": lambda tr, n: normal(tr, n, sgm=True),
              "Simple": simple, "DDIM": ddim, "Karras": karras, "Exponential": exponential, "Beta": beta_comfy},
}


def schedule(tool: str, sampler: str, name: str, train, steps: int):
    """`tool`'s sigmas for `steps` steps of `sampler` on schedule `name` (an A1111 schedule type, "Automatic"
    already resolved), with the next-to-last sigma dropped where the tool drops it."""
    import torch

    discard = sampler in DISCARD_PENULTIMATE[tool]
    sigmas = SCHEDULES[tool][name](train, steps + 1 if discard else steps)
    return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas
