"""LoRAs in labkit: load every common format, toggle and weigh them, fold them into the weights, check that a
LoRA fits the model, see its effect, and train one. `lab.loras` is a `LoraManager`.

Importing this package is light: torch loads when a LoRA is first loaded, folded or trained.
"""

from importlib import import_module

# public name -> module (in this package) defining it; resolved on first access
_LAZY = {
    "LoraManager": "manager",
    "LoraInfo": "manager",
    "Applied": "manager",
    "AB": "manager",
    "train": "training",
    "TrainResult": "training",
    "effect_heatmap": "view",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'labkit.lora' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
