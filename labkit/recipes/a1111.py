"""Reading A1111-style infotext: A1111 itself, Forge, Fooocus' "a1111" scheme and labkit's own `parameters`.

The writer is told apart by the Version field; sampler names are read as that version wrote them (before 1.9 the
name carried the schedule, "DPM++ 2M Karras"); fields labkit has no setting for go to `unmapped`.
"""

import re

from .. import samplers
from ..controlnet.infotext import pop_units
from ..errors import BadInput
from ..params import EMPHASIS
from .hires_fields import HIRES_FIELDS, pop_hires
from .infotext import LORA_TAG, name_values, split_infotext, split_title
from .recipe import (TOOL_DEFAULTS, Recipe, float_or_none, make_params, map_fields, require_core, to_bool, to_float,
                     to_int)

SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
VERSION_RE = re.compile(r"(?:^|v)\d+\.\d+")  # what samplers.canonical can read as an A1111 version
PRE_SCHEDULE_TYPE = "1.8"  # an A1111 version before "Schedule type" existed (v1.9): names carried the schedule
# Version field -> tool (first match wins); anything else is A1111
VERSION_TOOLS = ((re.compile(r"^labkit\b", re.I), "labkit"), (re.compile(r"^f\d"), "Forge"),
                 (re.compile(r"^fooocus\b", re.I), "Fooocus"))
HASH_TYPES = {8: "AutoV1", 10: "AutoV2", 12: "AutoV3", 64: "sha256"}
RNG_NOISE = {"CPU": "a1111-cpu", "GPU": "a1111-gpu"}
INPAINT_AREA = {"Only masked": True, "Whole picture": False}
HIRES_PREFIXES = ("Hires", "First pass size")
INPAINT_SIGNS = ("Mask blur", "Inpaint area", "Masked area padding", "Mask mode", "Masked content")


def to_size(value) -> tuple[int, int]:
    width, height = SIZE_RE.match(str(value).strip()).groups()
    return int(width), int(height)


def to_emphasis(value) -> str:
    if value not in EMPHASIS:
        raise ValueError(f"{value!r} is not one of {EMPHASIS}")
    return value


# infotext key -> (Params field(s), converter); "Sampler", "Model", "Lora hashes"... are read by their own functions
A1111_FIELDS = {
    "Steps": ("steps", to_int),
    "CFG scale": ("cfg", to_float),
    "Seed": ("seed", to_int),
    "Size": (("width", "height"), to_size),
    "Denoising strength": ("strength", to_float),
    "Clip skip": ("clip_skip", to_int),
    "RNG": ("noise", RNG_NOISE.__getitem__),
    "Eta": ("eta", to_float),
    "Eta DDIM": ("eta", to_float),
    "Refiner switch at": ("switch_at", to_float),
    "Mask blur": ("mask_blur", to_int),
    "Inpaint area": ("only_masked", INPAINT_AREA.__getitem__),
    "Masked area padding": ("padding", to_int),
    "Batch size": ("batch_size", to_int),
    "Emphasis": ("emphasis", to_emphasis),
    "SGM noise multiplier": ("sgm_noise_multiplier", to_bool),
}


def lora_list(prompt: str, hashes: str | None = None, weights: str | None = None) -> list[dict]:
    """LoRAs from `<lora:name:weight>` tags and A1111's "Lora hashes" / Fooocus' "Lora weights" lists."""
    loras = {}
    for name, weight in LORA_TAG.findall(prompt):
        loras.setdefault(name, {"name": name, "weight": float_or_none(weight or "1"), "hash": None})
    for name, value in name_values(hashes).items():
        loras.setdefault(name, {"name": name, "weight": None, "hash": None})["hash"] = value
    for name, value in name_values(weights).items():
        entry = loras.setdefault(name, {"name": name, "weight": None, "hash": None})
        entry["weight"] = entry["weight"] if entry["weight"] is not None else float_or_none(value)
    return list(loras.values())


def tool_of_version(version: str | None) -> str:
    """Which program wrote an infotext, from its Version field."""
    for pattern, tool in VERSION_TOOLS:
        if version and pattern.search(version):
            return tool
    return "A1111"


def _sampler_era(tool: str, version: str | None) -> str | None:
    """The A1111 version whose sampler names the text uses, for samplers.canonical (None: current)."""
    if tool == "labkit":
        return None
    if tool == "Fooocus" or version is None:
        return PRE_SCHEDULE_TYPE  # no Version: A1111 before 1.6; Fooocus writes pre-1.9 combined names
    return version if VERSION_RE.search(version) else None


