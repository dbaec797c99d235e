"""Recipes in image files: A1111 `parameters` infotext plus a labkit JSON chunk (PNG tEXt)."""

import json
import os
import tempfile
from pathlib import Path

from .errors import BadInput
from .params import Params

RNG_NAMES = {"a1111-cpu": "CPU", "a1111-gpu": None}  # A1111 writes "RNG" only when it is not the GPU default


def quote(value) -> str:
    """A1111's quoting: values containing ',', ':' or a newline are written as JSON strings."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def number(x) -> str:
    """7.0 -> "7", 7.5 -> "7.5" (A1111 writes whole numbers without a decimal point)."""
    return str(int(x)) if float(x).is_integer() else str(x)


def infotext_fields(p: Params, model: dict, mode: str) -> dict:
    """The `key: value` fields of A1111's parameter line, in A1111's order; None values are left out."""
    fields = {
        "Steps": p.steps,
        "Sampler": p.sampler,
        "Schedule type": p.schedule,
        "CFG scale": number(p.cfg),
        "Seed": p.seed,
        "Size": f"{p.width}x{p.height}",
        "Model hash": model.get("hash"),
        "Model": model.get("name"),
        "Denoising strength": number(p.strength) if mode in ("img2img", "inpaint") else None,
        "Clip skip": p.clip_skip if p.clip_skip > 1 else None,
        "RNG": RNG_NAMES.get(p.noise),
        "Eta": number(p.eta) if p.eta is not None else None,
        "Refiner": model.get("refiner"),
        "Refiner switch at": number(p.switch_at) if model.get("refiner") else None,
        "Mask blur": p.mask_blur if mode == "inpaint" else None,
        "Inpaint area": "Only masked" if mode == "inpaint" and p.only_masked else None,
        "Masked area padding": p.padding if mode == "inpaint" and p.only_masked else None,
    }
    from . import __version__

    fields["Version"] = f"labkit {__version__}"
    return {k: v for k, v in fields.items() if v is not None}


def infotext(p: Params, model: dict | None = None, mode: str = "txt2img") -> str:
    """A1111's `parameters` text for `p`."""
    lines = [p.prompt]
    if p.negative_prompt:
        lines.append(f"Negative prompt: {p.negative_prompt}")
    fields = infotext_fields(p, model or {}, mode)
    lines.append(", ".join(f"{k}: {quote(v)}" for k, v in fields.items()))
    return "\n".join(lines)


def save_image(image, path, params: Params, model: dict | None = None, mode: str = "txt2img",
               overwrite: bool = False) -> Path:
    """Write `image` as PNG with its recipe; refuse to replace an existing file unless `overwrite=True`."""
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise BadInput(f"{path.name}: labkit writes PNG here; use a .png file name.")
    if path.exists() and not overwrite:
        raise BadInput(f"{path} already exists; pick another name or pass overwrite=True to replace it.")
    info = PngInfo()
    info.add_text("parameters", infotext(params, model, mode))
    info.add_text("labkit", json.dumps({"params": params.to_dict(), "model": model or {}, "mode": mode}))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
