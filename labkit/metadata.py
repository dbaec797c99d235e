"""Recipes in image files: write them (A1111 infotext, labkit JSON, XMP) and read them back from the SD tools.

    infotext(params, model, mode, extra) -> str               A1111's `parameters` text
    save_image(image, "out.png", params, ...) -> Path         PNG, JPEG or WebP; atomic; never overwrites by default
    read_recipe(source) -> Recipe                             path, PIL image, bytes, infotext or JSON text
    read_params(source) -> Params

Where a file keeps its recipe:

| file      | A1111 infotext                             | labkit JSON                | XMP (AI-made marker)          |
|-----------|--------------------------------------------|----------------------------|-------------------------------|
| PNG       | tEXt/iTXt `parameters`                     | tEXt `labkit`              | iTXt `XML:com.adobe.xmp`      |
| JPEG/WebP | EXIF UserComment, "UNICODE\\0" + UTF-16BE   | `labkit:recipe` in the XMP | APP1 segment / `XMP ` chunk   |

Readers, tried in this order: labkit JSON (exact Params), InvokeAI `invokeai_metadata`, `parameters` (A1111,
Forge, Fooocus in both schemes), EXIF UserComment, ComfyUI `prompt` (API graph). Every parser is a pure function
of text or a dict (`parse_a1111`, `parse_fooocus`, `parse_comfyui`, `parse_invokeai`, `parse_labkit`); files are
opened only in `read_recipe`. Parsers raise only `BadInput` / `UnsupportedFile`.
"""

import json
import math
import os
import re
import tempfile
from collections import deque
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path, PureWindowsPath
from xml.sax.saxutils import escape, quoteattr, unescape

from . import samplers
from .errors import BadInput, LabkitError, UnsupportedFile
from .files import FILE_MODE
from .params import EMPHASIS, Params

