"""Params: one frozen dataclass holding every generation setting, in A1111's language, checked when made."""

from dataclasses import asdict, dataclass, fields, replace

from . import checks
from .errors import BadInput
from .prompts.syntax import EMPHASIS

NOISE_MODES = ("a1111-cpu", "a1111-gpu", "comfy")
MAX_SEED = 2**63 - 1  # the largest seed a torch generator takes as given (a random seed is drawn below 2**32)


@dataclass(frozen=True)
class Params:
    """Every setting of one generation.

    Names and units follow A1111's infotext: `cfg` is "CFG scale", `clip_skip=2` is "Clip skip: 2"
    (diffusers' `clip_skip=1`), `sampler`/`schedule` are A1111 names, `<lora:...>` tags stay in `prompt`.
    `seed=-1` draws a random seed; `width`/`height` of None mean the model's native size. `noise` names the tool
    whose noise and sampling start labkit reproduces; `sgm_noise_multiplier` is A1111's setting of that name
    ("SGM noise multiplier: True"): A1111's k-diffusion samplers then start a full denoise from
    noise * sqrt(1 + sigma_max^2), as ComfyUI always does, instead of noise * sigma_max.

    `cfg` is 0 or more. CFG exactly 1 is the prompt's prediction alone in every tool. Below 1 the tools part:
    diffusers (and so labkit) turns guidance off at CFG <= 1, so any CFG in [0, 1] draws CFG 1's picture, while
    A1111 and ComfyUI extrapolate toward the negative prompt (CFG 0 is the negative prompt's prediction alone);
    a Result made with CFG below 1 says so in its notes.

    Hires fix (txt2img; A1111's "Hires. fix"): `hires=True` generates at the first-pass size, upscales by
    `hires_scale` (or to `hires_resize_x` x `hires_resize_y`; 0 follows the aspect ratio, both given covers the box
    and crops its center) with `hires_upscaler` (a latent mode, Lanczos/Nearest, or an upscaler model's name:
    `labkit.upscalers.names()`), then redraws with `strength` as the denoising strength. `hires_steps` run in the
    second pass (0: `steps`), from a schedule int(hires_steps / strength) long, as A1111 does. `hires_sampler`,
    `hires_schedule`, `hires_prompt`, `hires_negative_prompt` ("" = the first pass's), `hires_cfg` (None = `cfg`;
    Forge's "Hires CFG Scale", A1111 has none) and `hires_checkpoint` (a second-pass model's name; pass its Lab as
    `txt2img(hires_lab=...)`) change the second pass only. `width`/`height` stay the first pass's (A1111's Size).

    `control`: ControlNet units (`labkit.ControlUnit`, a dict of its fields, or a list of them), as A1111's
    ControlNet extension sets them; a Result's Params keep each unit's settings without its picture.

    Every value is checked when a Params is made (and by `replace`): whole numbers are ints (NumPy integers are
    taken; floats are refused, never rounded; True is not 1), numbers are finite, texts are str. `validate()`
    checks again and returns the Params.
    """

    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    cfg: float = 7.0
    sampler: str = "DPM++ 2M"
    schedule: str = "Automatic"
    seed: int = -1
    width: int | None = None
    height: int | None = None
    batch_size: int = 1
    strength: float = 0.75
    mask_blur: int = 4
    only_masked: bool = False
    padding: int = 32
    switch_at: float = 0.8
    clip_skip: int = 1
    emphasis: str = "Original"
    eta: float | None = None
    noise: str = "a1111-cpu"
    sgm_noise_multiplier: bool = False
    model: str = ""
    control: tuple = ()
    hires: bool = False
    hires_scale: float = 2.0
    hires_resize_x: int = 0
    hires_resize_y: int = 0
    hires_steps: int = 0
    hires_upscaler: str = "Latent"
    hires_sampler: str = ""
    hires_schedule: str = ""
    hires_prompt: str = ""
    hires_negative_prompt: str = ""
    hires_cfg: float | None = None
    hires_checkpoint: str = ""

    def __post_init__(self):
        for name, value in check_all(self).items():
            object.__setattr__(self, name, value)

    def replace(self, **changes) -> "Params":
        """A copy with `changes` applied and checked; unknown names raise BadInput (another tool's name for a
        setting gets labkit's)."""
        checks.unknown_keywords(changes, FIELDS, "Params")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Params":
        """Params from a dict, ignoring keys that are not settings."""
        if not isinstance(data, dict):
            raise BadInput(f"Params.from_dict takes a dict of settings, not a {type(data).__name__}.")
        return cls(**{k: v for k, v in data.items() if k in FIELDS})

    def validate(self) -> "Params":
        """Raise BadInput naming the fix for any setting the pipelines cannot run; return self."""
        check_all(self)
        return self


