"""labkit: an interactive lab for Stable Diffusion and SDXL in notebooks.

`import labkit` is light: torch and diffusers load on first use of a name that needs them.
"""

from importlib import import_module

from .errors import BadInput, LabkitError, LoraMismatch, TooLarge, UnsafeFile, UnsupportedFile
from .params import Params
from .version import __version__

# public name -> (module, attribute); resolved on first access so the import stays fast
_LAZY = {
    "open": ("labkit.loading", "open"),
    "models": ("labkit.loading", "models"),
    "Lab": ("labkit.lab", "Lab"),
    "Result": ("labkit.result", "Result"),
    "inspect": ("labkit.detect", "inspect"),
    "FileInfo": ("labkit.detect", "FileInfo"),
    "tokenizer": ("labkit.tokenizers", "tokenizer"),
    "read_params": ("labkit.recipes", "read_params"),
    "read_recipe": ("labkit.recipes", "read_recipe"),
    "read_latent": ("labkit.latent_files", "read_latent"),
    "write_latent": ("labkit.latent_files", "write_latent"),
    "samplers": ("labkit.samplers", None),
    "noise": ("labkit.noise", None),
    "hashes": ("labkit.hashes", None),
    "grid": ("labkit.grids", "grid"),
    "Limits": ("labkit.limits", "Limits"),
    "devices": ("labkit.devices", None),
    "sweep": ("labkit.sweep", None),
    "record": ("labkit.sweep.record", "record"),
    "ControlUnit": ("labkit.controlnet.units", "ControlUnit"),
    "controlnet": ("labkit.controlnet", None),
    "upscale": ("labkit.upscalers.run", "upscale"),
    "load_upscaler": ("labkit.upscalers.run", "load_upscaler"),
    "upscalers": ("labkit.upscalers", None),
}

__all__ = ["__version__", "BadInput", "LabkitError", "LoraMismatch", "TooLarge", "UnsafeFile", "UnsupportedFile",
           "Params", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
