"""The embedded model family on disk: which shipped parts (and key prefixes) make up each member.

Members share parts the way SDXL's refiner shares its VAE and second text encoder with the base, so the
whole family stays small. Each member is assembled into an A1111-layout state dict and opened through the
same single-file path as any downloaded checkpoint.
"""

import json
from pathlib import Path

from ..checks import did_you_mean
from ..errors import UnsupportedFile

WEIGHTS = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS / "manifest.json"


def manifest() -> dict:
    """{member: {"family", "variant", "parts": [[file, prefix], ...], ...}} as shipped."""
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def available() -> list[str]:
    """Members whose every part ships with this install."""
    return [name for name, m in manifest().items() if all((WEIGHTS / f).exists() for f, _ in m["parts"])]


def entry(name: str) -> dict:
    members = available()
    if name not in members:
        raise UnsupportedFile(f"{name!r} is not an embedded model; labkit.models() lists them: "
                              f"{', '.join(members) or '(none installed: run python -m labkit.toy.train all)'}. "
                              f"For your own model, give the path of a .safetensors file or a diffusers folder."
                              + did_you_mean(name, members))
    return manifest()[name]


def state_dict(name: str) -> dict:
    """The member's A1111-layout state dict, assembled from its shipped parts (read by `header.read_tensors`,
    which does not leak memory each time a model is opened, as safetensors' `load_file` does)."""
    from ..header import read_tensors

    out = {}
    for file, prefix in entry(name)["parts"]:
        out.update({prefix + k: v for k, v in read_tensors(WEIGHTS / file).items()})
    return out
