"""ControlUnit: one ControlNet unit with AUTOMATIC1111's settings, checked when made; and the extension's rules as
small pure functions: which sampling steps a unit is active in, the per-residual scales of each control mode,
which half of a classifier-free-guidance batch gets the control."""

from dataclasses import dataclass, fields, replace

from .. import checks
from ..errors import BadInput

CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")
SOFT_BASE = 0.825  # the extension's soft injection: residual i of n scaled by 0.825 ** (n - 1 - i)
MAX_WEIGHT = 2.0  # the extension's weight slider: 0 to 2


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet unit, as A1111's ControlNet extension sets it up.

    `model`: a ControlNet's name (a file stem on the search paths, e.g. "toy-controlnet") or path. `image`: the
    control picture (PIL image, array or path); it is an input of the run, not part of the recipe, so a Result's
    Params keep the unit without it. `module`: the preprocessor (labkit.controlnet.PREPROCESSORS, "none" to use
    the picture as the map). `weight` 0..2; `guidance_start` / `guidance_end`: the share of sampling steps the
    unit acts in (A1111's rule: active while start <= step / steps <= end). `processor_res`, `threshold_a`,
    `threshold_b`: the preprocessor's resolution and its two sliders (None: the module's defaults);
    `pixel_perfect` computes the resolution from the picture and the generation size as A1111 does.
    """

    model: str = ""
    image: object = None
    module: str = "none"
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    control_mode: str = "Balanced"
    resize_mode: str = "Crop and Resize"
    pixel_perfect: bool = False
    processor_res: int = 512
    threshold_a: float | None = None
    threshold_b: float | None = None
    enabled: bool = True

    def __post_init__(self):
        for name, value in check_unit(self).items():
            object.__setattr__(self, name, value)

    def replace(self, **changes) -> "ControlUnit":
        checks.unknown_keywords(changes, UNIT_FIELDS, "ControlUnit")
        return replace(self, **changes)

    def settings(self) -> "ControlUnit":
        """The unit without its picture: what a recipe records."""
        return self if self.image is None else replace(self, image=None)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                          if f.name != "image" and getattr(self, f.name) != f.default)
        picture = "" if self.image is None else f", image=<{type(self.image).__name__}>"
        return f"ControlUnit({shown}{picture})"


UNIT_FIELDS = tuple(f.name for f in fields(ControlUnit))


def _range(name, low, high, why):
    def check(value):
        value = checks.real(name, value, example=(low + high) / 2)
        if not low <= value <= high:
            raise BadInput(f"{name}={value:g} is outside [{low:g}, {high:g}]: {why}")
        return value
    return check


def _choice(name, options, what):
    def check(value):
        checks.text(name, value)
        if value not in options:
            raise BadInput(f"{name}={value!r} is not one of {', '.join(map(repr, options))} ({what})."
                           + checks.did_you_mean(value, options))
        return value
    return check


def _module(value):
    from .preprocess import PREPROCESSORS

    return _choice("module", tuple(PREPROCESSORS), "the preprocessors labkit runs without a model")(value)


def _optional_real(name):
    return lambda v: None if v is None else checks.real(name, v, example=100)


UNIT_CHECKS = {
    "model": lambda v: checks.text("model", str(v) if hasattr(v, "__fspath__") else v),
    "image": lambda v: v,
    "module": _module,
    "weight": _range("weight", 0.0, MAX_WEIGHT, "the extension's weight runs from 0 (off) to 2; 1 is the default."),
    "guidance_start": _range("guidance_start", 0.0, 1.0, "it is the share of the steps before the unit starts."),
    "guidance_end": _range("guidance_end", 0.0, 1.0, "it is the share of the steps after which the unit stops."),
    "control_mode": _choice("control_mode", CONTROL_MODES, "A1111's control modes"),
    "resize_mode": _choice("resize_mode", RESIZE_MODES, "A1111's resize modes"),
    "pixel_perfect": lambda v: checks.flag("pixel_perfect", v),
    "processor_res": lambda v: _processor_res(v),
    "threshold_a": _optional_real("threshold_a"),
    "threshold_b": _optional_real("threshold_b"),
    "enabled": lambda v: checks.flag("enabled", v),
}


def _processor_res(value):
    value = checks.whole("processor_res", value, example=512)
    if not 64 <= value <= 4096:
        raise BadInput(f"processor_res={value} is outside [64, 4096]: it is the side the preprocessor works at "
                       f"(A1111's default 512; pixel_perfect=True computes it).")
    return value


def check_unit(unit: ControlUnit) -> dict:
    values = {name: UNIT_CHECKS[name](getattr(unit, name)) for name in UNIT_FIELDS}
    if values["model"] == "" and values["enabled"]:
        raise BadInput("A ControlUnit needs a model: a ControlNet's name on the search paths (e.g. "
                       "'toy-controlnet') or its path.")
    if values["guidance_start"] > values["guidance_end"]:
        raise BadInput(f"guidance_start={values['guidance_start']:g} is after guidance_end="
                       f"{values['guidance_end']:g}: the unit would never act; start must be at most end.")
    return values


def as_units(value) -> tuple:
    """Params' `control` field: a ControlUnit, a dict of its fields or a list of them -> a tuple of units."""
    if value is None:
        return ()
    if isinstance(value, (ControlUnit, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise BadInput(f"control takes ControlUnit(...) or a list of them, not a {type(value).__name__}.")
    units = []
    for item in value:
        if isinstance(item, dict):
            checks.unknown_keywords(item, UNIT_FIELDS, "ControlUnit")
            item = ControlUnit(**item)
        if not isinstance(item, ControlUnit):
            raise BadInput(f"control takes ControlUnit(...) items, not a {type(item).__name__}.")
        units.append(item)
    return tuple(units)


# ---- the extension's rules, as pure functions ---------------------------------------------------------------

def active(step: int, total: int, start: float, end: float) -> bool:
    """Whether a unit acts at sampling step `step` (0-based) of `total`: A1111's rule start <= step/total <= end
    (diffusers' own rule, (step + 1) / total <= end, stops one step earlier)."""
    fraction = step / total
    return start <= fraction <= end


def layer_scales(mode: str, weight: float, n: int, xl: bool = False) -> list[float]:
    """The scale of each of a ControlNet's `n` residuals (the down ones, then the middle one): `weight` for all in
    "Balanced"; the extension's soft injection otherwise, weight * 0.825 ** (12 - i) over SD's 13 residuals (the
    middle one keeps the full weight). On SDXL the extension cuts that 13-list to its first 10, so SDXL's middle
    residual gets 0.825 ** 3 = 0.56 of the weight; labkit does the same, and counts the toy twins' shorter lists
    the same way: exponents n - 1 - i (SD layout) or n + 2 - i (SDXL layout)."""
    if mode == "Balanced":
        return [weight] * n
    top = n + 2 if xl else n - 1
    return [weight * SOFT_BASE ** (top - i) for i in range(n)]


def uncond_gets_control(mode: str) -> bool:
    """Whether the negative-prompt half of a classifier-free-guidance batch gets the residuals: not in
    "ControlNet is more important" (the extension's cfg injection: the control pulls only on the prompt side)."""
    return mode != "ControlNet is more important"
