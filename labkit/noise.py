"""Seeds and initial noise, drawn by labkit in float32 so each tool's noise can be reproduced.

Modes (see REFERENCE.md "Seeds and noise"):
- "a1111-cpu": image i uses seed + i, `torch.randn((4, H/8, W/8))` on a CPU generator (A1111 with RNG: CPU).
- "a1111-gpu": the same on the CUDA device (A1111's default RNG); falls back to the CPU draw, with a warning,
  when no CUDA device exists.
- "comfy": one CPU generator seeded with `seed` draws the whole batch at once (ComfyUI).
"""

import secrets
import warnings

from .errors import BadInput

MAX_SEED = 2**32 - 1


def resolve_seed(seed: int) -> int:
    """`seed`, or a fresh random one for -1 (A1111's convention)."""
    if seed == -1:
        return secrets.randbelow(MAX_SEED + 1)
    if not 0 <= seed <= 2**63 - 1:
        raise BadInput(f"seed={seed} must be -1 (random) or a non-negative integer.")
    return int(seed)


def batch_seeds(seed: int, batch_size: int, mode: str) -> list[int]:
    """The seed A1111 reports for each image of a batch (seed + i); ComfyUI reports one seed for all."""
    return [seed] * batch_size if mode == "comfy" else [seed + i for i in range(batch_size)]


def effective_mode(mode: str) -> tuple[str, str | None]:
    """(mode actually used, note): "a1111-gpu" becomes "a1111-cpu" without CUDA, with a note saying so."""
    import torch

    if mode == "a1111-gpu" and not torch.cuda.is_available():
        note = ("noise='a1111-gpu' needs a CUDA device to match A1111's default GPU noise; none was found, so the "
                "noise was drawn on the CPU (A1111's 'RNG: CPU'). Use noise='a1111-cpu' to silence this.")
        return "a1111-cpu", note
    return mode, None


def generators(seed: int, batch_size: int, mode: str):
    """Seeded torch generators reproducing `mode`: a list (one per image) or a single one for "comfy"."""
    import torch

    if mode == "comfy":
        return torch.Generator("cpu").manual_seed(seed)
    device = "cuda" if mode == "a1111-gpu" else "cpu"
    return [torch.Generator(device).manual_seed(seed + i) for i in range(batch_size)]


def initial_noise(seed: int, batch_size: int, latent_shape: tuple[int, int, int], mode: str = "a1111-cpu"):
    """Float32 noise of shape (batch_size, C, h, w) for `mode`, on the device the mode draws on.

    >>> initial_noise(42, 2, (4, 8, 8)).shape
    torch.Size([2, 4, 8, 8])
    """
    return draw(generators(seed, batch_size, mode), batch_size, latent_shape)


def draw(gens, batch_size: int, latent_shape: tuple[int, int, int]):
    """Float32 noise (batch_size, C, h, w) from `generators(...)`' output, advancing them: the same generators
    then give the sampler's later noise (ancestral and SDE steps), as A1111 draws it from each image's RNG."""
    import torch

    if not isinstance(gens, list):  # comfy: one generator for the whole batch
        return torch.randn((batch_size, *latent_shape), generator=gens, dtype=torch.float32)
    return torch.stack([torch.randn(latent_shape, generator=g, device=g.device, dtype=torch.float32) for g in gens])


def warn_fallback(note: str | None) -> None:
    if note:
        warnings.warn(note, stacklevel=3)
