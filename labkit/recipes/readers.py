"""Reading recipes: one table of the formats labkit reads, and `read_recipe`, the IO edge that finds them.

READERS lists each format once, most exact first: its name, the metadata entries (PNG text chunks, EXIF fields)
that hold it, how to recognise an unlabelled JSON object as its own, and its parser (a pure function of text or a
dict). A file's entries are tried in the table's order; an entry that cannot be read makes way for the next.
Parsers raise only `BadInput` / `UnsupportedFile`.
"""

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import kind
from ..errors import BadInput, LabkitError, UnsupportedFile
from ..params import Params
from .a1111 import parse_a1111
from .comfyui import is_comfy_graph, parse_comfyui
from .containers import FORMATS, XMP_RECIPE, image_chunks, read_image_chunks, with_xmp_recipe
from .fooocus import is_fooocus_parameters, parse_fooocus
from .invokeai import is_invokeai_metadata, parse_invokeai
from .own import is_labkit_recipe, parse_labkit
from .recipe import Recipe

SCHEME_CHUNKS = ("fooocus_scheme", "MakerNote")  # where Fooocus says which scheme its `parameters` use
TOOLS = "A1111, Forge, Fooocus, ComfyUI, InvokeAI"


@dataclass(frozen=True)
class Reader:
    """One format labkit reads. `chunks`: {label in notes and errors: metadata entry holding it}, most exact
    first; `recognise(json_object)`: whether an unlabelled JSON object is this format (None: never JSON);
    `parse(payload, **options(chunks))`: the Recipe, where `options` reads settings from the file's other entries."""

    name: str
    parse: Callable
    chunks: dict = field(default_factory=dict)
    recognise: Callable | None = None
    options: Callable | None = None


def parse_json(data: dict) -> Recipe:
    """A Recipe from a JSON object written by labkit, InvokeAI, ComfyUI (API graph) or Fooocus."""
    for reader in READERS:
        if reader.recognise is not None and reader.recognise(data):
            return reader.parse(data)
    keys = ", ".join(list(map(str, data))[:8])
    raise UnsupportedFile(f"JSON that no known tool writes (keys: {keys}); labkit reads {TOOLS} and labkit "
                          "recipes.")


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


def fooocus_scheme(chunks: dict) -> dict:
    """parse_text's `scheme` from Fooocus' `fooocus_scheme` chunk (or the EXIF MakerNote of its JPEGs)."""
    return {"scheme": str(next((chunks[name] for name in SCHEME_CHUNKS if chunks.get(name)), ""))}


# the formats labkit reads, most exact first (the order in which a file's entries are tried)
READERS = (
    Reader("labkit", parse_labkit, {"labkit chunk": "labkit", "labkit XMP recipe": XMP_RECIPE}, is_labkit_recipe),
    Reader("InvokeAI", parse_invokeai, {"invokeai_metadata": "invokeai_metadata"}, is_invokeai_metadata),
    Reader("A1111 text", parse_text, {"parameters": "parameters", "UserComment": "UserComment"},
           options=fooocus_scheme),  # A1111, Forge and Fooocus (JSON or infotext), labkit's own text
    Reader("ComfyUI", parse_comfyui, {"ComfyUI prompt": "prompt"}, is_comfy_graph),
    Reader("Fooocus", parse_fooocus, recognise=is_fooocus_parameters),  # found inside `parameters`
)


def _attempt(reader: Reader, payload, chunks: dict) -> Recipe:
    return reader.parse(payload, **(reader.options(chunks) if reader.options else {}))


def recipe_from_chunks(chunks: dict, where: str = "the image") -> Recipe:
    """The most exact recipe among an image's metadata texts ({chunk name: text}); a recipe that cannot be read
    makes way for the next one."""
    chunks = with_xmp_recipe(chunks)
    found = [(label, reader, chunks[name]) for reader in READERS for label, name in reader.chunks.items()
             if name in chunks]
    if not found:
        hint = (" It has only a ComfyUI UI 'workflow'; labkit reads the API graph (the 'prompt' chunk)."
                if "workflow" in chunks else "")
        raise UnsupportedFile(f"No recipe found in {where}: none of the metadata {TOOLS} or labkit write (PNG "
                              f"text chunks, EXIF UserComment).{hint}")
    errors = []
    for label, reader, payload in found:
        try:
            recipe = _attempt(reader, payload, chunks)
        except LabkitError as error:
            errors.append((label, error))
            continue
        recipe.notes += [f"Skipped an unreadable recipe ({name}: {error})." for name, error in errors]
        if label in ("parameters", "UserComment") and "prompt" in chunks and recipe.tool != "ComfyUI":
            recipe.notes.append("The file also holds a ComfyUI graph; the A1111 text was read.")
        return recipe
    kind = UnsupportedFile if all(isinstance(error, UnsupportedFile) for _, error in errors) else BadInput
    raise kind(f"The recipe in {where} could not be read: {'; '.join(f'{n}: {e}' for n, e in errors)}")


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
        data = bytes(source)
        return recipe_from_chunks(read_image_chunks(lambda: Image.open(io.BytesIO(data)), "The bytes given"),
                                  "the bytes")
    if isinstance(source, str) and not _looks_like_path(source):
        return parse_text(source)
    if not isinstance(source, (str, os.PathLike)):
        raise BadInput(f"read_recipe takes a path, PIL image, bytes or text, not {kind(source)}.")
    path = Path(source)
    if not path.is_file():
        raise UnsupportedFile(f"{path} is a folder, not an image." if path.is_dir() else f"{path}: no such file.")
    return recipe_from_chunks(read_image_chunks(lambda: Image.open(path), str(path)), str(path))


def read_params(source) -> Params:
    """The Params of an image's recipe (see read_recipe)."""
    return read_recipe(source).params
