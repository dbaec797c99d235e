"""labkit's ipywidgets panels: thin views over `Params` and a `Lab`.

    from labkit.ui import Studio
    Studio(lab)

Each panel works alone and is composed by `Studio`. Nothing heavy is imported until a panel is used.
"""

_EXPORTS = {
    "Studio": "studio", "PromptPanel": "controls", "SamplingControls": "controls", "LoraToggles": "loras",
    "StepPreview": "progress", "Gallery": "gallery", "Compare": "gallery", "MaskCanvas": "mask",
    "PngInfo": "pnginfo", "XyzPlot": "xyz", "ModelPicker": "models", "Hotkeys": "hotkeys",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'labkit.ui' has no attribute {name!r}")
