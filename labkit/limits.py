"""How big a run may be: an estimate of its time and memory, made before any work, and the limits a Lab checks it
against. A run over a limit raises `TooLarge`, which gives the estimate and how to raise the limit:

    lab.limits = labkit.Limits(max_seconds=4 * 3600, max_memory_gb=64)   # this Lab allows more
    lab.limits = None                                                     # no check at all

The estimate is small on purpose: one row of COSTS per family, in latent pixels (lpx: the picture's pixels / 64
for every family here), batch and steps.

    seconds = UNet evaluations x (overhead + batch x lpx x unit x (1 + lpx / attention)) + batch x pixels x decode
    memory  = the Lab's weights (counted) + the larger of the UNet's activations (batch x lpx x bytes per lpx)
              and the VAE decode (batch x picture pixels x decode bytes per pixel); half at 16 bits

The decode is planned to fit (`decode_plan`): whole, else one picture at a time ("sliced"), else in tiles of
TILE_PX pixels ("tiled", as diffusers' tiled VAE does, seams blended), else refused with the estimate. The memory
figures of the full-size rows were measured here by benchmarks/fullsize.py (random SD 1.5 and SDXL, CPU): the
VAE decoder peaks at 3.9-4.4 kB per picture pixel in float32 (half in bfloat16), so a whole 2048 x 2048 decode
needs about 17 GiB; the UNet's activations (batch 1 with CFG) at 83-130 kB per latent pixel in float32 (63-153 kB
float32-equivalent in bfloat16), counted here as 150 kB.

`unit` is the seconds per latent pixel of one image's sampler step with CFG (two UNet passes); `attention` the
latent size at which self-attention, which grows with the square of the size, costs as much as the rest. The toy
rows were measured here (benchmarks/toy.py's machine: 2 x86_64 cores, torch CPU, one thread); the full-size rows
come from published figures: SD 1.5 at 512 px about 4 s per step on an 8-core desktop CPU in float32 and
17 steps/s on a recent NVIDIA GPU in float16 (RTX 3090/4080 class; an A100/H100 is faster), SDXL at 1024 px about
40 s per step on that CPU and 5 steps/s on that GPU; the VAE decode of a 512 px picture about 4 s on the CPU and
0.08 s on the GPU; peak GPU memory about 3 GB for SD 1.5 at 512 px and 10-11 GB for SDXL at 1024 px in float16
(weights included). On this project's 2-core machine benchmarks/fullsize.py measured 2.5-2.6x (SD 1.5) and 2.2-2.9x
(SDXL) the CPU rows' seconds per step at 512 and 1024 px. Expect the estimate within a factor of about 3 on other
machines: enough to stop a run that would take days or exhaust memory, which is what the limits are for.
"""

import math
from dataclasses import dataclass

from . import checks
from .errors import TooLarge

DEFAULT_MAX_SECONDS = 3600.0
SECOND_ORDER = frozenset({"Heun", "DPM2", "DPM2 a", "DPM++ SDE"})  # two UNet evaluations per step after the first
GPU_FACTOR = {"cuda": 1.0, "mps": 4.0, "xpu": 3.0}  # slower than the CUDA figures
# a LoRA training step (`mode="train"`) against a sampler step at the same batch: one UNet pass without CFG's second
# forward and backward (about twice a forward); activations are kept for the backward pass
TRAIN_TIME, TRAIN_MEMORY = 1.5, 4.0


@dataclass(frozen=True)
class Cost:
    """One family's row: seconds per step (fixed part and per latent pixel, CPU float32 / CUDA float16), the
    attention size, seconds of VAE decode per picture pixel, and activation bytes per latent pixel in float32."""

    overhead: tuple  # (cpu, gpu) seconds per step, whatever the size
    unit: tuple  # (cpu, gpu) seconds per latent pixel per image per step
    attention: float  # latent pixels
    decode: tuple  # (cpu, gpu) seconds per picture pixel
    bytes_per_lpx: float  # float32 UNet activation bytes per latent pixel per image
    decode_bytes: float = 4.4e3  # float32 VAE decode bytes per picture pixel per image (measured: 4.3e3)