# ---- tables: writing ---------------------------------------------------------------------------------------------
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}  # file suffix -> Pillow format
ENCODER_OPTIONS = {"PNG": {}, "JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
RGB_ONLY = frozenset({"JPEG"})  # formats without an alpha channel
# labkit noise -> A1111 "RNG" (written only when it is not the GPU default). ComfyUI's single CPU draw gives the
# same first image as A1111's CPU RNG.
NOISE_RNG = {"a1111-cpu": "CPU", "a1111-gpu": None, "comfy": "CPU"}
ETA_FIELD = {"DDIM": "Eta DDIM", "PLMS": "Eta DDIM"}  # A1111's timestep samplers write "Eta DDIM", the rest "Eta"
MODE_FIELDS = {"txt2img": (), "img2img": ("strength",), "inpaint": ("strength", "mask"),
               "outpaint": ("strength", "mask")}  # which mode-specific infotext fields a mode writes
EXTRA_KEYS = ("scheduler", "loras", "dtype", "device")  # what save_image takes from `extra` (Result.save: result.model)
LIBRARIES = ("diffusers", "torch", "transformers")  # versions recorded beside labkit's own
RECIPE_FORMAT = "labkit-recipe/1"
AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
LABKIT_NS = "urn:labkit:xmp:1/"
XMP_LIMIT = 60000  # bytes: a JPEG APP1 segment holds at most 65502; the recipe leaves the XMP beyond this
EXIF_IFD, USER_COMMENT, MAKER_NOTE, EXIF_SOFTWARE = 0x8769, 0x9286, 0x927C, 0x0131

# ---- tables: reading ---------------------------------------------------------------------------------------------
PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')  # A1111's own pattern
SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
PAIR_RE = re.compile(r"^\(?\s*'?(\d+)'?\s*[,x×*]\s*'?(\d+)'?\s*\)?$")  # Fooocus "(1152, 896)"
VERSION_RE = re.compile(r"(?:^|v)\d+\.\d+")  # what samplers.canonical can read as an A1111 version
LORA_TAG = re.compile(r"<(?:lora|lyco):([^:>]+)(?::([^:>]*))?[^>]*>")
PRE_SCHEDULE_TYPE = "1.8"  # an A1111 version before "Schedule type" existed (v1.9): names carried the schedule
CORE_FIELDS = ("steps", "cfg", "seed", "sampler", "width")  # a recipe must map at least one of these

# Version field -> tool (first match wins); anything else is A1111
VERSION_TOOLS = ((re.compile(r"^labkit\b", re.I), "labkit"), (re.compile(r"^f\d"), "Forge"),
                 (re.compile(r"^fooocus\b", re.I), "Fooocus"))
# settings a tool assumes when its infotext leaves a field out (A1111: "RNG" absent means GPU)
TOOL_DEFAULTS = {"A1111": {"noise": "a1111-gpu"}, "Forge": {"noise": "a1111-gpu"},
                 "labkit": {"noise": "a1111-gpu"}, "Fooocus": {"noise": "comfy"}}
HASH_TYPES = {8: "AutoV1", 10: "AutoV2", 12: "AutoV3", 64: "sha256"}
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")

RNG_NOISE = {"CPU": "a1111-cpu", "GPU": "a1111-gpu"}
INPAINT_AREA = {"Only masked": True, "Whole picture": False}
INVOKE_NOISE = {"cpu": "a1111-cpu", "cuda": "a1111-gpu"}


def _int(value) -> int:
    """A whole number from text or a number ("20", 20, 20.0); ValueError otherwise."""
    try:
        return int(str(value).strip())
    except ValueError:
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number") from None
        return int(number)


def _float(value) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _text(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    return value


def _size(value) -> tuple[int, int]:
    width, height = SIZE_RE.match(str(value).strip()).groups()
    return int(width), int(height)


def _pair(value) -> tuple[int, int]:
    width, height = PAIR_RE.match(str(value).strip()).groups()
    return int(width), int(height)


def _emphasis(value) -> str:
    if value not in EMPHASIS:
        raise ValueError(f"{value!r} is not one of {EMPHASIS}")
    return value


def _clip_skip_from_zero(value) -> int:
    """InvokeAI counts skipped layers from 0; A1111 from 1."""
    return _int(value) + 1


# infotext key -> (Params field(s), converter); "Sampler", "Model", "Lora hashes"... are read by their own functions
A1111_FIELDS = {
    "Steps": ("steps", _int),
    "CFG scale": ("cfg", _float),
    "Seed": ("seed", _int),
    "Size": (("width", "height"), _size),
    "Denoising strength": ("strength", _float),
    "Clip skip": ("clip_skip", _int),
    "RNG": ("noise", RNG_NOISE.__getitem__),
    "Eta": ("eta", _float),
    "Eta DDIM": ("eta", _float),
    "Refiner switch at": ("switch_at", _float),
    "Mask blur": ("mask_blur", _int),
    "Inpaint area": ("only_masked", INPAINT_AREA.__getitem__),
    "Masked area padding": ("padding", _int),
    "Batch size": ("batch_size", _int),
    "Emphasis": ("emphasis", _emphasis),
}
# why a value could not be used, for fields where the reason teaches something
UNMAPPED_WHY = {
    "RNG": "labkit draws A1111's CPU or GPU noise; A1111's 'NV' RNG reproduces an NVIDIA GPU's numbers on the CPU, "
           "so noise='a1111-gpu' on an NVIDIA GPU gives the same noise.",
}
HIRES_PREFIXES = ("Hires", "First pass size")
INPAINT_SIGNS = ("Mask blur", "Inpaint area", "Masked area padding", "Mask mode", "Masked content")

FOOOCUS_FIELDS = {
    "steps": ("steps", _int),
    "guidance_scale": ("cfg", _float),
    "seed": ("seed", _int),
    "resolution": (("width", "height"), _pair),
    "clip_skip": ("clip_skip", _int),
    "refiner_switch": ("switch_at", _float),
}

INVOKE_FIELDS = {
    "positive_prompt": ("prompt", _text),
    "negative_prompt": ("negative_prompt", _text),
    "seed": ("seed", _int),
    "steps": ("steps", _int),
    "cfg_scale": ("cfg", _float),
    "width": ("width", _int),
    "height": ("height", _int),
    "strength": ("strength", _float),
    "clip_skip": ("clip_skip", _clip_skip_from_zero),
    "refiner_start": ("switch_at", _float),
    "rand_device": ("noise", INVOKE_NOISE.__getitem__),
}
# InvokeAI scheduler -> A1111 (sampler, schedule); "_k" means Karras sigmas. Not listed (no A1111 equivalent, kept
# as written): ddpm, deis, pndm, dpmpp_2s, dpmpp_3m (not SDE), tcd, and their _k forms.
INVOKE_SCHEDULERS = {
    "euler": ("Euler", "Uniform"), "euler_k": ("Euler", "Karras"), "euler_a": ("Euler a", "Uniform"),
    "heun": ("Heun", "Uniform"), "heun_k": ("Heun", "Karras"), "lms": ("LMS", "Uniform"), "lms_k": ("LMS", "Karras"),
    "kdpm_2": ("DPM2", "Uniform"), "kdpm_2_k": ("DPM2", "Karras"),
    "kdpm_2_a": ("DPM2 a", "Uniform"), "kdpm_2_a_k": ("DPM2 a", "Karras"),
    "dpmpp_2m": ("DPM++ 2M", "Uniform"), "dpmpp_2m_k": ("DPM++ 2M", "Karras"),
    "dpmpp_2m_sde": ("DPM++ 2M SDE", "Uniform"), "dpmpp_2m_sde_k": ("DPM++ 2M SDE", "Karras"),
    "dpmpp_sde": ("DPM++ SDE", "Uniform"), "dpmpp_sde_k": ("DPM++ SDE", "Karras"),
    "ddim": ("DDIM", "Automatic"), "unipc": ("UniPC", "Uniform"), "lcm": ("LCM", "Automatic"),
}

# ComfyUI API graph: node classes labkit follows
COMFY_SAMPLERS = ("KSampler", "KSamplerAdvanced")
COMFY_OUTPUTS = ("SaveImage", "PreviewImage")  # preferred in this order
COMFY_SAMPLER_FIELDS = {"seed": ("seed", _int), "noise_seed": ("seed", _int), "steps": ("steps", _int),
                        "cfg": ("cfg", _float)}
COMFY_LATENT_FIELDS = {"width": ("width", _int), "height": ("height", _int), "batch_size": ("batch_size", _int)}
COMFY_CHECKPOINTS = {"CheckpointLoaderSimple": "ckpt_name", "CheckpointLoader": "ckpt_name",
                     "unCLIPCheckpointLoader": "ckpt_name", "UNETLoader": "unet_name"}
COMFY_LORAS = ("LoraLoader", "LoraLoaderModelOnly")
COMFY_TEXTS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeSDXLRefiner": ("text",),
               "CLIPTextEncodeSDXL": ("text_g", "text_l")}
# conditioning joins -> (inputs, A1111 prompt syntax with the same meaning)
COMFY_JOINS = {"ConditioningCombine": (("conditioning_1", "conditioning_2"), " AND "),
               "ConditioningConcat": (("conditioning_to", "conditioning_from"), " BREAK ")}
COMFY_LATENT_SOURCES = {"EmptyLatentImage": "txt2img", "EmptySD3LatentImage": "txt2img",
                        "VAEEncode": "img2img", "VAEEncodeForInpaint": "inpaint"}
COMFY_LATENT_INPUTS = ("samples", "latent", "latent_image", "latents")  # how latents pass through other nodes
COMFY_VALUE_INPUTS = ("value", "seed", "noise_seed", "int", "float", "number", "text", "string", "Text", "prompt")
COMFY_MAX_DEPTH = 64  # conditioning nodes followed at most (the graph is checked for cycles first)


# ---- writing -----------------------------------------------------------------------------------------------------
def quote(value) -> str:
    """A1111's quoting: values containing ',', ':' or a newline are written as JSON strings."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def unquote(text: str) -> str:
    """A1111's unquoting: a value in double quotes is a JSON string; anything unreadable stays as written."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def number(x) -> str:
    """7.0 -> "7", 7.5 -> "7.5" (A1111 writes whole numbers without a decimal point)."""
    return str(int(x)) if float(x).is_integer() else str(x)


def software() -> str:
    from . import __version__

    return f"labkit {__version__}"


def _titled(name, file_hash) -> str:
    """A1111's checkpoint title: "name [hash]"."""
    return f"{name} [{file_hash}]" if file_hash else str(name)


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


def infotext_fields(p: Params, model: dict | None = None, mode: str = "txt2img", extra: dict | None = None) -> dict:
    """The `key: value` fields of A1111's parameter line in A1111's order; fields without a value are left out."""
    model, extra = model or {}, extra or {}
    uses = MODE_FIELDS.get(mode, ())
    masked = "mask" in uses
    refiner = model.get("refiner")
    fields_ = {
        "Steps": p.steps,
        "Sampler": p.sampler,
        "Schedule type": p.schedule,
        "CFG scale": number(p.cfg),
        "Seed": p.seed,
        "Size": f"{p.width}x{p.height}" if p.width and p.height else None,
        "Model hash": model.get("hash"),
        "Model": model.get("name") or p.model or None,
        "Denoising strength": number(p.strength) if "strength" in uses else None,
        "Clip skip": p.clip_skip if p.clip_skip > 1 else None,
        "RNG": NOISE_RNG.get(p.noise),
        "Refiner": _titled(refiner, model.get("refiner_hash")) if refiner else None,
        "Refiner switch at": number(p.switch_at) if refiner else None,
        "Mask blur": p.mask_blur if masked else None,
        "Inpaint area": "Only masked" if masked and p.only_masked else None,
        "Masked area padding": p.padding if masked and p.only_masked else None,
        "Lora hashes": _lora_hashes(extra.get("loras")),
        "Emphasis": p.emphasis if p.emphasis != "Original" else None,  # A1111: absent means "Original"
        ETA_FIELD.get(p.sampler, "Eta"): number(p.eta) if p.eta is not None else None,
        "Version": software(),
    }
    return {key: value for key, value in fields_.items() if value is not None}


def infotext(params: Params, model: dict | None = None, mode: str = "txt2img", extra: dict | None = None) -> str:
    """A1111's `parameters` text: prompt, "Negative prompt: ..." (when not empty), then the parameter line."""
    lines = [params.prompt]
    if params.negative_prompt:
        lines.append(f"Negative prompt: {params.negative_prompt}")
    fields_ = infotext_fields(params, model, mode, extra)
    lines.append(", ".join(f"{key}: {quote(value)}" for key, value in fields_.items()))
    return "\n".join(lines).strip()


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

    from . import __version__

    versions = {"labkit": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def recipe_dict(params: Params, model: dict | None = None, mode: str = "txt2img", extra: dict | None = None) -> dict:
    """labkit's own recipe: the exact Params plus what A1111's text cannot say (scheduler config, versions...)."""
    extra = extra or {}
    device, dtype = extra.get("device"), extra.get("dtype")
    return {
        "format": RECIPE_FORMAT,
        "params": params.to_dict(),
        "mode": mode,
        "model": _jsonable(model or {}),
        "noise": params.noise,
        "scheduler": _scheduler_record(extra.get("scheduler")),
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "device": str(device).split(":")[0] if device is not None else None,
        "loras": _jsonable(_lora_records(extra.get("loras"))),
        "libraries": library_versions(),
    }


def xmp_packet(recipe_json: str | None = None) -> str:
    """An XMP packet marking the file as made by a trained model (IPTC DigitalSourceType), naming labkit, and
    optionally carrying labkit's recipe JSON."""
    recipe = f"<labkit:recipe>{escape(recipe_json)}</labkit:recipe>" if recipe_json else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f'    xmlns:labkit="{LABKIT_NS}"\n'
        f"    xmp:CreatorTool={quoteattr(software())}\n"
        f'    Iptc4xmpExt:DigitalSourceType="{AI_SOURCE_TYPE}">{recipe}</rdf:Description>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def encode_user_comment(text: str) -> bytes:
    """EXIF UserComment as A1111 writes it (piexif's "unicode" encoding): b"UNICODE\\0" + UTF-16 big-endian."""
    return b"UNICODE\0" + text.encode("utf-16-be")


def _png_options(text: str, recipe_json: str) -> dict:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", text)  # Pillow switches to iTXt when the text is not Latin-1, as A1111's files do
    info.add_text("labkit", recipe_json)
    info.add_text("Software", software())
    info.add_itxt("XML:com.adobe.xmp", xmp_packet(), zip=False)
    return {"pnginfo": info}


def _exif_options(text: str, recipe_json: str) -> dict:
    from PIL import Image

    exif = Image.Exif()
    exif[EXIF_SOFTWARE] = software()
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = encode_user_comment(text)
    xmp = xmp_packet(recipe_json).encode()
    if len(xmp) > XMP_LIMIT:  # a huge prompt: keep the marker, the infotext still carries the recipe
        xmp = xmp_packet().encode()
    return {"exif": exif, "xmp": xmp}


METADATA_OPTIONS = {"PNG": _png_options, "JPEG": _exif_options, "WEBP": _exif_options}


def image_format(path) -> str:
    """Pillow's format name for a file name; BadInput for extensions labkit does not write."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise BadInput(f"{Path(path).name}: labkit writes recipes into {', '.join(FORMATS)} files; "
                       f"use one of those extensions.")
    return FORMATS[suffix]


def _exists_message(path: Path) -> str:
    return f"{path} already exists; pick another name or pass overwrite=True to replace it."


def _publish(temp: str, path: Path, overwrite: bool) -> None:
    """Move the finished temporary file to `path`; without `overwrite`, never replace a file (even one that
    appeared meanwhile): a hard link fails if the name exists."""
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise BadInput(_exists_message(path)) from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise BadInput(_exists_message(path)) from None
        os.replace(temp, path)


def _write_atomic(path: Path, write, overwrite: bool) -> None:
    """Call `write(file)` on a temporary file in `path`'s folder, then move it into place."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise BadInput(f"Cannot write into the folder {folder}: {error.strerror or error}. "
                       "Choose a folder you can write to.") from None
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.chmod(temp, FILE_MODE)
        _publish(temp, path, overwrite)
    except BadInput:
        raise
    except (OSError, ValueError) as error:  # Pillow: EXIF or XMP too long for the format, disk full...
        raise BadInput(f"Could not write {path}: {error}") from None
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def save_image(image, path, params: Params, model: dict | None = None, mode: str = "txt2img",
               extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write `image` to `path` (.png, .jpg/.jpeg, .webp) with its recipe; returns the path.

    `model`: {name, hash, refiner?}; `extra`: optional {scheduler (a diffusers scheduler or {class, config}),
    loras ([{name, weight, hash}]), dtype, device}. Refuses to replace an existing file unless `overwrite=True`;
    the file appears complete or not at all.
    """
    path = Path(path)
    fmt = image_format(path)
    if path.is_dir():
        raise BadInput(f"{path} is a folder; give a file name such as {path / 'image.png'}.")
    if path.exists() and not overwrite:
        raise BadInput(_exists_message(path))
    text = infotext(params, model, mode, extra)
    recipe_json = json.dumps(recipe_dict(params, model, mode, extra))  # ASCII: fits a PNG tEXt chunk
    options = {**ENCODER_OPTIONS[fmt], **METADATA_OPTIONS[fmt](text, recipe_json)}
    picture = image.convert("RGB") if fmt in RGB_ONLY and image.mode not in ("RGB", "L") else image
    _write_atomic(path, lambda f: picture.save(f, format=fmt, **options), overwrite)
    return path


# ---- reading: the result -----------------------------------------------------------------------------------------
@dataclass
class Recipe:
    """What an image file says about how it was made, in labkit's terms.

    `params`: the settings labkit can use; `unmapped`: fields it could not map, with their values; `notes`: what
    was assumed or could not be reproduced; `loras`: [{name, weight, hash}]; `model`: {name, hash, ...}.
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


def _as_json(data, what: str):
    """`data` itself, or the JSON value of text; BadInput for text that is not JSON."""
    if not isinstance(data, str):
        return data
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise BadInput(f"The {what} is not valid JSON.") from None


def _as_dict(data, what: str) -> dict:
    value = _as_json(data, what)
    if not isinstance(value, dict):
        raise BadInput(f"The {what} is not a JSON object.")
    return value


def _as_text(value) -> str:
    """A field value for `unmapped`: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (ValueError, RecursionError):
        return repr(value)


def _assign(values: dict, target, value) -> None:
    """Set one Params field, or several from a tuple (Size -> width, height)."""
    if isinstance(target, tuple):
        values.update(zip(target, value))
    else:
        values[target] = value


def _map_fields(source: dict, table: dict, values: dict, unmapped: dict, notes: list) -> None:
    """Move the keys of `table` from `source` into `values`, converted; unreadable values go to `unmapped`."""
    for key, (target, convert) in table.items():
        if key not in source:
            continue
        raw = source.pop(key)
        try:
            _assign(values, target, convert(raw))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            unmapped[key] = _as_text(raw)
            notes.append(f"{key}: {raw!r} could not be used. {UNMAPPED_WHY.get(key, '')}".strip())


def _require_core(values: dict, what: str) -> None:
    if not any(name in values for name in CORE_FIELDS):
        raise BadInput(f"The {what} has none of steps, CFG scale, seed, sampler or size in a readable form: "
                       "it is truncated or not a generation recipe.")


def _lora_list(prompt: str, hashes: str | None = None, weights: str | None = None) -> list[dict]:
    """LoRAs from `<lora:name:weight>` tags and A1111's "Lora hashes" / Fooocus' "Lora weights" lists."""
    loras = {}
    for name, weight in LORA_TAG.findall(prompt):
        loras.setdefault(name, {"name": name, "weight": _float_or_none(weight or "1"), "hash": None})
    for name, value in _name_values(hashes).items():
        loras.setdefault(name, {"name": name, "weight": None, "hash": None})["hash"] = value
    for name, value in _name_values(weights).items():
        entry = loras.setdefault(name, {"name": name, "weight": None, "hash": None})
        entry["weight"] = entry["weight"] if entry["weight"] is not None else _float_or_none(value)
    return list(loras.values())


def _name_values(text: str | None) -> dict:
    """"a: 1, b: 2" -> {"a": "1", "b": "2"}."""
    pairs = {}
    for item in (text or "").split(","):
        name, sep, value = item.rpartition(":")
        if sep and name.strip():
            pairs[name.strip()] = value.strip()
    return pairs


def _float_or_none(value):
    try:
        return _float(value)
    except (ValueError, TypeError, OverflowError):
        return None


def lora_tag(lora: dict) -> str:
    """`<lora:name:weight>`, A1111's prompt syntax that applies a LoRA in labkit too."""
    weight = lora.get("weight")
    return f"<lora:{lora.get('name')}:{number(weight) if weight is not None else 1}>"


# ---- reading: A1111 / Forge / Fooocus infotext -------------------------------------------------------------------
def split_infotext(text: str) -> tuple[str, str, dict]:
    """(prompt, negative prompt, {key: value}) read as A1111 does; no fields when the last line is not a
    parameter line (fewer than 3 `key: value` pairs)."""
    *lines, last = text.strip().split("\n")
    if len(PARAM_RE.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    fields_ = {key.strip(): unquote(value.strip()) for key, value in PARAM_RE.findall(last)}
    return "\n".join(prompt), "\n".join(negative), fields_


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


def _a1111_sampler(fields_: dict, tool: str, version: str | None, notes: list) -> dict:
    """Sampler and schedule: "Schedule type" (v1.9+), else the combined name, else what the version implied."""
    name = fields_.pop("Sampler", None)
    schedule = fields_.pop("Schedule type", None)
    if tool == "Fooocus" and schedule is None:
        schedule = fields_.pop("Scheduler", None)  # Fooocus writes ComfyUI's scheduler name beside the sampler
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


def _split_title(title: str) -> tuple[str, str | None]:
    """"sd_xl_refiner_1.0 [7440042bbd]" -> ("sd_xl_refiner_1.0", "7440042bbd")."""
    match = re.match(r"^(.*?)\s*\[([0-9a-fA-F]+)\]$", title)
    return (match.group(1), match.group(2)) if match else (title, None)


def _a1111_model(fields_: dict, notes: list) -> dict:
    """{name, hash, hash_type, refiner, refiner_hash} from Model, Model hash and Refiner."""
    model = {}
    name, file_hash, refiner = (fields_.pop(key, None) for key in ("Model", "Model hash", "Refiner"))
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
        model["refiner"], refiner_hash = _split_title(refiner)
        if refiner_hash:
            model["refiner_hash"] = refiner_hash
        notes.append(f"Made with the refiner {refiner}: pass refiner=labkit.open(...) with that model to txt2img.")
    return model


def _a1111_mode(fields_: dict) -> str:
    hires = any(key.startswith(HIRES_PREFIXES) for key in fields_)
    if any(key in fields_ for key in INPAINT_SIGNS):
        return "inpaint"
    return "img2img" if "Denoising strength" in fields_ and not hires else "txt2img"


def _pop_hires(fields_: dict, unmapped: dict, notes: list) -> None:
    """Hires fix fields (and then "Denoising strength", which belongs to it) go to `unmapped`."""
    keys = [key for key in fields_ if key.startswith(HIRES_PREFIXES)]
    if not keys:
        return
    keys += ["Denoising strength"] if "Denoising strength" in fields_ else []
    for key in keys:
        unmapped[key] = fields_.pop(key)
    notes.append("Hires fix fields kept in unmapped (with the Denoising strength, which belongs to them): labkit "
                 "has no hires fix; upscale the image and run img2img to do the same.")


def parse_a1111(text: str, tool: str | None = None) -> Recipe:
    """A Recipe from A1111-style infotext (A1111, Forge, Fooocus' a1111 scheme, labkit's own).

    `tool` forces the writer (otherwise read from the Version field). BadInput when there is no parameter line
    or none of its core fields can be read.
    """
    if not isinstance(text, str):
        raise BadInput(f"Infotext must be text, not {type(text).__name__}.")
    prompt, negative, fields_ = split_infotext(text)
    if not fields_:
        raise BadInput("No A1111 parameter line: the last line should read like 'Steps: 20, Sampler: Euler a, "
                       "CFG scale: 7, Seed: 1, Size: 512x512' (at least 3 'key: value' pairs).")
    version = fields_.pop("Version", None)
    tool = tool or tool_of_version(version)
    notes, unmapped = [], {}
    mode = _a1111_mode(fields_)
    values = {**TOOL_DEFAULTS.get(tool, {}), "prompt": prompt, "negative_prompt": negative}
    model = _a1111_model(fields_, notes)
    values["model"] = model.get("name", "")
    values.update(_a1111_sampler(fields_, tool, version, notes))
    _pop_hires(fields_, unmapped, notes)
    loras = _lora_list(prompt, fields_.pop("Lora hashes", None), fields_.pop("Lora weights", None))
    _map_fields(fields_, A1111_FIELDS, values, unmapped, notes)
    _require_core(values, "infotext")
    if fields_:  # what is left: fields labkit has no setting for
        unmapped.update(fields_)
        notes.append(f"Fields labkit does not use, kept in unmapped: {', '.join(fields_)}.")
    params = Params(**values)
    return Recipe(params=params, tool=tool, unmapped=unmapped, raw=text, notes=notes, loras=loras,
                  version=version, model=model, mode=mode)


# ---- reading: Fooocus JSON ---------------------------------------------------------------------------------------
def _joined(parts) -> str | None:
    """Fooocus' full prompt: a list of prompts, joined as its a1111 scheme writes them."""
    if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
        return ", ".join(parts)
    return parts if isinstance(parts, str) else None


def _model_stem(value) -> str:
    """"SDXL\\juggernaut.safetensors" -> "juggernaut"; "" for anything that is not text."""
    if not isinstance(value, str):
        return ""
    name = PureWindowsPath(value).name
    for suffix in MODEL_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _comfy_names(sampler_name, scheduler, notes: list) -> dict:
    """A1111's sampler and schedule for ComfyUI's names (Fooocus uses them too); unknown ones kept, noted."""
    if sampler_name is None:
        notes.append("No sampler given: labkit's default sampler is used.")
        return {}
    try:
        sampler, schedule = samplers.from_comfy(str(sampler_name), str(scheduler or "normal"))
    except BadInput as error:
        notes.append(f"Sampler {sampler_name!r} with scheduler {scheduler!r} kept as written: {error}")
        return {"sampler": str(sampler_name), "schedule": str(scheduler or samplers.AUTOMATIC)}
    if sampler in samplers.UNSUPPORTED:
        notes.append(f"labkit cannot run {sampler!r}: {samplers.UNSUPPORTED[sampler]}.")
    return {"sampler": sampler, "schedule": schedule}


def _fooocus_loras(data: dict) -> list[dict]:
    """LoRAs from "loras" ([[name, weight, hash]]) or "lora_combined_N" ("name : weight")."""
    loras = []
    items = data.pop("loras", None)
    for item in items if isinstance(items, list) else ():
        if isinstance(item, (list, tuple)) and item:
            name, weight, file_hash = (list(item) + [None, None])[:3]
            loras.append({"name": _model_stem(name) or str(name), "weight": _float_or_none(weight),
                          "hash": file_hash if isinstance(file_hash, str) else None})
    for key in sorted(k for k in data if isinstance(k, str) and k.startswith("lora_combined_")):
        name, _, weight = str(data.pop(key)).rpartition(" : ")
        if name and name != "None" and not any(l["name"] == _model_stem(name) for l in loras):
            loras.append({"name": _model_stem(name), "weight": _float_or_none(weight), "hash": None})
    return loras


def parse_fooocus(data) -> Recipe:
    """A Recipe from Fooocus' JSON `parameters` (scheme "fooocus")."""
    raw = _as_dict(data, "Fooocus parameters")
    rest, notes, unmapped = dict(raw), [], {}
    values = {**TOOL_DEFAULTS["Fooocus"]}
    typed, typed_negative = rest.pop("prompt", None), rest.pop("negative_prompt", None)
    full, full_negative = _joined(rest.pop("full_prompt", None)), _joined(rest.pop("full_negative_prompt", None))
    values["prompt"] = full if full is not None else _as_text(typed or "")
    values["negative_prompt"] = full_negative if full_negative is not None else _as_text(typed_negative or "")
    if full is not None and typed not in (None, full):
        unmapped["prompt"] = _as_text(typed)
        notes.append("Fooocus expanded the prompt (styles, Fooocus V2): params.prompt is the text the model saw; "
                     "the typed prompt is in unmapped['prompt'].")
    values.update(_comfy_names(rest.pop("sampler", None), rest.pop("scheduler", None), notes))
    model = {"name": _model_stem(rest.pop("base_model", None))}
    if isinstance(rest.get("base_model_hash"), str):
        model["hash"] = rest.pop("base_model_hash")
    refiner = _model_stem(rest.pop("refiner_model", None))
    if refiner and refiner != "None":
        model["refiner"] = refiner
        notes.append(f"Made with the refiner {refiner}: pass refiner=labkit.open(...) with that model to txt2img.")
    values["model"] = model["name"]
    loras = _fooocus_loras(rest)
    version = rest.pop("version", None)
    _map_fields(rest, FOOOCUS_FIELDS, values, unmapped, notes)
    _require_core(values, "Fooocus recipe")
    unmapped.update({key: _as_text(value) for key, value in rest.items() if key not in unmapped})
    notes.append("Fooocus samples like ComfyUI (noise='comfy'); its sharpness, ADM guidance and styles are not "
                 "reproduced by labkit (see unmapped).")
    return Recipe(params=Params(**values), tool="Fooocus", unmapped=unmapped, raw=raw, notes=notes,
                  loras=loras, version=version if isinstance(version, str) else None, model=model)


# ---- reading: InvokeAI -------------------------------------------------------------------------------------------
def _invoke_model(value) -> dict:
    """{name, hash, base} from InvokeAI's model record (v4+: name/hash/base; v3: model_name/base_model)."""
    if not isinstance(value, dict):
        return {}
    model = {"name": value.get("name") or value.get("model_name"), "hash": value.get("hash"),
             "base": value.get("base") or value.get("base_model")}
    return {key: v for key, v in model.items() if isinstance(v, str)}


def _invoke_loras(items) -> list[dict]:
    loras = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            record = _invoke_model(item.get("model") or item.get("lora"))
            loras.append({"name": record.get("name"), "weight": _float_or_none(item.get("weight")),
                          "hash": record.get("hash")})
    return loras


def parse_invokeai(data) -> Recipe:
    """A Recipe from InvokeAI's `invokeai_metadata` JSON."""
    raw = _as_dict(data, "InvokeAI metadata")
    rest, notes, unmapped = dict(raw), [], {}
    values = {"noise": "a1111-cpu"}
    scheduler = rest.pop("scheduler", None)
    if isinstance(scheduler, str) and scheduler in INVOKE_SCHEDULERS:
        values["sampler"], values["schedule"] = INVOKE_SCHEDULERS[scheduler]
        notes.append("InvokeAI runs diffusers' schedulers with the model's own timestep spacing; labkit spaces them "
                     "as A1111 does, so expect close but not identical images.")
    elif scheduler is not None:
        values["sampler"] = _as_text(scheduler)
        notes.append(f"InvokeAI scheduler {scheduler!r} kept as written: it has no A1111 equivalent.")
    model = _invoke_model(rest.pop("model", None))
    values["model"] = model.get("name", "")
    refiner = _invoke_model(rest.pop("refiner_model", None))
    if refiner.get("name"):
        model["refiner"] = refiner["name"]
        notes.append(f"Made with the refiner {refiner['name']}: pass refiner=labkit.open(...) to txt2img.")
    loras = _invoke_loras(rest.pop("loras", None))
    version, generation = rest.pop("app_version", None), rest.pop("generation_mode", None)
    mode = next((m for m in ("inpaint", "outpaint", "img2img") if m in str(generation or "")), "txt2img")
    _map_fields(rest, INVOKE_FIELDS, values, unmapped, notes)
    _require_core(values, "InvokeAI metadata")
    unmapped.update({key: _as_text(value) for key, value in rest.items() if key not in unmapped})
    return Recipe(params=Params(**values), tool="InvokeAI", unmapped=unmapped, raw=raw, notes=notes,
                  loras=loras, version=version if isinstance(version, str) else None, model=model,
                  mode="inpaint" if mode == "outpaint" else mode)


# ---- reading: labkit's own JSON ----------------------------------------------------------------------------------
def parse_labkit(data) -> Recipe:
    """A Recipe from labkit's JSON: the exact Params it was made with."""
    raw = _as_dict(data, "labkit recipe")
    stored = raw.get("params")
    if not isinstance(stored, dict):
        raise BadInput("The labkit recipe has no 'params' object.")
    params = Params.from_dict({str(k): v for k, v in stored.items()})
    missing = [f.name for f in fields(Params) if f.name not in stored]
    notes = [f"The labkit recipe has no {', '.join(missing)}: defaults used."] if missing else []
    libraries = raw.get("libraries") if isinstance(raw.get("libraries"), dict) else {}
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    stored_loras = raw.get("loras") if isinstance(raw.get("loras"), list) else []
    loras = [lora for lora in stored_loras if isinstance(lora, dict)] or _lora_list(params.prompt)
    version = libraries.get("labkit")
    return Recipe(params=params, tool="labkit", raw=raw, notes=notes, loras=loras,
                  version=f"labkit {version}" if isinstance(version, str) else None, model=dict(model),
                  mode=raw.get("mode") if isinstance(raw.get("mode"), str) else "txt2img")


# ---- reading: ComfyUI API graph ----------------------------------------------------------------------------------
def _comfy_graph(data: dict) -> dict:
    """node id -> {"class_type", "inputs"}; entries that are not nodes are dropped."""
    graph = {}
    for key, node in data.items():
        if isinstance(node, dict) and isinstance(node.get("class_type"), str):
            inputs = node.get("inputs")
            graph[str(key)] = {"class_type": node["class_type"], "inputs": inputs if isinstance(inputs, dict) else {}}
    return graph


def _link(graph: dict, value) -> str | None:
    """The node id an input refers to ([node_id, output_index]), or None for a plain value."""
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int)):
        node = str(value[0])
        return node if node in graph else None
    return None


def _inputs_of(graph: dict, node: str) -> list[str]:
    """The nodes `node` takes inputs from, in input order."""
    links = (_link(graph, value) for value in graph[node]["inputs"].values())
    return [link for link in links if link is not None]


def _find_cycle(graph: dict) -> list[str] | None:
    """A list of node ids that feed each other in a loop, or None (iterative depth-first search)."""
    state = {}  # node -> "open" while on the path, "done" after
    for start in graph:
        if start in state:
            continue
        state[start] = "open"
        path = [(start, iter(_inputs_of(graph, start)))]
        while path:
            node, pending = path[-1]
            child = next(pending, None)
            if child is None:
                state[node] = "done"
                path.pop()
            elif state.get(child) == "open":
                ids = [n for n, _ in path]
                return ids[ids.index(child):] + [child]
            elif child not in state:
                state[child] = "open"
                path.append((child, iter(_inputs_of(graph, child))))
    return None


def _upstream(graph: dict, start: str) -> list[str]:
    """Every node that `start` depends on, nearest first (breadth-first)."""
    seen, order, queue = {start}, [], deque([start])
    while queue:
        for child in _inputs_of(graph, queue.popleft()):
            if child not in seen:
                seen.add(child)
                order.append(child)
                queue.append(child)
    return order


def _node_key(node: str):
    """Sort key: numeric ids by number, then the rest by name."""
    return (0, int(node), node) if node.isdecimal() and len(node) < 20 else (1, 0, node)


def _final_sampler(graph: dict, notes: list) -> str:
    """The sampler whose latents reach the saved image: the nearest sampler upstream of a SaveImage (else a
    PreviewImage) node, the highest-numbered output first; without outputs, the last sampler of the graph."""
    found = [n for n, node in graph.items() if node["class_type"] in COMFY_SAMPLERS]
    if not found:
        custom = sorted({node["class_type"] for node in graph.values() if "Sampler" in node["class_type"]})
        extra = f" (it has {', '.join(custom)}, which labkit does not read)" if custom else ""
        raise UnsupportedFile(f"The ComfyUI graph has no KSampler or KSamplerAdvanced node{extra}, so it holds "
                              "no recipe labkit can read.")
    outputs = sorted((n for n, node in graph.items() if node["class_type"] in COMFY_OUTPUTS), key=_node_key,
                     reverse=True)
    outputs.sort(key=lambda n: COMFY_OUTPUTS.index(graph[n]["class_type"]))
    for output in outputs:
        nearest = next((n for n in _upstream(graph, output) if graph[n]["class_type"] in COMFY_SAMPLERS), None)
        if nearest is not None:
            if len(found) > 1:
                notes.append(f"The graph has {len(found)} sampler nodes; read the chain ending in node {nearest}, "
                             f"whose image reaches {graph[output]['class_type']} node {output}.")
            return nearest
    feeding = {n for other in found for n in _upstream(graph, other)}
    last = max([n for n in found if n not in feeding] or found, key=_node_key)
    notes.append(f"No SaveImage or PreviewImage node shows a sampler's image: read the last sampler, node {last}.")
    return last


def _comfy_value(graph: dict, value, hops: int = 8):
    """A plain input value, following links to value nodes (primitives, seed and text nodes) a few hops."""
    for _ in range(hops):
        node = _link(graph, value)
        if node is None:
            return value
        inputs = graph[node]["inputs"]
        value = next((inputs[key] for key in COMFY_VALUE_INPUTS if key in inputs), None)
    return None


def _comfy_chain(graph: dict, final: str) -> tuple[list[str], dict]:
    """The sampler stages ending in `final`, first first, and where their latents begin: {mode, node, masked}."""
    stages, source, seen = [final], {"mode": None, "node": None, "masked": False}, {final}
    node = _link(graph, graph[final]["inputs"].get("latent_image"))
    while node is not None and node not in seen:
        seen.add(node)
        cls, inputs = graph[node]["class_type"], graph[node]["inputs"]
        if cls in COMFY_LATENT_SOURCES:
            source.update(mode=COMFY_LATENT_SOURCES[cls], node=node)
            break
        if cls in COMFY_SAMPLERS:
            stages.insert(0, node)
        source["masked"] |= cls == "SetLatentNoiseMask"
        node = next((link for key in COMFY_LATENT_INPUTS if (link := _link(graph, inputs.get(key)))), None)
    return stages, source


def _comfy_text(graph: dict, value, notes: list, unmapped: dict, depth: int = 0) -> str | None:
    """The prompt text behind a conditioning input: text encoders, joined by Combine (A1111 "AND") and Concat
    ("BREAK"); other conditioning nodes are passed through with a note."""
    node = _link(graph, value)
    if node is None or depth > COMFY_MAX_DEPTH:
        return None
    cls, inputs = graph[node]["class_type"], graph[node]["inputs"]
    if cls in COMFY_TEXTS:
        texts = [_comfy_value(graph, inputs.get(key)) for key in COMFY_TEXTS[cls]]
        texts = [text for text in texts if isinstance(text, str)]
        if len(texts) == 2 and texts[0] != texts[1] and texts[1]:
            unmapped[f"text_l (node {node})"] = texts[1]
            notes.append(f"{cls} node {node} has different text_g and text_l: params.prompt is text_g; "
                         "text_l is in unmapped.")
        return texts[0] if texts else None
    if cls in COMFY_JOINS:
        keys, joiner = COMFY_JOINS[cls]
        parts = [_comfy_text(graph, inputs.get(key), notes, unmapped, depth + 1) for key in keys]
        parts = [part for part in parts if part]
        notes.append(f"{cls} node {node} joins two prompts: written with A1111's{joiner}which means the same.")
        return joiner.join(parts) if parts else None
    if cls == "ConditioningZeroOut":
        return ""
    side = "negative" if value[1] == 1 else "positive"
    onward = inputs.get("conditioning", inputs.get(side))
    if _link(graph, onward) is None:
        notes.append(f"The prompt comes from a {cls} node ({node}) that labkit does not read.")
        return None
    notes.append(f"{cls} node {node} on the conditioning path is not reproduced by labkit.")
    return _comfy_text(graph, onward, notes, unmapped, depth + 1)


def _comfy_clip_skip(graph: dict, value) -> int | None:
    """A1111's Clip skip from a CLIPSetLastLayer node upstream of a text encoder (stop_at_clip_layer -2 -> 2)."""
    start = _link(graph, value)
    if start is None:
        return None
    for node in _upstream(graph, start):
        if graph[node]["class_type"] == "CLIPSetLastLayer":
            layer = _float_or_none(_comfy_value(graph, graph[node]["inputs"].get("stop_at_clip_layer")))
            return int(-layer) if layer is not None and layer <= -1 and layer.is_integer() else None
    return None


def _comfy_model(graph: dict, value, notes: list) -> tuple[str, list[dict]]:
    """(checkpoint name, LoRAs nearest the checkpoint first) behind a sampler's `model` input."""
    name, loras, seen = "", [], set()
    node = _link(graph, value)
    while node is not None and node not in seen:
        seen.add(node)
        cls, inputs = graph[node]["class_type"], graph[node]["inputs"]
        if cls in COMFY_CHECKPOINTS:
            name = _model_stem(_comfy_value(graph, inputs.get(COMFY_CHECKPOINTS[cls])))
            break
        if cls in COMFY_LORAS:
            lora = {"name": _model_stem(_comfy_value(graph, inputs.get("lora_name"))),
                    "weight": _float_or_none(_comfy_value(graph, inputs.get("strength_model"))), "hash": None}
            loras.insert(0, lora)
            clip = _float_or_none(_comfy_value(graph, inputs.get("strength_clip")))
            if cls == "LoraLoader" and clip is not None and clip != lora["weight"]:
                notes.append(f"LoRA {lora['name']}: ComfyUI weights its text encoder part {number(clip)}, "
                             f"its UNet part {number(lora['weight'] or 0)}; labkit uses one weight.")
        elif _link(graph, inputs.get("model")) is not None:
            notes.append(f"{cls} node {node} on the model path is not reproduced by labkit.")
        node = _link(graph, inputs.get("model"))
    return name, loras


def _comfy_handoff(graph: dict, first: str) -> float | None:
    """switch_at when the first stage is a KSamplerAdvanced that stops early for a refiner (end_at_step < steps)."""
    inputs = graph[first]["inputs"]
    if graph[first]["class_type"] != "KSamplerAdvanced":
        return None
    end = _float_or_none(_comfy_value(graph, inputs.get("end_at_step")))
    steps = _float_or_none(_comfy_value(graph, inputs.get("steps")))
    return end / steps if end is not None and steps and 0 < end < steps else None


def _comfy_stages(graph: dict, stages: list, values: dict, model: dict, unmapped: dict, notes: list) -> None:
    """Later stages: a KSamplerAdvanced refiner handoff becomes switch_at + model["refiner"]; any other second
    pass (hires fix) goes to `unmapped`."""
    handoff = _comfy_handoff(graph, stages[0])
    for position, node in enumerate(stages[1:], start=2):
        inputs = graph[node]["inputs"]
        if handoff is not None and position == 2:
            values["switch_at"] = handoff
            refiner, _ = _comfy_model(graph, inputs.get("model"), [])
            if refiner and refiner != model.get("name"):
                model["refiner"] = refiner
            notes.append(f"Refiner handoff at {number(handoff)} of the steps (node {stages[0]} -> node {node}"
                         f"{', ' + refiner if refiner else ''}): pass refiner=labkit.open(...) to txt2img.")
            continue
        summary = {key: _comfy_value(graph, inputs.get(key))
                   for key in ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")
                   if key in inputs}
        unmapped[f"stage {position} (node {node})"] = _as_text(summary)
        notes.append(f"Sampler node {node} runs a second pass over the first one's image (a hires fix); labkit's "
                     "recipe is the first pass, the second is in unmapped.")


def parse_comfyui(data) -> Recipe:
    """A Recipe from a ComfyUI API graph (the `prompt` PNG chunk).

    The recipe is the first sampling stage of the chain whose image reaches the SaveImage node: a base/refiner
    KSamplerAdvanced pair becomes switch_at, a second pass (hires fix) goes to `unmapped`.
    UnsupportedFile for graphs without a KSampler / KSamplerAdvanced node or with a cycle.
    """
    raw = _as_dict(data, "ComfyUI graph")
    graph = _comfy_graph(raw)
    cycle = _find_cycle(graph)
    if cycle:
        raise UnsupportedFile(f"The ComfyUI graph is not a valid API graph: nodes {' -> '.join(cycle)} feed each "
                              "other in a loop.")
    notes, unmapped = [], {}
    stages, source = _comfy_chain(graph, _final_sampler(graph, notes))
    first = graph[stages[0]]["inputs"]
    scalars = {key: _comfy_value(graph, value) for key, value in first.items()}
    values = {"noise": "comfy"}
    values.update(_comfy_names(scalars.pop("sampler_name", None), scalars.pop("scheduler", None), notes))
    _map_fields(scalars, COMFY_SAMPLER_FIELDS, values, unmapped, notes)
    denoise = _float_or_none(scalars.get("denoise"))
    if denoise is not None and 0 < denoise < 1:
        values["strength"] = denoise
    start = _float_or_none(scalars.get("start_at_step"))
    if start:  # KSamplerAdvanced skipping its first steps: ComfyUI's other way to keep part of an input image
        unmapped["start_at_step"] = _as_text(scalars["start_at_step"])
        notes.append(f"The sampler starts at step {number(start)}: labkit's nearest setting is strength = "
                     "(steps - start_at_step) / steps with img2img.")
    if source["mode"] == "txt2img":
        latent = {key: _comfy_value(graph, value) for key, value in graph[source["node"]]["inputs"].items()}
        _map_fields(latent, COMFY_LATENT_FIELDS, values, unmapped, notes)
    mode = "inpaint" if source["masked"] else source["mode"] or "txt2img"
    if source["mode"] is None:
        notes.append("The first sampler's latents come from no EmptyLatentImage or VAEEncode node: size unknown.")
    for side in ("prompt", "negative_prompt"):
        text = _comfy_text(graph, first.get("positive" if side == "prompt" else "negative"), notes, unmapped)
        values[side] = text if text is not None else ""
    clip_skip = _comfy_clip_skip(graph, first.get("positive"))
    if clip_skip:
        values["clip_skip"] = clip_skip
    name, loras = _comfy_model(graph, first.get("model"), notes)
    model = {"name": name} if name else {}
    values["model"] = name
    notes += [f"LoRA {lora['name']} (LoraLoader): {lora_tag(lora)} applies it in labkit." for lora in loras]
    _comfy_stages(graph, stages, values, model, unmapped, notes)
    _require_core(values, "ComfyUI graph")
    return Recipe(params=Params(**values), tool="ComfyUI", unmapped=unmapped, raw=raw, notes=notes,
                  loras=loras, model=model, mode=mode)


# ---- reading: dispatch -------------------------------------------------------------------------------------------
def _is_comfy_graph(data: dict) -> bool:
    return any(isinstance(node, dict) and "class_type" in node for node in data.values())


# JSON shape -> parser, first match wins
JSON_SHAPES = (
    (lambda d: d.get("format") == RECIPE_FORMAT, parse_labkit),
    (lambda d: "positive_prompt" in d or "generation_mode" in d, parse_invokeai),
    (_is_comfy_graph, parse_comfyui),
    (lambda d: any(k in d for k in ("guidance_scale", "full_prompt", "base_model", "resolution")), parse_fooocus),
)


def parse_json(data: dict) -> Recipe:
    """A Recipe from a JSON object written by labkit, InvokeAI, ComfyUI (API graph) or Fooocus."""
    for matches, parse in JSON_SHAPES:
        if matches(data):
            return parse(data)
    keys = ", ".join(list(map(str, data))[:8])
    raise UnsupportedFile(f"JSON that no known tool writes (keys: {keys}); labkit reads A1111, Forge, Fooocus, "
                          "ComfyUI, InvokeAI and labkit recipes.")


def parse_text(text: str, scheme: str = "") -> Recipe:
    """A Recipe from text: A1111-style infotext, or a JSON object (see parse_json). `scheme` is Fooocus'
    `fooocus_scheme` ("a1111" marks infotext written by Fooocus)."""
    if not isinstance(text, str):
        raise BadInput(f"Expected text, got {type(text).__name__}.")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None  # a prompt that starts with "{" (dynamic prompts): infotext after all
        if isinstance(data, dict):
            return parse_json(data)
    return parse_a1111(text, tool="Fooocus" if scheme.strip().lower() == "a1111" else None)


def _xmp_recipe(xmp: str) -> str | None:
    match = re.search(r"<labkit:recipe>(.*?)</labkit:recipe>", xmp or "", re.S)
    return unescape(match.group(1)) if match else None


def _candidates(chunks: dict) -> list:
    """(label, parser, payload) for every recipe the metadata holds, most exact first."""
    scheme = str(chunks.get("fooocus_scheme") or chunks.get("MakerNote") or "")
    found = []
    if "labkit" in chunks:
        found.append(("labkit chunk", parse_labkit, chunks["labkit"]))
    if recipe := _xmp_recipe(chunks.get("XML:com.adobe.xmp") or chunks.get("xmp") or ""):
        found.append(("labkit XMP recipe", parse_labkit, recipe))
    if "invokeai_metadata" in chunks:
        found.append(("invokeai_metadata", parse_invokeai, chunks["invokeai_metadata"]))
    for key in ("parameters", "UserComment"):
        if key in chunks:
            found.append((key, partial(parse_text, scheme=scheme), chunks[key]))
    if "prompt" in chunks:
        found.append(("ComfyUI prompt", parse_comfyui, chunks["prompt"]))
    return found


def recipe_from_chunks(chunks: dict, where: str = "the image") -> Recipe:
    """The most exact recipe among an image's metadata texts ({chunk name: text}); a recipe that cannot be read
    makes way for the next one."""
    candidates = _candidates(chunks)
    if not candidates:
        hint = (" It has only a ComfyUI UI 'workflow'; labkit reads the API graph (the 'prompt' chunk)."
                if "workflow" in chunks else "")
        raise UnsupportedFile(f"No recipe found in {where}: none of the metadata A1111, Forge, Fooocus, ComfyUI, "
                              f"InvokeAI or labkit write (PNG text chunks, EXIF UserComment).{hint}")
    errors = []
    for label, parse, payload in candidates:
        try:
            recipe = parse(payload)
        except LabkitError as error:
            errors.append((label, error))
            continue
        recipe.notes += [f"Skipped an unreadable recipe ({name}: {error})." for name, error in errors]
        if label in ("parameters", "UserComment") and "prompt" in chunks and recipe.tool != "ComfyUI":
            recipe.notes.append("The file also holds a ComfyUI graph; the A1111 text was read.")
        return recipe
    kind = UnsupportedFile if all(isinstance(error, UnsupportedFile) for _, error in errors) else BadInput
    raise kind(f"The recipe in {where} could not be read: {'; '.join(f'{n}: {e}' for n, e in errors)}")


# ---- reading: files (the IO edge) --------------------------------------------------------------------------------
COMMENT_CODES = {b"UNICODE\0": "utf-16", b"ASCII\0\0\0": "ascii", b"JIS\0\0\0\0\0": "shift_jis",
                 b"\0" * 8: "utf-8"}  # EXIF UserComment's 8-byte character code


def _utf16_order(body: bytes) -> str:
    """UTF-16 byte order of a UserComment: a BOM, else where ASCII's zero bytes fall (piexif and A1111: BE)."""
    if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return "utf-16"
    return "utf-16-be" if body[0::2].count(0) >= body[1::2].count(0) else "utf-16-le"


def decode_user_comment(raw) -> str:
    """Text of an EXIF UserComment (bytes with an 8-byte character code, or text as some writers leave it)."""
    if isinstance(raw, str):
        return raw.strip("\0")
    raw = bytes(raw)
    code, body = COMMENT_CODES.get(raw[:8]), raw[8:]
    if code is None:
        code, body = "utf-8", raw
    if code == "utf-16":
        code = _utf16_order(body)
    return body.decode(code, errors="replace").rstrip("\0")


def image_chunks(image) -> dict:
    """{name: text} of everything in a PIL image's metadata that may hold a recipe."""
    info = dict(image.info)
    info.update(getattr(image, "text", None) or {})  # PNG: text chunks after the pixel data too
    chunks = {key: value for key, value in info.items() if isinstance(key, str) and isinstance(value, str)}
    if isinstance(info.get("xmp"), bytes):
        chunks["xmp"] = info["xmp"].decode("utf-8", errors="replace")
    exif = image.getexif()
    comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT) or exif.get(USER_COMMENT)
    if comment:
        chunks["UserComment"] = decode_user_comment(comment)
    if exif.get(MAKER_NOTE):
        chunks["MakerNote"] = decode_user_comment(exif[MAKER_NOTE])
    return chunks