def resolve_sampler(name: str, schedule: str | None, version: str | None, notes: list) -> tuple[str, str]:
    """A1111's (sampler, schedule) via samplers.canonical; names it cannot resolve are kept as written, noted."""
    try:
        return samplers.canonical(name, schedule, version)
    except BadInput as error:
        sampler, suffix = samplers.split_combined(name)
        notes.append(f"Sampler {name!r} kept as written: {error}")
        return sampler, suffix or schedule or samplers.AUTOMATIC


def _a1111_sampler(fields: dict, tool: str, version: str | None, notes: list) -> dict:
    """Sampler and schedule: "Schedule type" (v1.9+), else the combined name, else what the version implied."""
    name = fields.pop("Sampler", None)
    schedule = fields.pop("Schedule type", None)
    if tool == "Fooocus" and schedule is None:
        schedule = fields.pop("Scheduler", None)  # Fooocus writes ComfyUI's scheduler name beside the sampler
    if name is None:
        notes.append("No Sampler field: labkit's default sampler is used.")
        return {}
    era = _sampler_era(tool, version)
    sampler, resolved = resolve_sampler(name, schedule, era, notes)
    if schedule is None and era is not None:
        try:
            today = samplers.canonical(name, None, None)[1]
        except BadInput:
            today = resolved
        if today != resolved:
            written = f"Version {version}" if version else "no Version field"
            notes.append(f"Sampler {name!r} without Schedule type and {written} (before A1111 1.9) means "
                         f"{resolved!r} sigmas; since 1.9 it would mean {today!r}.")
    return {"sampler": sampler, "schedule": resolved}


def _a1111_model(fields: dict, notes: list) -> dict:
    """{name, hash, hash_type, refiner, refiner_hash} from Model, Model hash and Refiner."""
    model = {}
    name, file_hash, refiner = (fields.pop(key, None) for key in ("Model", "Model hash", "Refiner"))
    if name:
        model["name"] = name
    if file_hash:
        model["hash"] = file_hash
        model["hash_type"] = HASH_TYPES.get(len(file_hash), "unknown")
        if model["hash_type"] == "AutoV1":
            notes.append(f"Model hash {file_hash} is A1111's legacy 8-character hash (before v1.6): compare it with "
                         "labkit.hashes.autov1(file).")
    if file_hash and not name:
        notes.append("No Model name, only its hash: find the checkpoint by hash.")
    if refiner:
        model["refiner"], refiner_hash = split_title(refiner)
        if refiner_hash:
            model["refiner_hash"] = refiner_hash
        notes.append(f"Made with the refiner {refiner}: pass refiner=labkit.open(...) with that model to txt2img.")
    return model


def _a1111_mode(fields: dict) -> str:
    hires = any(key.startswith(HIRES_PREFIXES) for key in fields)
    if any(key in fields for key in INPAINT_SIGNS):
        return "inpaint"
    return "img2img" if "Denoising strength" in fields and not hires else "txt2img"


def parse_a1111(text: str, tool: str | None = None) -> Recipe:
    """A Recipe from A1111-style infotext (A1111, Forge, Fooocus' a1111 scheme, labkit's own).

    `tool` forces the writer (otherwise read from the Version field). BadInput when there is no parameter line
    or none of its core fields can be read.
    """
    if not isinstance(text, str):
        raise BadInput(f"Infotext must be text, not {type(text).__name__}.")
    prompt, negative, fields = split_infotext(text)
    if not fields:
        raise BadInput("No A1111 parameter line: the last line should read like 'Steps: 20, Sampler: Euler a, "
                       "CFG scale: 7, Seed: 1, Size: 512x512' (at least 3 'key: value' pairs).")
    version = fields.pop("Version", None)
    tool = tool or tool_of_version(version)
    notes, unmapped = [], {}
    mode = _a1111_mode(fields)
    values = {**TOOL_DEFAULTS.get(tool, {}), "prompt": prompt, "negative_prompt": negative}
    model = _a1111_model(fields, notes)
    values["model"] = model.get("name", "")
    values.update(_a1111_sampler(fields, tool, version, notes))
    pop_hires(fields, values, model, notes,
              lambda name, schedule: resolve_sampler(name, schedule, _sampler_era(tool, version), notes))
    map_fields(fields, HIRES_FIELDS, values, unmapped, notes)
    units = pop_units(fields, unmapped, notes)
    if units:
        values["control"] = units
    loras = lora_list(prompt, fields.pop("Lora hashes", None), fields.pop("Lora weights", None))
    map_fields(fields, A1111_FIELDS, values, unmapped, notes)
    require_core(values, "infotext")
    if fields:  # what is left: fields labkit has no setting for
        unmapped.update(fields)
        notes.append(f"Fields labkit does not use, kept in unmapped: {', '.join(fields)}.")
    params = make_params(values, unmapped, notes)
    return Recipe(params=params, tool=tool, unmapped=unmapped, raw=text, notes=notes, loras=loras,
                  version=version, model=model, mode=mode)