TILE_PX = 512  # the side of a tile when a decode must be tiled to fit
SD = Cost(overhead=(0.02, 0.01), unit=(7.3e-4, 1.1e-5), attention=12288, decode=(1.5e-5, 3e-7), bytes_per_lpx=150e3)
XL = Cost(overhead=(0.03, 0.015), unit=(2.0e-3, 9.8e-6), attention=65536, decode=(1.5e-5, 3e-7), bytes_per_lpx=150e3)
REFINER = Cost(overhead=(0.03, 0.015), unit=(1.6e-3, 7.8e-6), attention=65536, decode=(1.5e-5, 3e-7),
               bytes_per_lpx=150e3)
COSTS = {
    "sd1": SD, "sd2": SD, "sdxl": XL, "sdxl-refiner": REFINER,
    "toy": Cost(overhead=(0.015, 0.008), unit=(1.0e-4, 1e-7), attention=2800, decode=(3e-6, 2e-8), bytes_per_lpx=12e3,
                decode_bytes=700),
    "toy-xl": Cost(overhead=(0.02, 0.01), unit=(3e-5, 1e-7), attention=4096, decode=(3e-6, 2e-8), bytes_per_lpx=6e3,
                   decode_bytes=1100),
    "toy-xl-refiner": Cost(overhead=(0.015, 0.008), unit=(3e-5, 1e-7), attention=4096, decode=(3e-6, 2e-8),
                           bytes_per_lpx=6e3, decode_bytes=1100),
}


@dataclass(frozen=True)
class Limits:
    """What a Lab runs without asking: `max_seconds` of estimated time (None: no time limit) and
    `max_memory_gb` GiB of estimated memory (None: the device's own: the GPU's memory for CUDA, the machine's RAM
    otherwise). `lab.limits = None` turns the check off."""

    max_seconds: float | None = DEFAULT_MAX_SECONDS
    max_memory_gb: float | None = None

    def __post_init__(self):
        for name in ("max_seconds", "max_memory_gb"):
            value = getattr(self, name)
            if value is not None:
                example = 3600 if name == "max_seconds" else 16
                object.__setattr__(self, name, checks.real(name, value, low=0, example=example))


@dataclass(frozen=True)
class Estimate:
    """A run's estimated `seconds` and peak `memory` (bytes), and what it was estimated for; the memory's parts:
    `weights`, the UNet's `activations`, the VAE `decode` as `decode_plan` ("whole", "sliced", "tiled") runs it."""

    seconds: float
    memory: float
    what: str
    weights: float = 0.0
    activations: float = 0.0
    decode: float = 0.0
    decode_plan: str = "whole"

    def __str__(self) -> str:
        decode = "" if self.decode_plan == "whole" else f", the VAE decode {self.decode_plan} to fit"
        return f"{duration(self.seconds)} and {gib(self.memory)} of memory for {self.what}{decode}"


