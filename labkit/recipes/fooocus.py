"""Reading Fooocus' JSON `parameters` (PNG tEXt `fooocus_scheme: fooocus`; its "a1111" scheme is infotext, read
by a1111.py). Fooocus samples as ComfyUI does and names samplers as ComfyUI does."""

import re

from .comfyui import comfy_names
from .recipe import (TOOL_DEFAULTS, Recipe, as_text, float_or_none, json_object, make_params, map_fields, model_stem,
                     require_core, to_float, to_int)

PAIR_RE = re.compile(r"^\(?\s*'?(\d+)'?\s*[,x×*]\s*'?(\d+)'?\s*\)?$")  # Fooocus "(1152, 896)"
FOOOCUS_MARKS = ("guidance_scale", "full_prompt", "base_model", "resolution")  # keys only Fooocus' JSON has


def to_pair(value) -> tuple[int, int]:
    width, height = PAIR_RE.match(str(value).strip()).groups()
    return int(width), int(height)


FOOOCUS_FIELDS = {
    "steps": ("steps", to_int),
    "guidance_scale": ("cfg", to_float),
    "seed": ("seed", to_int),
    "resolution": (("width", "height"), to_pair),
    "clip_skip": ("clip_skip", to_int),
    "refiner_switch": ("switch_at", to_float),
}


def is_fooocus_parameters(data: dict) -> bool:
    """Whether a JSON object is Fooocus' `parameters`."""
    return any(key in data for key in FOOOCUS_MARKS)


def _joined(parts) -> str | None:
    """Fooocus' full prompt: a list of prompts, joined as its a1111 scheme writes them."""
    if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
        return ", ".join(parts)
    return parts if isinstance(parts, str) else None


def _fooocus_loras(data: dict) -> list[dict]:
    """LoRAs from "loras" ([[name, weight, hash]]) or "lora_combined_N" ("name : weight")."""
    loras = []
    items = data.pop("loras", None)
    for item in items if isinstance(items, list) else ():
        if isinstance(item, (list, tuple)) and item:
            name, weight, file_hash = (list(item) + [None, None])[:3]
            loras.append({"name": model_stem(name) or str(name), "weight": float_or_none(weight),
                          "hash": file_hash if isinstance(file_hash, str) else None})
    for key in sorted(k for k in data if isinstance(k, str) and k.startswith("lora_combined_")):
        name, _, weight = str(data.pop(key)).rpartition(" : ")
        if name and name != "None" and not any(l["name"] == model_stem(name) for l in loras):
            loras.append({"name": model_stem(name), "weight": float_or_none(weight), "hash": None})
    return loras


def parse_fooocus(data) -> Recipe:
    """A Recipe from Fooocus' JSON `parameters` (scheme "fooocus")."""
    raw = json_object(data, "Fooocus parameters")
    rest, notes, unmapped = dict(raw), [], {}
    values = {**TOOL_DEFAULTS["Fooocus"]}
    typed, typed_negative = rest.pop("prompt", None), rest.pop("negative_prompt", None)
    full, full_negative = _joined(rest.pop("full_prompt", None)), _joined(rest.pop("full_negative_prompt", None))
    values["prompt"] = full if full is not None else as_text(typed or "")
    values["negative_prompt"] = full_negative if full_negative is not None else as_text(typed_negative or "")
    if full is not None and typed not in (None, full):
        unmapped["prompt"] = as_text(typed)
        notes.append("Fooocus expanded the prompt (styles, Fooocus V2): params.prompt is the text the model saw; "
                     "the typed prompt is in unmapped['prompt'].")
    values.update(comfy_names(rest.pop("sampler", None), rest.pop("scheduler", None), notes))
    model = {"name": model_stem(rest.pop("base_model", None))}
    if isinstance(rest.get("base_model_hash"), str):
        model["hash"] = rest.pop("base_model_hash")
    refiner = model_stem(rest.pop("refiner_model", None))
    if refiner and refiner != "None":
        model["refiner"] = refiner
        notes.append(f"Made with the refiner {refiner}: pass refiner=labkit.open(...) with that model to txt2img.")
    values["model"] = model["name"]
    loras = _fooocus_loras(rest)
    version = rest.pop("version", None)
    map_fields(rest, FOOOCUS_FIELDS, values, unmapped, notes)
    require_core(values, "Fooocus recipe")
    unmapped.update({key: as_text(value) for key, value in rest.items() if key not in unmapped})
    notes.append("Fooocus samples like ComfyUI (noise='comfy'); its sharpness, ADM guidance and styles are not "
                 "reproduced by labkit (see unmapped).")
    return Recipe(params=make_params(values, unmapped, notes), tool="Fooocus", unmapped=unmapped, raw=raw, notes=notes,
                  loras=loras, version=version if isinstance(version, str) else None, model=model)
