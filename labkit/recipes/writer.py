"""Writing recipes: A1111's `parameters` text, labkit's JSON recipe, and image files carrying both.

    infotext(params, model, mode) -> str                      A1111's `parameters` text
    save_image(image, "out.png", params, model, mode) -> Path   PNG, JPEG or WebP; atomic; never overwrites by default

`model` is a Result's ModelRecord (model, LoRAs, scheduler, dtype, device), or for callers without one a dict
{name, hash, refiner?, refiner_hash?} with the run's {scheduler, loras, dtype, device} in `extra`.
"""

import json
from pathlib import Path

from ..errors import BadInput
from ..files import exists_message, write_atomic
from ..controlnet.infotext import unit_fields
from ..params import Params
from .containers import RGB_ONLY, image_format, image_options, software
from .hires_fields import hires_infotext
from .infotext import join_infotext, number, title
from .own import RECIPE_FORMAT
from .records import ModelRecord

# labkit noise -> A1111 "RNG" (written only when it is not the GPU default). ComfyUI's single CPU draw gives the
# same first image as A1111's CPU RNG.
NOISE_RNG = {"a1111-cpu": "CPU", "a1111-gpu": None, "comfy": "CPU"}
ETA_FIELD = {"DDIM": "Eta DDIM", "PLMS": "Eta DDIM"}  # A1111's timestep samplers write "Eta DDIM", the rest "Eta"
MODE_FIELDS = {"txt2img": (), "img2img": ("strength",), "inpaint": ("strength", "mask"),
               "outpaint": ("strength", "mask")}  # which mode-specific infotext fields a mode writes
LIBRARIES = ("diffusers", "torch", "transformers")  # versions recorded beside labkit's own


def model_and_run(model, extra: dict | None = None) -> tuple[dict, dict]:
    """({name, hash, refiner, ...}, {scheduler, loras, dtype, device}) from a ModelRecord, or from a model dict
    and `extra`; BadInput for `extra` beside a ModelRecord, which carries its own."""
    if not isinstance(model, ModelRecord):
        return dict(model or {}), dict(extra or {})
    if extra:
        raise BadInput("extra= goes with a model dict; a ModelRecord carries its own scheduler, LoRAs, dtype "
                       "and device.")
    run = {"scheduler": model.scheduler, "loras": [lora.to_dict() for lora in model.loras], "dtype": model.dtype,
           "device": model.device}
    return model.to_dict(), run


def _lora_records(loras) -> list[dict]:
    """LoRAs as {name, weight, hash} dicts, from dicts or (name, weight, hash) tuples."""
    keys = ("name", "weight", "hash")
    out = []
    for item in loras or ():
        record = dict(item) if isinstance(item, dict) else dict(zip(keys, item))
        out.append({key: record.get(key) for key in keys})
    return out


def _lora_hashes(loras) -> str | None:
    """A1111's "Lora hashes" value: "name1: hash1, name2: hash2"."""
    pairs = [f"{r['name']}: {r['hash']}" for r in _lora_records(loras) if r["name"] and r["hash"]]
    return ", ".join(pairs) or None


def infotext_fields(p: Params, model=None, mode: str = "txt2img", extra: dict | None = None) -> dict:
    """The `key: value` fields of A1111's parameter line in A1111's order; fields without a value are left out."""
    model, run = model_and_run(model, extra)
    uses = MODE_FIELDS.get(mode, ())
    masked = "mask" in uses
    refiner = model.get("refiner")
    fields = {
        "Steps": p.steps,
        "Sampler": p.sampler,
        "Schedule type": p.schedule,
        "CFG scale": number(p.cfg),
        "Seed": p.seed,
        "Size": f"{p.width}x{p.height}" if p.width and p.height else None,
        "Model hash": model.get("hash"),
        "Model": model.get("name") or p.model or None,
        "Denoising strength": number(p.strength) if "strength" in uses or (p.hires and mode == "txt2img") else None,
        "Clip skip": p.clip_skip if p.clip_skip > 1 else None,
        "RNG": NOISE_RNG.get(p.noise),
        **(hires_infotext(p, model) if mode == "txt2img" else {}),
        "Refiner": title(refiner, model.get("refiner_hash")) if refiner else None,
        "Refiner switch at": number(p.switch_at) if refiner else None,
        "Mask blur": p.mask_blur if masked else None,
        "Inpaint area": "Only masked" if masked and p.only_masked else None,
        "Masked area padding": p.padding if masked and p.only_masked else None,
        "Lora hashes": _lora_hashes(run.get("loras")),
        "Emphasis": p.emphasis if p.emphasis != "Original" else None,  # A1111: absent means "Original"
        "SGM noise multiplier": True if p.sgm_noise_multiplier else None,  # A1111 writes it only when on
        ETA_FIELD.get(p.sampler, "Eta"): number(p.eta) if p.eta is not None else None,
        **unit_fields(p.control),
        "Version": software(),
    }
    return {key: value for key, value in fields.items() if value is not None}