def duration(seconds: float) -> str:
    if seconds >= 86400 * 365:
        return f"{seconds / (86400 * 365):.3g} years"
    for size, unit in ((86400, "days"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.2g} s"


def gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n < 2**50 else f"{n / 2**40:.3g} TiB"


def weight_bytes(components: dict) -> int:
    """Bytes of every weight and buffer the models in `components` hold (a Lab caches it: `Lab.weight_bytes`)."""
    total = 0
    for module in components.values():
        if hasattr(module, "parameters") and hasattr(module, "buffers"):
            total += sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    return total


def first_tensor(module) -> tuple:
    """(dtype, device) of a module's first weight: cheap to read, and it changes when the module is cast or moved
    (diffusers' `dtype` property walks every weight)."""
    weight = next(module.parameters(), None) if hasattr(module, "parameters") else None
    return (None, None) if weight is None else (weight.dtype, weight.device)


def estimate(lab, p, mode: str = "txt2img", refiner=None) -> Estimate:
    """The time and memory of running `p` (width and height given) on `lab` in `mode`, with `refiner`."""
    gpu = GPU_FACTOR.get(str(lab.device).split(":")[0])
    cost = COSTS.get(lab.family, SD)
    lpx = (p.width // lab.vae_scale) * (p.height // lab.vae_scale)
    steps = p.steps * (p.strength if mode not in ("txt2img", "train") else 1.0)
    base_steps = steps * (p.switch_at if refiner is not None else 1.0)
    seconds = _denoise_seconds(cost, gpu, lab.dtype, lpx, p.batch_size, base_steps, p.sampler)
    if refiner is not None:
        seconds += _denoise_seconds(COSTS.get(refiner.family, SD), gpu, refiner.dtype, lpx, p.batch_size,
                                    steps - base_steps, p.sampler)
    if mode == "train":
        seconds *= TRAIN_TIME
    else:
        seconds += p.batch_size * p.width * p.height * cost.decode[gpu is not None] * (gpu or 1.0)
    half = 0.5 if lab.dtype in ("float16", "bfloat16") else 1.0
    weights = device_weights(lab) + (device_weights(refiner) if refiner is not None else 0)
    activations = p.batch_size * lpx * cost.bytes_per_lpx * half * (TRAIN_MEMORY if mode == "train" else 1.0)
    plan, decode = ("whole", 0.0) if mode == "train" else decode_plan(lab, p.width, p.height, p.batch_size, weights)
    what = (f"{mode} {p.width}x{p.height}, batch {p.batch_size}, {p.steps} steps of {p.sampler} on "
            f"{lab.family} ({lab.device}, {lab.dtype})")
    return Estimate(seconds, weights + max(activations, decode), what, weights, activations, decode, plan)


def device_weights(lab) -> float:
    """Bytes of weights on the Lab's device while it runs: all of them, or with `offload` the largest model
    ("model": one model at a time) or the largest weight twice over ("sequential": one layer at a time)."""
    offload = getattr(lab, "offload", None)
    if offload is None:
        return lab.weight_bytes
    sizes = [weight_bytes({name: module}) for name, module in lab.components.items()]
    if offload == "model":
        return max(sizes)
    return 2 * max(t.numel() * t.element_size() for module in lab.components.values() if hasattr(module, "parameters")
                   for t in module.parameters())


def decode_memory(lab, width: int, height: int, pictures: int, plan: str = "whole") -> float:
    """Bytes a VAE decode of `pictures` pictures of width x height needs beyond the weights, run as `plan`."""
    cost = COSTS.get(lab.family, SD)
    half = 0.5 if lab.dtype in ("float16", "bfloat16") else 1.0
    if plan == "tiled":  # one tile's decode, and the decoded tiles and picture (3 float32 channels) kept
        return min(width, TILE_PX) * min(height, TILE_PX) * cost.decode_bytes * half + width * height * 3 * 4 * 3
    return (1 if plan == "sliced" else pictures) * width * height * cost.decode_bytes * half


def decode_note(lab, plan: str, width: int, height: int, pictures: int) -> str | None:
    """What a Result says when its decode was sliced or tiled to fit (None for a whole decode)."""
    if plan == "whole":
        return None
    whole = gib(decode_memory(lab, width, height, pictures))
    how = ("one picture at a time" if plan == "sliced" else
           f"in tiles of {TILE_PX} px (as diffusers' tiled VAE does: seams are blended, so pixels differ slightly "
           f"from a whole decode)")
    return (f"the VAE decoded {how} to fit in memory: a whole decode of {pictures} x {width}x{height} needs about "
            f"{whole} beside {gib(device_weights(lab))} of weights")


def decode_plan(lab, width: int, height: int, pictures: int, weights: float | None = None) -> tuple:
    """(plan, bytes): the first of whole, sliced (one picture at a time), tiled whose decode fits beside the
    weights in the memory `lab.limits` allows (the device's when it sets none); "tiled" when nothing fits."""
    limits = getattr(lab, "limits", None)
    limit = limits.max_memory_gb * 2**30 if limits is not None and limits.max_memory_gb is not None else None
    limit = limit if limit is not None else _device_memory(lab.device)
    weights = device_weights(lab) if weights is None else weights
    for plan in ("whole", "sliced"):
        need = decode_memory(lab, width, height, pictures, plan)
        if weights + need <= limit:
            return plan, need
    return "tiled", decode_memory(lab, width, height, pictures, "tiled")


def _denoise_seconds(cost: Cost, gpu, dtype, lpx, batch, steps, sampler) -> float:
    evaluations = max(0.0, steps * 2 - 1) if sampler in SECOND_ORDER else steps
    per_step = cost.overhead[gpu is not None] + batch * lpx * cost.unit[gpu is not None] * (1 + lpx / cost.attention)
    slower = (gpu or 1.0) * (2.0 if gpu is not None and dtype == "float32" else 1.0)
    return evaluations * per_step * slower


def planned_seconds(family: str, p, device: str = "cpu", dtype: str = "float32") -> float:
    """Estimated seconds of a txt2img run of `p` on a `family` model not opened yet (sweeps plan before any worker
    loads it); the family's native size where `p` gives none."""
    from .families import family as family_row

    gpu = GPU_FACTOR.get(str(device).split(":")[0])
    cost, side = COSTS.get(family, SD), family_row(family).native_size
    width, height = p.width or side, p.height or side
    lpx = (width // 8) * (height // 8)
    decode = p.batch_size * width * height * cost.decode[gpu is not None] * (gpu or 1.0)
    return _denoise_seconds(cost, gpu, dtype, lpx, p.batch_size, p.steps, p.sampler) + decode


def check(lab, p, mode: str = "txt2img", refiner=None) -> Estimate | None:
    """The estimate of the run, once it is within `lab.limits`; TooLarge naming the estimate and the fix otherwise.
    None when the Lab has no limits."""
    limits = getattr(lab, "limits", None)
    if limits is None:
        return None
    found = estimate(lab, p, mode, refiner)
    max_memory = (limits.max_memory_gb * 2**30 if limits.max_memory_gb is not None else _device_memory(lab.device))
    over, raise_to = [], []
    if limits.max_seconds is not None and found.seconds > limits.max_seconds:
        over.append(f"time limit {duration(limits.max_seconds)}")
        raise_to.append(f"max_seconds={_suggest(found.seconds)}")
    if found.memory > max_memory:
        source = "" if limits.max_memory_gb is not None else f", the memory of {lab.device}"
        over.append(f"memory limit {gib(max_memory)}{source}")
        raise_to.append(f"max_memory_gb={_suggest(found.memory / 2**30)}")
    if over:
        options = memory_options(lab) if found.memory > max_memory else ""
        raise TooLarge(f"This run is estimated at {found} (over the {' and the '.join(over)}). Make it smaller "
                       f"(fewer steps, a smaller size or batch){options}, or raise this Lab's limit: "
                       f"lab.limits = labkit.Limits({', '.join(raise_to)}); lab.limits = None turns the check off.")
    return found


def memory_options(lab) -> str:
    """What else makes a run need less memory on this Lab, as a clause of a sentence ("" when nothing does)."""
    options = []
    if lab.dtype == "float32":
        half = "float16" if str(lab.device).startswith("cuda") else "bfloat16"
        options.append(f"open the model with dtype={half!r} (half the weights' memory)")
    if str(lab.device).split(":")[0] in GPU_FACTOR and getattr(lab, "offload", None) != "sequential":
        options.append("open it with offload='model' (weights wait on the CPU; each model moves to the GPU while it "
                       "runs) or offload='sequential' (one layer at a time: the least GPU memory, slowest)")
    return "".join(f"; or {option}" for option in options)


def _suggest(value: float) -> str:
    """A round number above `value` for the message's example."""
    if not math.isfinite(value) or value > 1e12:
        return "None"
    magnitude = 10 ** max(0, math.floor(math.log10(max(value, 1))))
    return str(int(math.ceil(value * 1.2 / magnitude) * magnitude))


def _device_memory(device) -> float:
    from .devices import memory

    return memory(device)
