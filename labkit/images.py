"""Small image helpers at the pipeline's edge: sizes, masks, overlays, outpainting canvases."""

from .errors import BadInput

BACKGROUND = (255, 255, 255)  # transparent pixels are composited over white, A1111's img2img background default
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow opens 16-bit PNGs as "I;16" or "I"
TAKES = "a PIL image or a NumPy array (H, W), (H, W, 3) or (H, W, 4) of uint8, uint16, bool or float in [0, 1]"


def to_rgb(image, what: str = "image"):
    """An 8-bit PIL "RGB" image from any picture labkit takes (see `normalize`); transparency is composited over
    white, as A1111 does with img2img uploads."""
    image = normalize(image, what)
    if image.mode == "RGBA":
        from PIL import Image

        flat = Image.new("RGB", image.size, BACKGROUND)
        flat.paste(image, mask=image.getchannel("A"))
        return flat
    return image


def alpha_note(image) -> str | None:
    """What labkit did with the transparency of `image` (for a Result's notes), or None when it has none."""
    image = normalize(image)
    if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] < 255:
        return ("the image has transparent pixels: composited over white, as A1111 does with img2img uploads; "
                "paste it on the background you want first to choose another")
    return None


def normalize(image, what: str = "image"):
    """`image` as an 8-bit PIL "RGB" or "RGBA" image: 16-bit pictures ("I;16", "I", uint16 arrays) scaled to 8 bits
    (65535 -> 255, never clipped), float ones ("F", float arrays) read as 0..1, palettes and gray expanded, alpha
    kept. BadInput naming the fix for None, paths, tensors, empty pictures and values it cannot read."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = _from_array(image, what)
    if image.width < 1 or image.height < 1:
        raise BadInput(f"{what} is empty ({image.width}x{image.height} pixels); give a picture.")
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return image
    if mode in SIXTEEN_BIT or mode == "F":
        return Image.fromarray(_eight_bit(image, what)).convert("RGB")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode in ("LA", "La", "RGBa"):
        return image.convert("RGBA")
    try:
        return image.convert("RGB")  # "1", "L", "CMYK", "YCbCr"...
    except (ValueError, OSError) as exc:
        raise BadInput(f"{what}: Pillow cannot convert a {mode!r} picture to RGB ({exc}); convert it yourself "
                       f"first.") from None


def normalize_mask(mask, what: str = "mask"):
    """`mask` as a PIL "L" image (white = repaint): 16-bit and float masks scaled as in `normalize`, colour masks
    by luminance, and a mask with transparency read as luminance times alpha (a transparent pixel is not painted)."""
    from PIL import Image, ImageChops

    if mask is None:
        raise BadInput(f"{what} is None: inpainting needs a mask, a PIL 'L' image the size of the picture, white "
                       f"where to repaint (for no mask use img2img).")
    if not isinstance(mask, Image.Image):
        mask = _from_array(mask, what)
    if mask.mode in SIXTEEN_BIT or mask.mode == "F":
        return Image.fromarray(_eight_bit(mask, what))
    if mask.mode in ("L", "1"):
        return mask.convert("L")
    rgba = normalize(mask, what)
    if rgba.mode == "RGBA":
        return ImageChops.multiply(rgba.convert("L"), rgba.getchannel("A"))
    return rgba.convert("L")


def _eight_bit(image, what: str):
    """The pixels of a 16-bit or float single-channel PIL image as a uint8 array."""
    import numpy as np

    pixels = np.asarray(image)
    if image.mode == "F":
        return _unit_float(pixels, what)
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
        raise BadInput(f"{what}: a {image.mode!r} picture with values from {pixels.min()} to {pixels.max()}; labkit "
                       f"reads it as 16-bit (0-65535). Scale it to 8 bits first.")
    return np.round(pixels.astype(np.float64) / 257).astype(np.uint8)


def _unit_float(pixels, what: str):
    import numpy as np

    if not np.isfinite(pixels).all():
        raise BadInput(f"{what} holds NaN or infinite values; give finite pixel values.")
    low, high = float(pixels.min(initial=0)), float(pixels.max(initial=0))
    if low < 0 or high > 1:
        raise BadInput(f"{what}: float pixels are read as 0..1 (diffusers' convention), but these span {low:g} to "
                       f"{high:g}; scale them (e.g. pixels / 255 for 0..255, (pixels + 1) / 2 for -1..1).")
    return np.round(pixels.astype(np.float64) * 255).astype(np.uint8)


def _from_array(data, what: str):
    """A PIL image from a NumPy array (see TAKES); BadInput naming the fix for anything else."""
    import os

    from PIL import Image

    if data is None:
        raise BadInput(f"{what} is None: give {TAKES}.")
    if isinstance(data, (str, bytes, os.PathLike)):
        raise BadInput(f"{what}= got a {type(data).__name__}; open the file first: PIL.Image.open(path).")
    if type(data).__module__.startswith("torch"):
        raise BadInput(f"{what}= got a torch tensor; give {TAKES} (e.g. from a (3, H, W) tensor in -1..1: "
                       f"Image.fromarray(((t.permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).byte().cpu().numpy())).")
    if not hasattr(data, "__array_interface__") and not hasattr(data, "__array__"):
        raise BadInput(f"{what}= got a {type(data).__name__}; give {TAKES}.")
    return Image.fromarray(_array_pixels(data, what))


def _array_pixels(data, what: str):
    """A uint8 (H, W[, C]) array from a NumPy array of the kinds labkit takes."""
    import numpy as np

    pixels = np.asarray(data)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4) and pixels.shape[0] in (1, 3, 4):
        raise BadInput(f"{what}: an array of shape {pixels.shape} looks channels-first; give (H, W, C): "
                       f"array.transpose(1, 2, 0).")
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[-1] not in (3, 4)) or pixels.size == 0:
        raise BadInput(f"{what}: an array of shape {pixels.shape} is not a picture; give {TAKES}.")
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.bool_:
        return pixels.astype(np.uint8) * 255
    if pixels.dtype == np.uint16:
        return np.round(pixels.astype(np.float64) / 257).astype(np.uint8)
    if np.issubdtype(pixels.dtype, np.floating):
        return _unit_float(pixels, what)
    raise BadInput(f"{what}: {pixels.dtype} pixels are ambiguous; give uint8 (array.astype(np.uint8) for 0..255), "
                   f"uint16, bool or float in 0..1.")


def target_size(image, width, height, multiple: int = 8) -> tuple[int, int, str | None]:
    """(width, height, note): the requested size, or the image's own size snapped down to a multiple of 8."""
    if width and height:
        return width, height, None
    w, h = width or image.width, height or image.height
    sw, sh = max(multiple, w - w % multiple), max(multiple, h - h % multiple)
    note = None if (sw, sh) == (w, h) else f"image size {w}x{h} snapped to {sw}x{sh} (multiples of {multiple})"
    return sw, sh, note


