"""The VAE and latent space: pixels <-> latents, the scaling factor, latent channels as pictures.

`encode` and `decode` are what labkit's Lab does around the UNet (Lab.encode_image / Lab.decode), written
out: pixels in [-1, 1] -> the VAE posterior's mean -> times `scaling_factor` (so latents have roughly unit
variance, the scale the UNet was trained on); and back: latents / `scaling_factor` -> VAE decoder -> pixels.
"""


def fit(lab, image):
    """The part of `image` the VAE sees (RGB, cropped to a multiple of its cell size)."""
    image = image.convert("RGB")
    cell = lab.vae_scale
    return image.crop((0, 0, image.width // cell * cell, image.height // cell * cell))


def to_tensor(lab, image):
    """A PIL image as the VAE's input: (1, 3, H, W) in [-1, 1], cropped to a multiple of the VAE's cell size."""
    import numpy as np
    import torch

    pixels = np.asarray(fit(lab, image), dtype=np.float32) / 127.5 - 1.0  # (H, W, 3) in [-1, 1]
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()  # (1, 3, H, W)


def to_image(x):
    """The VAE's output (1, 3, H, W) in [-1, 1] as a PIL image, made 8-bit as labkit's Lab makes it."""
    from ..images import to_pictures

    return to_pictures(x[:1])[0]


def encode(lab, image):
    """Scaled latents (1, C, H/8, W/8) of a PIL image: the posterior mean times the VAE's scaling factor."""
    import torch

    vae = lab.components["vae"]
    x = to_tensor(lab, image).to(vae.device, vae.dtype)  # (1, 3, H, W)
    with torch.no_grad():
        mean = vae.encode(x).latent_dist.mean  # (1, C, h, w): deterministic, no sampling
    return mean * vae.config.scaling_factor


def decode(lab, latents):
    """A PIL image from scaled latents (1, C, h, w): divide by the scaling factor, run the VAE decoder (a float16
    VAE that overflows, as SDXL's does, is rerun in float32), make it 8-bit: what labkit's Lab does."""
    from ..images import decode_latents

    return to_image(decode_latents(lab.components["vae"], latents[:1]))


def channels_image(latents, tile: int = 64, gap: int = 4):
    """A PIL strip of the latent channels as grayscale pictures, left to right, each labelled with its index.

    Each channel is stretched to its own min..max (black..white), so the strip shows patterns, not scale.
    Tiles are at least `tile` pixels high (nearest-neighbour enlarged). Size: (C*(side+gap)-gap, side+14).
    """
    import numpy as np
    from PIL import Image, ImageDraw

    x = latents[0].detach().float().cpu().numpy()  # (C, h, w)
    c, h, w = x.shape
    zoom = max(1, -(-tile // h))
    side_w, side_h = w * zoom, h * zoom
    label = 14
    strip = Image.new("L", (c * (side_w + gap) - gap, side_h + label), 255)
    draw = ImageDraw.Draw(strip)
    for i, channel in enumerate(x):
        lo, hi = channel.min(), channel.max()
        gray = (channel - lo) / (hi - lo) if hi > lo else np.zeros_like(channel)  # (h, w) in [0, 1]
        picture = Image.fromarray((gray * 255).round().astype(np.uint8)).resize((side_w, side_h), Image.NEAREST)
        left = i * (side_w + gap)
        strip.paste(picture, (left, 0))
        draw.text((left + 2, side_h + 1), str(i), fill=0)
    return strip


def round_trip_psnr(lab, image) -> float:
    """PSNR in dB between `image` (cropped to the VAE's cell size) and decode(encode(image)); inf if identical."""
    import numpy as np

    original = np.asarray(fit(lab, image), dtype=np.float64)  # (H, W, 3)
    back = np.asarray(decode(lab, encode(lab, image)), dtype=np.float64)  # (H, W, 3)
    mse = np.mean((original - back) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
