"""`labkit.upscale`: a picture made bigger by a resampler or an upscaler model, in tiles when it is big.

Model upscalers run in overlapping tiles (ComfyUI's way: each tile's edges feathered over the overlap, the
outputs averaged by their weights, so no seam shows), repeated while the picture is still smaller than asked
(A1111 runs a 2x model twice for 4x, at most three times), then resized to the exact size with Lanczos.
Pictures go in as RGB in [0, 1] (spandrel's, ComfyUI's and chaiNNer's order); `bgr=True` feeds them as A1111 does,
blue first (its upscaler_utils flips the channels), which hires fix does for an A1111 recipe."""

import math

import numpy as np

from .. import checks
from ..errors import BadInput

TILE, OVERLAP = 512, 32  # ComfyUI's ImageUpscaleWithModel defaults
MAX_PASSES = 3  # A1111's Upscaler.upscale runs a model at most three times
MAX_SIDE = 16384


def upscale(image, upscaler="Lanczos", scale: float = 2.0, *, tile: int = TILE, overlap: int = OVERLAP,
            device: str = "cpu", bgr: bool = False):
    """`image` (PIL or NumPy) `scale` times bigger (int(side x scale) pixels), with the upscaler of that A1111
    name ("Lanczos", "Nearest", a model file's name from `labkit.upscalers()`, or a model file's path), or a
    loaded `labkit.load_upscaler(...)`. Models run in `tile`-pixel tiles overlapping by `overlap` pixels (0 for
    one piece), on `device`; `bgr=True` feeds a model blue first, as A1111 does."""
    from ..images import normalize, to_rgb

    scale = checks.real("scale", scale, example=2)
    if not 1 < scale <= 16:
        raise BadInput(f"scale={scale:g}: upscale by more than 1 and at most 16, e.g. scale=2.")
    tile = checks.whole("tile", tile, low=32, example=TILE)
    overlap = checks.whole("overlap", overlap, low=0, example=OVERLAP)
    if overlap * 2 >= tile:
        raise BadInput(f"overlap={overlap} with tile={tile}: the overlap must be under half the tile, e.g. "
                       f"overlap={tile // 16}.")
    picture = to_rgb(normalize(image, "image"))
    size = (int(picture.width * scale), int(picture.height * scale))
    if max(size) > MAX_SIDE:
        raise BadInput(f"scale={scale:g} makes a {size[0]}x{size[1]} picture; labkit upscales to at most "
                       f"{MAX_SIDE} pixels a side: use a smaller scale.")
    checks.flag("bgr", bgr)
    return resize_with(picture, upscaler, size, tile=tile, overlap=overlap, device=device, bgr=bgr)


def resize_with(picture, upscaler, size, *, tile=TILE, overlap=OVERLAP, device="cpu", bgr=False):
    """`picture` (RGB PIL) at exactly `size` (w, h) by `upscaler` (a name, path, UpscalerModel or choice); `bgr`:
    a model sees the channels in A1111's order."""
    from PIL import Image

    from .models import UpscalerModel, load
    from .registry import PIXEL_MODES, UpscalerChoice, choose

    if isinstance(upscaler, UpscalerModel):
        model = upscaler
    else:
        choice = upscaler if isinstance(upscaler, UpscalerChoice) else choose(upscaler, latent=False)
        if choice.kind == "pixel":
            return picture.resize(size, getattr(Image, PIXEL_MODES[choice.name]))
        model = load(choice.path, choice.name)
    for _ in range(MAX_PASSES):
        if picture.width >= size[0] and picture.height >= size[1]:
            break
        picture = run_model(model, picture, tile=tile, overlap=overlap, device=device, bgr=bgr)
    return picture if picture.size == size else picture.resize(size, Image.LANCZOS)


def run_model(model, picture, *, tile=TILE, overlap=OVERLAP, device="cpu", bgr=False):
    """One pass of an UpscalerModel over an RGB PIL picture, in tiles; the picture `model.scale` times bigger
    (`bgr`: the model is fed blue first and its output read so, as A1111 does)."""
    import torch
    from PIL import Image

    x = torch.from_numpy(np.asarray(picture, np.float32) / 255).permute(2, 0, 1)[None]  # (1, 3, H, W)
    x = x.flip(1) if bgr else x
    descriptor = model.model.to(device)
    with torch.no_grad():
        y = tiled(lambda part: descriptor(part.to(device)).float().cpu(), x, model.scale, tile, overlap)
    y = y.flip(1) if bgr else y
    pixels = (y[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (sH, sW, 3)
    return Image.fromarray(pixels, "RGB")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where tiles of `tile` pixels start along a side of `length`, overlapping by at least `overlap`; the last
    ends at the edge."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def feather(length: int, ramp: int, first: bool, last: bool):
    """A tile's weights along one side: rising over `ramp` pixels unless it starts the picture, falling over
    `ramp` unless it ends it. (length,) float32, all positive."""
    import torch

    w = torch.ones(length)
    if ramp > 0:
        edge = (torch.arange(ramp, dtype=torch.float32) + 1) / (ramp + 1)
        if not first:
            w[:ramp] = torch.minimum(w[:ramp], edge)
        if not last:
            w[-ramp:] = torch.minimum(w[-ramp:], edge.flip(0))
    return w


def tiled(fn, x, scale: int, tile: int, overlap: int):
    """fn over overlapping tiles of x (1, C, H, W), blended with feathered weights: (1, C', sH, sW)."""
    import torch

    _, _, h, w = x.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    if len(ys) == 1 and len(xs) == 1:
        return fn(x)
    out = weight = None
    for y in ys:
        for x0 in xs:
            part = fn(x[:, :, y:y + tile, x0:x0 + tile])  # (1, C', s*th, s*tw)
            if out is None:
                out = torch.zeros(1, part.shape[1], h * scale, w * scale)
                weight = torch.zeros(1, 1, h * scale, w * scale)
            th, tw = part.shape[2:]
            mask = (feather(th, overlap * scale, y == ys[0], y == ys[-1])[:, None] *
                    feather(tw, overlap * scale, x0 == xs[0], x0 == xs[-1])[None, :])  # (th, tw)
            region = (slice(None), slice(None), slice(y * scale, y * scale + th), slice(x0 * scale, x0 * scale + tw))
            out[region] += part * mask
            weight[region] += mask
    return out / weight


def load_upscaler(source):
    """An upscaler model (by name from `labkit.upscalers.names()`, or a file's path) loaded once, to pass to
    `labkit.upscale` or hires fix many times without reading the file each time."""
    from .models import load
    from .registry import choose

    choice = choose(source, latent=False)
    if choice.kind != "model":
        raise BadInput(f"{choice.name!r} is a resampler, not a model file: pass it to labkit.upscale by name.")
    return load(choice.path, choice.name)