def check_mask(mask, image):
    """The mask as PIL "L" (white = repaint); a size other than the image's raises BadInput."""
    mask = normalize_mask(mask)
    if mask.size != image.size:
        raise BadInput(f"Mask is {mask.size[0]}x{mask.size[1]} but the image is {image.size[0]}x{image.size[1]}; "
                       f"resize the mask to the image (mask.resize(image.size)) or paint it on this image.")
    return mask


def blur(pipe, mask, radius: int):
    """The mask softened by a Gaussian of `radius` pixels (A1111's "Mask blur"); 0 leaves it sharp."""
    return pipe.mask_processor.blur(mask, blur_factor=radius) if radius > 0 else mask


def check_painted(mask) -> None:
    """BadInput for an all-black mask, which leaves nothing to redraw."""
    if mask.getbbox() is None:
        raise BadInput("The mask is empty (all black): paint the area to redraw in white.")


def crop_region(pipe, mask, p):
    """(x1, y1, x2, y2) around the mask plus `p.padding`, widened to the target aspect ratio ("only masked")."""
    check_painted(mask)
    return pipe.mask_processor.get_crop_region(mask, p.width, p.height, pad=p.padding)


def overlay(pipe, mask, original, generated, p, crop=None):
    """Keep the original pixels outside the (blurred) mask, as A1111 does; pastes the crop back for only-masked."""
    if crop is None and original.size != (p.width, p.height):
        original, mask = original.resize((p.width, p.height)), mask.resize((p.width, p.height))
    return pipe.image_processor.apply_overlay(mask, original, generated, crop)


