"""Recipe: what an image file says about how it was made, and the converters every reader shares to turn a
tool's fields into Params fields (unreadable values go to `unmapped` with a note, never into Params)."""

import json
import math
from dataclasses import dataclass, field
from pathlib import PureWindowsPath

from ..errors import BadInput
from ..params import Params, check_field

CORE_FIELDS = ("steps", "cfg", "seed", "sampler", "width")  # a recipe must map at least one of these
# settings a tool assumes when its recipe leaves a field out (A1111: "RNG" absent means GPU)
TOOL_DEFAULTS = {"A1111": {"noise": "a1111-gpu"}, "Forge": {"noise": "a1111-gpu"},
                 "labkit": {"noise": "a1111-gpu"}, "Fooocus": {"noise": "comfy"}}
# why a value could not be used, for fields where the reason teaches something
UNMAPPED_WHY = {
    "RNG": "labkit draws A1111's CPU or GPU noise; A1111's 'NV' RNG reproduces an NVIDIA GPU's numbers on the CPU, "
           "so noise='a1111-gpu' on an NVIDIA GPU gives the same noise.",
}
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


@dataclass
class Recipe:
    """What an image file says about how it was made, in labkit's terms.

    `params`: the settings labkit can use; `unmapped`: fields it could not map, with their values; `notes`: what
    was assumed or could not be reproduced; `loras`: [{name, weight, hash}]; `model`: {name, hash, ...} as the
    file gives it (keys differ by tool: A1111's hash_type and refiner_hash, InvokeAI's base...).
    """

    params: Params
    tool: str
    unmapped: dict = field(default_factory=dict)
    raw: str | dict = ""
    notes: list = field(default_factory=list)
    loras: list = field(default_factory=list)
    version: str | None = None
    model: dict = field(default_factory=dict)
    mode: str = "txt2img"


# ---- field converters: a value as a tool writes it -> a Params value; ValueError (or TypeError...) otherwise ------
def to_int(value) -> int:
    """A whole number from text or a number ("20", 20, 20.0); ValueError otherwise (True is not 1)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        return int(str(value).strip())
    except ValueError:
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number") from None
        return int(number)


def to_float(value) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def to_bool(value) -> bool:
    """A1111's True / False as written in infotext (or a JSON boolean); ValueError otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"{value!r} is not True or False")
    return text == "true"


def to_text(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    return value


def float_or_none(value):
    try:
        return to_float(value)
    except (ValueError, TypeError, OverflowError):
        return None


def model_stem(value) -> str:
    """"SDXL\\juggernaut.safetensors" -> "juggernaut"; "" for anything that is not text."""
    if not isinstance(value, str):
        return ""
    name = PureWindowsPath(value).name
    for suffix in MODEL_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# ---- payloads and fields -----------------------------------------------------------------------------------------
def json_object(data, what: str) -> dict:
    """`data` itself, or the JSON object in text; BadInput for text that is not JSON or not an object."""
    value = data
    if isinstance(data, str):
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            raise BadInput(f"The {what} is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadInput(f"The {what} is not a JSON object.")
    return value


def as_text(value) -> str:
    """A field value for `unmapped`: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (ValueError, RecursionError):
        return repr(value)


def map_fields(source: dict, table: dict, values: dict, unmapped: dict, notes: list) -> None:
    """Move the keys of `table` ({key: (Params field or fields, converter)}) from `source` into `values`,
    converted; unreadable values go to `unmapped`, with a note."""
    for key, (target, convert) in table.items():
        if key not in source:
            continue
        raw = source.pop(key)
        try:
            value = convert(raw)
            pairs = zip(target, value, strict=True) if isinstance(target, tuple) else [(target, value)]  # Size: 2
            values.update({name: check_field(name, v) for name, v in pairs})  # never a value Params refuses
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:  # BadInput is a ValueError
            unmapped[key] = as_text(raw)
            why = str(error) if isinstance(error, BadInput) else UNMAPPED_WHY.get(key, "")
            notes.append(f"{key}: {shorter(raw)} could not be used. {why}".strip())


def shorter(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def make_params(values: dict, unmapped: dict, notes: list) -> Params:
    """Params from a reader's values: a value Params refuses goes to `unmapped` with a note saying why, so a
    recipe always holds settings that run (or labkit's defaults)."""
    kept = {}
    for name, value in values.items():
        try:
            kept[name] = check_field(name, value)
        except BadInput as error:
            unmapped.setdefault(name, as_text(value))
            notes.append(f"{name}: {shorter(value)} could not be used. {error}")
    try:
        return Params(**kept)
    except BadInput as error:  # settings that do not go together (seed + batch_size past the largest seed)
        notes.append(f"batch_size: {kept.get('batch_size')} could not be used with this seed. {error}")
        unmapped.setdefault("batch_size", as_text(kept.pop("batch_size", None)))
        return Params(**kept)


def require_core(values: dict, what: str) -> None:
    """BadInput unless the recipe gave at least one of the core settings in a readable form."""
    if not any(name in values for name in CORE_FIELDS):
        raise BadInput(f"The {what} has none of steps, CFG scale, seed, sampler or size in a readable form: "
                       "it is truncated or not a generation recipe.")
