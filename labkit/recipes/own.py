"""Reading labkit's own JSON recipe (PNG tEXt `labkit`, or `labkit:recipe` in the XMP of JPEG/WebP): the exact
Params a picture was made with. writer.py writes it."""

from dataclasses import fields

from ..errors import BadInput
from ..params import Params
from .a1111 import lora_list
from .recipe import Recipe, json_object

RECIPE_FORMAT = "labkit-recipe/1"


def is_labkit_recipe(data: dict) -> bool:
    """Whether a JSON object is labkit's recipe."""
    return data.get("format") == RECIPE_FORMAT


def parse_labkit(data) -> Recipe:
    """A Recipe from labkit's JSON: the exact Params it was made with."""
    raw = json_object(data, "labkit recipe")
    stored = raw.get("params")
    if not isinstance(stored, dict):
        raise BadInput("The labkit recipe has no 'params' object.")
    params = Params.from_dict({str(k): v for k, v in stored.items()})
    missing = [f.name for f in fields(Params) if f.name not in stored]
    notes = [f"The labkit recipe has no {', '.join(missing)}: defaults used."] if missing else []
    libraries = raw.get("libraries") if isinstance(raw.get("libraries"), dict) else {}
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    stored_loras = raw.get("loras") if isinstance(raw.get("loras"), list) else []
    loras = [lora for lora in stored_loras if isinstance(lora, dict)] or lora_list(params.prompt)
    version = libraries.get("labkit")
    return Recipe(params=params, tool="labkit", raw=raw, notes=notes, loras=loras,
                  version=f"labkit {version}" if isinstance(version, str) else None, model=dict(model),
                  mode=raw.get("mode") if isinstance(raw.get("mode"), str) else "txt2img")
