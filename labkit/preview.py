"""Cheap latent -> RGB previews for each sampling step (A1111's "Approx cheap" idea).

A VAE's latents map to colors almost linearly. Instead of shipping a table per family, labkit fits that linear
map (4 latent channels + a bias -> RGB) once per VAE by least squares: encode a few random color-block pictures
and regress their 8x8-pooled pixels on the latents. It works for SD1, SD2, SDXL and the toy VAE alike and
costs one small VAE encode; a preview then costs a (h*w, 5) x (5, 3) product, no decoder.

The map is rough where a VAE is far from linear: the toy VAE is (its white comes out teal), so for a small VAE
the `Previewer` decodes each step for real ("full", A1111's other cheap-enough mode), which costs milliseconds.
"""

FIT_SIDE = 64     # side of the fitting pictures (8x8 latents on an 8x VAE)
FIT_PICTURES = 48
SMALL_VAE = 10_000_000  # parameters: below this, "auto" previews decode with the VAE itself
FIT_BLOCKS = 2    # color blocks per side: big flat areas, so most latent pixels see one color


def fit(vae, seed: int = 0):
    """(channels + 1, 3) float32 tensor mapping scaled latents (and a 1 for the bias) to RGB in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    corners = torch.tensor([[(i >> k) & 1 for k in range(3)] for i in range(8)] + [[0.5] * 3], dtype=torch.float32)
    n = FIT_PICTURES * FIT_BLOCKS**2
    colors = torch.where(torch.rand(n, 1, generator=g) < 0.5, corners[torch.randint(9, (n,), generator=g)],
                         torch.rand(n, 3, generator=g))  # (n, 3): half saturated/black/white/gray, half any
    blocks = colors.reshape(FIT_PICTURES, FIT_BLOCKS, FIT_BLOCKS, 3).permute(0, 3, 1, 2) * 2 - 1  # (N, 3, b, b)
    x = F.interpolate(blocks, size=(FIT_SIDE, FIT_SIDE), mode="nearest")  # (N, 3, 64, 64)
    with torch.no_grad():
        z = vae.encode(x.to(vae.device, vae.dtype)).latent_dist.mean.float().cpu()  # (N, C, h, w)
    z = z * vae.config.scaling_factor
    target = F.adaptive_avg_pool2d(x, z.shape[-2:])  # (N, 3, h, w)
    rows = _rows(z)  # (N*h*w, C+1)
    return torch.linalg.lstsq(rows, target.permute(0, 2, 3, 1).reshape(-1, 3)).solution  # (C+1, 3)


def _rows(latents):
    """(N, C, h, w) -> (N*h*w, C+1): one row per latent pixel, with a trailing 1 for the bias."""
    import torch

    flat = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    return torch.cat([flat, torch.ones(len(flat), 1)], dim=1)


def to_image(latents, coefficients, scale: int = 8):
    """The first picture of `latents` (B, C, h, w), scaled, as a PIL RGB image of (w*scale, h*scale)."""
    import torch
    from PIL import Image

    z = latents[:1].detach().float().cpu()  # (1, C, h, w)
    h, w = z.shape[-2:]
    rgb = (_rows(z) @ coefficients).reshape(h, w, 3).clamp(-1, 1)  # (h, w, 3)
    pixels = ((rgb + 1) * 127.5).round().to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB").resize((w * scale, h * scale), Image.BILINEAR)


class Previewer:
    """Step previews for one Lab: mode "full" decodes with the VAE, "approx" applies the fitted linear map
    (fitted on first use), "auto" picks "full" for a small VAE (the toy's) and "approx" for a real one."""

    def __init__(self, lab, mode: str = "auto"):
        from .errors import BadInput

        if mode not in ("auto", "full", "approx"):
            raise BadInput(f"preview mode {mode!r}: use 'auto', 'full' (VAE decode) or 'approx' (linear map).")
        self.lab = lab
        if mode == "auto":
            size = sum(p.numel() for p in lab.components["vae"].parameters())
            mode = "full" if size < SMALL_VAE else "approx"
        self.mode = mode
        self._coefficients = None

    @property
    def coefficients(self):
        if self._coefficients is None:
            self._coefficients = fit(self.lab.components["vae"])
        return self._coefficients

    def __call__(self, latents):
        """A PIL image of the first picture in `latents` (B, C, h, w), the pipeline's scaled latents."""
        if self.mode == "approx":
            return to_image(latents, self.coefficients, self.lab.vae_scale)
        return decode(self.lab.components["vae"], latents)


def decode(vae, latents):
    """The first picture of scaled `latents` decoded by the VAE, as a PIL image (what the final picture shows)."""
    from .images import decode_latents, to_pictures

    return to_pictures(decode_latents(vae, latents[:1]))[0]
