"""Small image helpers at the pipeline's edge: sizes, masks, overlays, outpainting canvases."""

from .errors import BadInput


def to_rgb(image):
    """A PIL RGB image from a PIL image or an (H, W, 3) uint8 array."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        try:
            image = Image.fromarray(image)
        except Exception as exc:
            raise BadInput(f"Expected a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}.") from exc
    return image.convert("RGB")


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
    from PIL import Image

    if not isinstance(mask, Image.Image):
        mask = Image.fromarray(mask)
    if mask.size != image.size:
        raise BadInput(f"Mask is {mask.size[0]}x{mask.size[1]} but the image is {image.size[0]}x{image.size[1]}; "
                       f"resize the mask to the image (mask.resize(image.size)) or paint it on this image.")
    return mask.convert("L")


def blur(pipe, mask, radius: int):
    """The mask softened by a Gaussian of `radius` pixels (A1111's "Mask blur"); 0 leaves it sharp."""
    return pipe.mask_processor.blur(mask, blur_factor=radius) if radius > 0 else mask


def crop_region(pipe, mask, p):
    """(x1, y1, x2, y2) around the mask plus `p.padding`, widened to the target aspect ratio ("only masked")."""
    if mask.getbbox() is None:
        raise BadInput("The mask is empty (all black): paint the area to redraw in white.")
    return pipe.mask_processor.get_crop_region(mask, p.width, p.height, pad=p.padding)


def overlay(pipe, mask, original, generated, p, crop=None):
    """Keep the original pixels outside the (blurred) mask, as A1111 does; pastes the crop back for only-masked."""
    if crop is None and original.size != (p.width, p.height):
        original, mask = original.resize((p.width, p.height)), mask.resize((p.width, p.height))
    return pipe.image_processor.apply_overlay(mask, original, generated, crop)


def extend_canvas(image, left=0, right=0, top=0, bottom=0):
    """(canvas, mask) for outpainting: the image on a larger canvas whose new border is filled with the
    image's edge colors repeated outwards, and a mask that is white over the new area."""
    from PIL import Image

    image = to_rgb(image)
    for name, value in (("left", left), ("right", right), ("top", top), ("bottom", bottom)):
        if value < 0 or value % 8:
            raise BadInput(f"{name}={value}: outpaint margins must be non-negative multiples of 8.")
    if not any((left, right, top, bottom)):
        raise BadInput("outpaint needs at least one margin (left/right/top/bottom) greater than 0.")
    import numpy as np

    w, h = image.size
    pixels = np.pad(np.asarray(image), ((top, bottom), (left, right), (0, 0)), mode="edge")  # (H', W', 3)
    canvas = Image.fromarray(pixels)
    mask = Image.new("L", canvas.size, 255)
    mask.paste(Image.new("L", (w, h), 0), (left, top))
    return canvas, mask


def decode_latents(vae, latents):
    """The VAE decoder's pixels (B, 3, H, W) float32 in about [-1, 1] of UNet-space `latents` (divided by the
    scaling factor first). A float16 VAE that overflows (SDXL's does) is rerun in float32 and left as it was."""
    import torch

    scaled = latents / vae.config.scaling_factor
    with torch.no_grad():
        x = vae.decode(scaled.to(vae.device, vae.dtype)).sample
        if vae.dtype == torch.float16 and not torch.isfinite(x).all():
            try:
                x = vae.to(torch.float32).decode(scaled.to(vae.device, torch.float32)).sample
            finally:
                vae.to(torch.float16)
    return x.float()


def to_pictures(x) -> list:
    """Pixels (B, 3, H, W) in [-1, 1] as 8-bit PIL pictures, as A1111 and ComfyUI save them: mapped to [0, 1],
    clamped, times 255 and truncated (diffusers rounds instead: a level apart in about half the values)."""
    import numpy as np
    from PIL import Image

    x = ((x.float() + 1) / 2).clamp(0, 1) * 255  # (B, 3, H, W) in [0, 255]
    return [Image.fromarray(frame) for frame in x.permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)]
