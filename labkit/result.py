"""Result: the pictures of one run together with their full recipe (Params plus the ModelRecord of what ran)."""

import io
from dataclasses import dataclass, field
from pathlib import Path

from .params import Params
from .recipes.records import ModelRecord


@dataclass
class Result:
    """Images, the exact `Params` that made them (seed and size resolved), per-stage timings in seconds, and
    `model`: the ModelRecord of what ran them (None for results made outside a Lab).

    `latents` are the final latents the VAE decoded, in the UNet's space: the VAE's latent times its
    `scaling_factor` (diffusers' convention; a ComfyUI LATENT holds them divided by it: `labkit.write_latent`).
    For inpainting they are the pipeline's output before the original pixels are pasted back outside the mask."""

    images: list
    params: Params
    seeds: list[int]
    mode: str = "txt2img"
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model: ModelRecord | None = None
    stages: dict[str, str] = field(default_factory=dict)
    report: object = None  # set by Lab.reproduce: what of the recipe was honoured
    latents: object = None  # torch (B, C, h, w) float32 on the CPU: the final latents before the VAE decode
    control_maps: list = field(default_factory=list)  # each ControlNet unit's control map, as the ControlNet saw it
    first_pass: list = field(default_factory=list)  # hires fix: the first pass's pictures, before the upscale

    @property
    def image(self):
        """The first image of the batch."""
        return self.images[0]

    @property
    def seed(self) -> int:
        return self.seeds[0]

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, format="PNG")
        return buf.getvalue()

    def __repr__(self) -> str:
        w, h = self.image.size
        t = self.timings.get("total")
        took = f", {t:.2f} s" if t is not None else ""
        return f"<Result {self.mode} {len(self.images)}x{w}x{h} seed={self.seed}{took}: {self.params.prompt[:40]!r}>"

    def save(self, path, overwrite: bool = False) -> Path:
        """Write the first image (.png, .jpg or .webp) with its recipe: A1111 infotext, labkit JSON, XMP AI marker.

        `read_params(r.save(path)) == r.params`. Never overwrites an existing file unless `overwrite=True`.
        """
        from . import checks
        from .recipes import save_image

        checks.path("path", path)
        checks.flag("overwrite", overwrite)
        return save_image(self.image, path, self.params, model=self.model, mode=self.mode, overwrite=overwrite)
