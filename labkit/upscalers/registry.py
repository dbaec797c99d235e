"""Every upscaler by the name A1111 shows it under: the latent modes (hires fix only), the pixel resamplers, and
model files on a search path (labkit's toy-upscaler, A1111's models/ESRGAN and models/RealESRGAN, ComfyUI's
models/upscale_models, $LABKIT_UPSCALER_PATH), each named by its file's stem as A1111 names it."""

import os
from dataclasses import dataclass
from pathlib import Path

from ..checks import did_you_mean
from ..errors import BadInput

# A1111's shared.latent_upscale_modes: name -> (torch interpolate mode, antialias)
LATENT_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
# pixel resamplers -> PIL filter name; A1111's "None" resizes with Lanczos too
PIXEL_MODES = {"None": "LANCZOS", "Lanczos": "LANCZOS", "Nearest": "NEAREST"}
ENV_PATH = "LABKIT_UPSCALER_PATH"  # extra upscaler folders, separated by os.pathsep
PACKAGE_UPSCALERS = Path(__file__).parents[1] / "toy" / "weights"
FOLDERS = (("models", "ESRGAN"), ("models", "RealESRGAN"), ("models", "upscale_models"))
SUFFIXES = (".safetensors", ".pth", ".pt")


@dataclass(frozen=True)
class UpscalerChoice:
    """One upscaler by name: kind "latent", "pixel" or "model" (then `path` is its file)."""

    name: str
    kind: str
    path: Path | None = None


def search_paths() -> list:
    """labkit's weights folder, ./models/ESRGAN, ./models/RealESRGAN, ./models/upscale_models and the folders in
    $LABKIT_UPSCALER_PATH, in that order."""
    extra = [Path(p) for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    return [PACKAGE_UPSCALERS, *(Path.cwd().joinpath(*parts) for parts in FOLDERS), *extra]


def model_files(paths=None) -> dict:
    """{name: path} of the upscaler model files under `paths` (the first of a name wins). In labkit's own
    weights folder only files whose metadata says they are upscalers count; elsewhere every weight file does."""
    found = {}
    for folder in (Path(p) for p in (search_paths() if paths is None else paths)):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in SUFFIXES and path.is_file() and path.stem not in found:
                if folder.resolve() != PACKAGE_UPSCALERS.resolve() or _shipped_upscaler(path):
                    found[path.stem] = path
    return found


def _shipped_upscaler(path: Path) -> bool:
    from ..header import read_header_at

    try:
        return "labkit.upscaler" in read_header_at(path)[1]
    except Exception:  # noqa: BLE001 - a file that is not a readable safetensors file is not an upscaler
        return False


def names(paths=None, latent: bool = True) -> list[str]:
    """Every upscaler name, as A1111 orders them: the latent modes (with `latent`), None, Lanczos, Nearest, then
    the model files by name."""
    models = sorted(model_files(paths), key=str.lower)
    return [*(LATENT_MODES if latent else ()), *PIXEL_MODES, *models]


def choose(name, paths=None, latent: bool = True) -> UpscalerChoice:
    """The upscaler called `name` (or a path to a model file); BadInput listing the available ones otherwise."""
    from .. import checks

    if isinstance(name, Path) or (isinstance(name, str) and Path(name).suffix.lower() in SUFFIXES):
        path = Path(checks.path("upscaler", name)).expanduser()
        if not path.is_file():
            raise BadInput(f"upscaler={str(name)!r}: no such file (working directory {os.getcwd()}).")
        return UpscalerChoice(path.stem, "model", path)
    checks.text("upscaler", name)
    if latent and name in LATENT_MODES:
        return UpscalerChoice(name, "latent")
    if name in PIXEL_MODES:
        return UpscalerChoice(name, "pixel")
    files = model_files(paths)
    if name in files:
        return UpscalerChoice(name, "model", files[name])
    available = names(paths, latent)
    where = ", ".join(str(p) for p in (search_paths() if paths is None else paths))
    extra = "" if latent or name not in LATENT_MODES else " (latent modes upscale latents: hires fix only)"
    raise BadInput(f"Unknown upscaler {name!r}{extra}. Available: {', '.join(available)}. Model files are found "
                   f"by name in {where}, or give a file's path." + did_you_mean(name, available))