def check_margins(**margins) -> dict:
    """The outpaint margins {left, right, top, bottom} as ints; BadInput unless whole multiples of 8, not negative,
    one of them over 0."""
    from .checks import whole

    out = {name: whole(name, value, example=64) for name, value in margins.items()}
    for name, value in out.items():
        if value < 0 or value % 8:
            raise BadInput(f"{name}={value}: outpaint margins must be non-negative multiples of 8.")
    if not any(out.values()):
        raise BadInput("outpaint needs at least one margin (left/right/top/bottom) greater than 0.")
    return out


def extend_canvas(image, left=0, right=0, top=0, bottom=0):
    """(canvas, mask) for outpainting: the image on a larger canvas whose new border is filled with the
    image's edge colors repeated outwards, and a mask that is white over the new area."""
    from PIL import Image

    image = to_rgb(image)
    check_margins(left=left, right=right, top=top, bottom=bottom)
    import numpy as np

    w, h = image.size
    pixels = np.pad(np.asarray(image), ((top, bottom), (left, right), (0, 0)), mode="edge")  # (H', W', 3)
    canvas = Image.fromarray(pixels)
    mask = Image.new("L", canvas.size, 255)
    mask.paste(Image.new("L", (w, h), 0), (left, top))
    return canvas, mask


VAE_OVERFLOW_NOTE = ("the float16 VAE overflowed (NaN/inf, as SDXL's original VAE does in half precision): decoded "
                     "again in float32, as A1111's 'revert to 32-bit VAE' does; an fp16-fixed SDXL VAE "
                     "(labkit.open(model, vae=...)) avoids the second decode")


def decode_latents(vae, latents, notes: list | None = None, plan: str = "whole"):
    """The VAE decoder's pixels (B, 3, H, W) float32 in about [-1, 1] of UNet-space `latents` (divided by the
    scaling factor first). `plan` (`limits.decode_plan`): "whole", "sliced" (one picture at a time) or "tiled"
    (diffusers' tiled decode in tiles of `limits.TILE_PX`, seams blended) to fit in memory. A float16 VAE that
    overflows (SDXL's does) is rerun in float32 and left as it was; VAE_OVERFLOW_NOTE is added to `notes` then."""
    import torch

    scaled = latents / vae.config.scaling_factor
    weight = next(vae.parameters())  # its dtype and device (diffusers' vae.dtype walks every weight)
    with torch.no_grad():
        x = decode_planned(vae, scaled.to(weight.device, weight.dtype), plan)
        if weight.dtype == torch.float16 and not torch.isfinite(x).all():
            if notes is not None:
                notes.append(VAE_OVERFLOW_NOTE)
            from .quiet import quiet_libraries

            try:
                with quiet_libraries():  # diffusers warns about casting with to(); the cast is what is wanted here
                    vae.to(torch.float32)
                x = decode_planned(vae, scaled.to(weight.device, torch.float32), plan)
            finally:
                with quiet_libraries():
                    vae.to(torch.float16)
    return x.float()


def decode_planned(vae, scaled, plan: str):
    """`vae.decode` of VAE-space latents, whole, one picture at a time, or in tiles (see `decode_latents`)."""
    import torch

    if plan == "sliced":
        return torch.cat([vae.decode(one[None]).sample for one in scaled])
    if plan != "tiled":
        return vae.decode(scaled).sample
    from .limits import TILE_PX

    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    saved = vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size
    vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size = True, TILE_PX, TILE_PX // scale
    try:
        return torch.cat([vae.decode(one[None]).sample for one in scaled])
    finally:
        vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size = saved


def to_pictures(x) -> list:
    """Pixels (B, 3, H, W) in [-1, 1] as 8-bit PIL pictures, as A1111 and ComfyUI save them: mapped to [0, 1],
    clamped, times 255 and truncated (diffusers rounds instead: a level apart in about half the values)."""
    import numpy as np
    from PIL import Image

    x = ((x.float() + 1) / 2).clamp(0, 1) * 255  # (B, 3, H, W) in [0, 255]
    return [Image.fromarray(frame) for frame in x.permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)]
