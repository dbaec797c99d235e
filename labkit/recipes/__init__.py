"""Recipes in image files: write them (A1111 infotext, labkit JSON, XMP) and read them back from the SD tools.

    infotext(params, model, mode) -> str                      A1111's `parameters` text
    save_image(image, "out.png", params, model, mode) -> Path   PNG, JPEG or WebP; atomic; never overwrites by default
    read_recipe(source) -> Recipe                             path, PIL image, bytes, infotext or JSON text
    read_params(source) -> Params

One module per idea: `infotext` (A1111's grammar), a reader per tool (`a1111`, `comfyui`, `invokeai`, `fooocus`,
`own` for labkit's JSON) registered in `readers.READERS`, `containers` (PNG chunks, EXIF, XMP), `writer`, and
`recipe` (the Recipe record and the converters the readers share). Nothing here imports torch.
"""

from .a1111 import parse_a1111
from .comfyui import parse_comfyui
from .containers import image_chunks, image_format, image_options, software
from .fooocus import parse_fooocus
from .infotext import split_infotext
from .invokeai import parse_invokeai
from .own import parse_labkit
from .readers import READERS, Reader, parse_json, parse_text, read_params, read_recipe, recipe_from_chunks
from .recipe import Recipe
from .records import LoraRecord, ModelRecord
from .writer import infotext, recipe_dict, save_image

__all__ = ["READERS", "LoraRecord", "ModelRecord", "Reader", "Recipe", "image_chunks", "image_format", "image_options",
           "infotext", "parse_a1111", "parse_comfyui", "parse_fooocus", "parse_invokeai", "parse_json", "parse_labkit",
           "parse_text", "read_params", "read_recipe", "recipe_dict", "recipe_from_chunks", "save_image", "software",
           "split_infotext"]