def infotext(params: Params, model=None, mode: str = "txt2img", extra: dict | None = None) -> str:
    """A1111's `parameters` text: prompt, "Negative prompt: ..." (when not empty), then the parameter line."""
    return join_infotext(params.prompt, params.negative_prompt, infotext_fields(params, model, mode, extra))


def _jsonable(value):
    """`value` with everything JSON cannot hold turned into text (tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _scheduler_record(scheduler) -> dict | None:
    """{"class", "config"} from a diffusers scheduler or from such a dict already made."""
    if scheduler is None:
        return None
    if isinstance(scheduler, dict):
        return _jsonable(scheduler)
    return {"class": type(scheduler).__name__, "config": _jsonable(dict(scheduler.config))}


def library_versions() -> dict:
    """Installed versions of labkit and the libraries that shape the pixels (None when missing); no imports."""
    from importlib import metadata

    from ..version import __version__

    versions = {"labkit": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def recipe_dict(params: Params, model=None, mode: str = "txt2img", extra: dict | None = None) -> dict:
    """labkit's own recipe: the exact Params plus what A1111's text cannot say (scheduler config, versions...)."""
    model, run = model_and_run(model, extra)
    device, dtype = run.get("device"), run.get("dtype")
    return {
        "format": RECIPE_FORMAT,
        "params": params.to_dict(),
        "mode": mode,
        "model": _jsonable(model),
        "noise": params.noise,
        "scheduler": _scheduler_record(run.get("scheduler")),
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "device": str(device).split(":")[0] if device is not None else None,
        "loras": _jsonable(_lora_records(run.get("loras"))),
        "libraries": library_versions(),
    }


def save_image(image, path, params: Params, model=None, mode: str = "txt2img", extra: dict | None = None,
               overwrite: bool = False, chunks: dict | None = None) -> Path:
    """Write `image` to `path` (.png, .jpg/.jpeg, .webp) with its recipe; returns the path.

    `model`: a ModelRecord, or {name, hash, refiner?} with `extra` {scheduler (a diffusers scheduler or {class,
    config}), loras ([{name, weight, hash}]), dtype, device}. `chunks`: more PNG text chunks ({name: text}).
    Refuses to replace an existing file unless `overwrite=True`; the file appears complete or not at all.
    """
    path = Path(path)
    fmt = image_format(path)
    if path.is_dir():
        raise BadInput(f"{path} is a folder; give a file name such as {path / 'image.png'}.")
    if path.exists() and not overwrite:
        raise BadInput(exists_message(path))
    text = infotext(params, model, mode, extra)
    recipe_json = json.dumps(recipe_dict(params, model, mode, extra))  # ASCII: fits a PNG tEXt chunk
    options = image_options(fmt, text, recipe_json, chunks)
    picture = image.convert("RGB") if fmt in RGB_ONLY and image.mode not in ("RGB", "L") else image

    def write(temp):
        try:
            picture.save(temp, format=fmt, **options)
        except (OSError, ValueError) as error:  # Pillow: EXIF or XMP too long for the format, encoder errors...
            if isinstance(error, OSError) and error.errno is not None:
                raise  # the OS's own error (disk full...): write_atomic says what to do
            raise BadInput(f"Could not write {path}: {error}") from None

    return write_atomic(path, write, overwrite=overwrite)
