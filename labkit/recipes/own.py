"""Reading labkit's own JSON recipe (PNG tEXt `labkit`, or `labkit:recipe` in the XMP of JPEG/WebP): the exact
Params a picture was made with. writer.py writes it."""

from dataclasses import fields

from ..errors import BadInput
from ..params import Params
from .a1111 import lora_list
from .recipe import Recipe, json_object, make_params, map_fields, to_bool, to_float, to_int, to_text

RECIPE_FORMAT = "labkit-recipe/1"


def to_units(value) -> tuple:
    """ControlNet units (a list of dicts of ControlUnit fields) as Params holds them."""
    from ..controlnet.units import as_units

    return as_units(value)


FIELD_TYPES = {int: to_int, float: to_float, bool: to_bool, str: to_text, tuple: to_units}


def field_reader(kind):
    """The converter for a Params field annotated `kind`: int, float, bool, str or tuple (the ControlNet units),
    or one of them | None."""
    options = getattr(kind, "__args__", (kind,))
    convert = FIELD_TYPES[next(k for k in options if k is not type(None))]
    return convert if type(None) not in options else lambda value: None if value is None else convert(value)


OWN_FIELDS = {f.name: (f.name, field_reader(f.type)) for f in fields(Params)}  # every field as labkit writes it


def is_labkit_recipe(data: dict) -> bool:
    """Whether a JSON object is labkit's recipe."""
    return data.get("format") == RECIPE_FORMAT


def parse_labkit(data) -> Recipe:
    """A Recipe from labkit's JSON: the exact Params it was made with."""
    raw = json_object(data, "labkit recipe")
    stored = raw.get("params")
    if not isinstance(stored, dict):
        raise BadInput("The labkit recipe has no 'params' object.")
    missing = [f.name for f in fields(Params) if f.name not in stored]
    notes = [f"The labkit recipe has no {', '.join(missing)}: defaults used."] if missing else []
    values, unmapped = {}, {}
    map_fields({str(k): v for k, v in stored.items()}, OWN_FIELDS, values, unmapped, notes)
    params = make_params(values, unmapped, notes)
    libraries = raw.get("libraries") if isinstance(raw.get("libraries"), dict) else {}
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    stored_loras = raw.get("loras") if isinstance(raw.get("loras"), list) else []
    loras = [lora for lora in stored_loras if isinstance(lora, dict)] or lora_list(params.prompt)
    version = libraries.get("labkit")
    return Recipe(params=params, tool="labkit", raw=raw, notes=notes, loras=loras, unmapped=unmapped,
                  version=f"labkit {version}" if isinstance(version, str) else None, model=dict(model),
                  mode=raw.get("mode") if isinstance(raw.get("mode"), str) else "txt2img")