def _read_image(opener, where: str) -> dict:
    """Metadata texts of the image `opener()` opens; UnsupportedFile for anything that is not a readable image."""
    try:
        with opener() as image:
            return image_chunks(image)
    except LabkitError:
        raise
    except Exception as error:  # Pillow signals damaged or foreign files with many exception types
        raise UnsupportedFile(f"{where} is not an image labkit can read: {error}") from None


def _looks_like_path(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    try:
        return Path(text).is_file() or Path(text).suffix.lower() in FORMATS
    except (OSError, ValueError):
        return False


def read_recipe(source) -> Recipe:
    """The recipe of an image: `source` is a path, a PIL image, image bytes, infotext / JSON text, or a dict.

    UnsupportedFile when there is no recipe ("no recipe found in ..."), BadInput when one is there but unreadable.
    """
    from PIL import Image

    if isinstance(source, dict):
        return parse_json(source)
    if isinstance(source, Image.Image):
        try:
            chunks = image_chunks(source)
        except Exception as error:  # a closed or damaged image
            raise UnsupportedFile(f"Cannot read the metadata of this image: {error}") from None
        return recipe_from_chunks(chunks, "this image")
    if isinstance(source, (bytes, bytearray, memoryview)):
        import io

        data = bytes(source)
        return recipe_from_chunks(_read_image(lambda: Image.open(io.BytesIO(data)), "the bytes"), "the bytes")
    if isinstance(source, str) and not _looks_like_path(source):
        return parse_text(source)
    if not isinstance(source, (str, os.PathLike)):
        raise BadInput(f"read_recipe takes a path, PIL image, bytes or text, not {type(source).__name__}.")
    path = Path(source)
    if not path.is_file():
        raise UnsupportedFile(f"{path} is a folder, not an image." if path.is_dir() else f"{path}: no such file.")
    return recipe_from_chunks(_read_image(lambda: Image.open(path), str(path)), str(path))


def read_params(source) -> Params:
    """The Params of an image's recipe (see read_recipe)."""
    return read_recipe(source).params
