"""Params: one frozen dataclass holding every generation setting, in A1111's language."""

from dataclasses import asdict, dataclass, fields, replace

from .errors import BadInput
from .prompts.syntax import EMPHASIS

NOISE_MODES = ("a1111-cpu", "a1111-gpu", "comfy")


@dataclass(frozen=True)
class Params:
    """Every setting of one generation.

    Names and units follow A1111's infotext: `cfg` is "CFG scale", `clip_skip=2` is "Clip skip: 2"
    (diffusers' `clip_skip=1`), `sampler`/`schedule` are A1111 names, `<lora:...>` tags stay in `prompt`.
    `seed=-1` draws a random seed; `width`/`height` of None mean the model's native size. `noise` names the tool
    whose noise and sampling start labkit reproduces; `sgm_noise_multiplier` is A1111's setting of that name
    ("SGM noise multiplier: True"): A1111's k-diffusion samplers then start a full denoise from
    noise * sqrt(1 + sigma_max^2), as ComfyUI always does, instead of noise * sigma_max.
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

    def replace(self, **changes) -> "Params":
        """A copy with `changes` applied; unknown names raise BadInput."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            valid = ", ".join(f.name for f in fields(self))
            raise BadInput(f"Unknown setting(s) {unknown}. Valid settings: {valid}.")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Params":
        """Params from a dict, ignoring keys that are not settings."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def validate(self) -> "Params":
        """Raise BadInput naming the fix for any setting the pipelines cannot run; return self."""
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (value < 8 or value % 8):
                near = max(8, round(value / 8) * 8)
                raise BadInput(f"{name}={value} is not a multiple of 8 (the VAE works in 8-pixel cells); use {near}.")
        if self.steps < 1:
            raise BadInput(f"steps={self.steps}: at least 1 step is needed; A1111's default is 20.")
        if self.batch_size < 1:
            raise BadInput(f"batch_size={self.batch_size}: at least 1 picture per run is needed.")
        if not 0 < self.strength <= 1:
            raise BadInput(f"strength={self.strength} is outside (0, 1]: 0.3 keeps most of the image, 1.0 redraws it.")
        if not 0 < self.switch_at < 1:
            raise BadInput(f"switch_at={self.switch_at} is outside (0, 1): it is where along the noise schedule the "
                           f"base hands over to the refiner (diffusers' denoising_end), e.g. 0.8.")
        if self.clip_skip < 1:
            raise BadInput(f"clip_skip={self.clip_skip}: A1111 counts from 1 (no skip); use 1 or 2.")
        if self.emphasis not in EMPHASIS:
            raise BadInput(f"emphasis={self.emphasis!r} is not one of {EMPHASIS} (A1111's emphasis modes).")
        if self.noise not in NOISE_MODES:
            raise BadInput(f"noise={self.noise!r} is not one of {NOISE_MODES}.")
        return self