FIELDS = tuple(f.name for f in fields(Params))


def _size(name, value):
    if value is None:
        return None
    value = checks.whole(name, value, example=512)
    if value < 8 or value % 8:
        near = max(8, round(value / 8) * 8)
        raise BadInput(f"{name}={value} is not a multiple of 8 (the VAE works in 8-pixel cells); use {near}.")
    return value


def _at_least(name, low, why):
    def check(value):
        value = checks.whole(name, value, example=max(low, 1))
        if value < low:
            raise BadInput(f"{name}={value}: {why}")
        return value
    return check


def _steps(value):
    value = checks.whole("steps", value, example=20)
    if value < 1:
        raise BadInput(f"steps={value}: at least 1 step is needed; A1111's default is 20.")
    return value


def _cfg(value, name="cfg"):
    value = checks.real(name, value, example=7)
    if value < 0:
        raise BadInput(f"{name}={value:g} is negative: the CFG scale is 0 or more (A1111's default is 7; 1 is the "
                       f"prompt alone, below 1 see help(labkit.Params)).")
    return value


def _seed(value):
    value = checks.whole("seed", value, example=42)
    if value != -1 and not 0 <= value <= MAX_SEED:
        raise BadInput(f"seed={value} must be -1 (random) or a non-negative integer up to 2**63 - 1.")
    return value


def _fraction(name, closed_top, why):
    def check(value):
        value = checks.real(name, value, example=0.5)
        if not (0 < value <= 1 if closed_top else 0 < value < 1):
            raise BadInput(f"{name}={value:g} is outside {'(0, 1]' if closed_top else '(0, 1)'}: {why}")
        return value
    return check


def _eta(value):
    if value is None:
        return None
    value = checks.real("eta", value, example=0.0)
    if not 0 <= value <= 1:
        raise BadInput(f"eta={value:g} is outside [0, 1]: 0 is deterministic DDIM, 1 adds the full noise "
                       f"(None: the sampler's default).")
    return value


def _one_of(name, options, what):
    def check(value):
        checks.text(name, value)
        if value not in options:
            raise BadInput(f"{name}={value!r} is not one of {options} ({what})." + checks.did_you_mean(value, options))
        return value
    return check


# field -> check(value) -> the value as Params holds it; BadInput naming the fix otherwise
CHECKS = {
    "prompt": lambda v: checks.text("prompt", v),
    "negative_prompt": lambda v: checks.text("negative_prompt", v),
    "steps": _steps,
    "cfg": _cfg,
    "sampler": lambda v: checks.text("sampler", v),
    "schedule": lambda v: checks.text("schedule", v),
    "seed": _seed,
    "width": lambda v: _size("width", v),
    "height": lambda v: _size("height", v),
    "batch_size": _at_least("batch_size", 1, "at least 1 picture per run is needed."),
    "strength": _fraction("strength", True, "0.3 keeps most of the image, 1.0 redraws it."),
    "mask_blur": _at_least("mask_blur", 0, "the blur radius is 0 (sharp) or more pixels; A1111's default is 4."),
    "only_masked": lambda v: checks.flag("only_masked", v),
    "padding": _at_least("padding", 0, "the padding around the mask is 0 or more pixels; A1111's default is 32."),
    "switch_at": _fraction("switch_at", False, "it is where along the noise schedule the base hands over to the "
                                               "refiner (diffusers' denoising_end), e.g. 0.8."),
    "clip_skip": _at_least("clip_skip", 1, "A1111 counts from 1 (no skip); use 1 or 2."),
    "emphasis": _one_of("emphasis", EMPHASIS, "A1111's emphasis modes"),
    "eta": _eta,
    "noise": _one_of("noise", NOISE_MODES, "the tools whose noise labkit draws"),
    "sgm_noise_multiplier": lambda v: checks.flag("sgm_noise_multiplier", v),
    "model": lambda v: checks.text("model", v),
    "control": lambda v: _units(v),
    "hires": lambda v: checks.flag("hires", v),
    "hires_scale": lambda v: _hires_scale(v),
    "hires_resize_x": lambda v: _resize("hires_resize_x", v),
    "hires_resize_y": lambda v: _resize("hires_resize_y", v),
    "hires_steps": _at_least("hires_steps", 0, "0 runs as many steps as the first pass (A1111's default)."),
    "hires_upscaler": lambda v: checks.text("hires_upscaler", v),
    "hires_sampler": lambda v: checks.text("hires_sampler", v),
    "hires_schedule": lambda v: checks.text("hires_schedule", v),
    "hires_prompt": lambda v: checks.text("hires_prompt", v),
    "hires_negative_prompt": lambda v: checks.text("hires_negative_prompt", v),
    "hires_cfg": lambda v: None if v is None else _cfg(v, "hires_cfg"),
    "hires_checkpoint": lambda v: checks.text("hires_checkpoint", v),
}


def _hires_scale(value):
    value = checks.real("hires_scale", value, example=2)
    if not 0 < value <= 8:
        raise BadInput(f"hires_scale={value:g}: hires fix upscales by more than 1 and at most 8 (A1111's slider: "
                       f"1 to 4), e.g. hires_scale=2.")
    return value


def _resize(name, value):
    return 0 if checks.whole(name, value, example=1024) == 0 else _size(name, value)


def _units(value) -> tuple:
    from .controlnet.units import as_units

    return as_units(value)


def check_field(name: str, value):
    """`value` as the Params field `name` holds it (an int from a NumPy integer, a float from an int...);
    BadInput naming the fix when it cannot be. Recipe readers use it so a wrong value never reaches Params."""
    if name not in CHECKS:
        checks.unknown_keywords([name], FIELDS, "Params")
    return CHECKS[name](value)


def check_all(p: Params) -> dict:
    """{field: checked value} of every field of `p`; BadInput at the first that cannot run."""
    values = {name: check_field(name, getattr(p, name)) for name in FIELDS}
    if values["seed"] > 0 and values["seed"] + values["batch_size"] - 1 > MAX_SEED:
        raise BadInput(f"seed={values['seed']} with batch_size={values['batch_size']}: image i uses seed + i, which "
                       f"passes 2**63 - 1; use a smaller seed.")
    if values["hires"] and values["hires_scale"] <= 1 and not (values["hires_resize_x"] or values["hires_resize_y"]):
        raise BadInput(f"hires_scale={values['hires_scale']:g} does not make the picture bigger: hires fix upscales "
                       f"by more than 1 (e.g. hires_scale=2), or give hires_resize_x / hires_resize_y.")
    return values


def _checked_init(init):
    """Params' constructor with unknown or positional-overflow arguments answered by BadInput, not TypeError."""
    from functools import wraps

    @wraps(init)
    def __init__(self, *args, **kwargs):
        if len(args) > len(FIELDS):
            raise BadInput(f"Params takes at most {len(FIELDS)} settings; name them: Params(prompt=..., steps=...).")
        taken = set(FIELDS[:len(args)])
        twice = sorted(taken & set(kwargs))
        if twice:
            raise BadInput(f"Params got {', '.join(twice)} twice (by position and by name); give each once.")
        checks.unknown_keywords(kwargs, FIELDS, "Params")
        init(self, *args, **kwargs)

    return __init__


Params.__init__ = _checked_init(Params.__init__)
