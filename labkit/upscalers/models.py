"""Upscaler model files read safely and handed to spandrel, which knows the architectures (ESRGAN, Real-ESRGAN,
Compact, SwinIR, HAT, DAT, SPAN, OmniSR...): .safetensors as they are, pickled .pth/.pt only through
torch.load(weights_only=True), which refuses anything but tensors, as A1111's restricted unpickler does."""

from dataclasses import dataclass
from pathlib import Path

from ..errors import UnsafeFile, UnsupportedFile


@dataclass(frozen=True)
class UpscalerModel:
    """A loaded upscaler: `model` is spandrel's ImageModelDescriptor (call it on (1, 3, H, W) in [0, 1])."""

    name: str
    path: Path
    architecture: str
    scale: int
    model: object

    def __repr__(self):
        return f"<UpscalerModel {self.name}: {self.architecture} {self.scale}x>"


def read_state_dict(path: Path) -> dict:
    """{key: tensor} of an upscaler file; UnsafeFile when a pickle holds more than tensors."""
    import torch

    if not path.exists():
        raise UnsupportedFile(f"No such upscaler file: {path}.")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise UnsupportedFile(f"{path.name} is not a readable .safetensors file ({exc}).") from exc
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnsafeFile(f"{path.name} is a pickled file that torch.load(weights_only=True) refuses ({exc}): "
                         f"unpickling it could run code hidden in the file, so labkit does not read it. Convert "
                         f"it to .safetensors with a tool you trust, or use the safetensors release of the "
                         f"model.") from exc
    if not isinstance(data, dict):
        raise UnsupportedFile(f"{path.name} holds a {type(data).__name__}, not a dict of weights: it is not an "
                              f"upscaler file.")
    return data


def describe(state: dict, name: str):
    """spandrel's descriptor of a state dict (tensors, or meta tensors to learn the architecture only);
    UnsupportedFile naming what spandrel knows when it is not an upscaler."""
    from .library import spandrel

    module = spandrel()
    try:
        descriptor = module.MAIN_REGISTRY.load(state)
    except module.UnsupportedModelError:
        known = ", ".join(sorted(a.architecture.name for a in module.MAIN_REGISTRY.architectures()))
        raise UnsupportedFile(f"{name}: not an upscaler architecture labkit's upscaler library (spandrel) knows. "
                              f"It reads: {known}.") from None
    if not isinstance(descriptor, module.ImageModelDescriptor):
        raise UnsupportedFile(f"{name}: a {descriptor.architecture.name} model ({descriptor.purpose}), which "
                              f"needs a mask; labkit's upscalers take a picture alone.")
    return descriptor


def load(path, name: str | None = None) -> UpscalerModel:
    """The upscaler in `path`, evaluated in float32 on the CPU."""
    path = Path(path)
    descriptor = describe(read_state_dict(path), path.name)
    descriptor.model.float().eval()
    return UpscalerModel(name or path.stem, path, descriptor.architecture.name, int(descriptor.scale), descriptor)


def architecture_of(shapes: dict, name: str):
    """(architecture, scale) of a file's {key: shape} without reading its tensors (meta tensors), or None when
    it is not an upscaler spandrel knows."""
    import torch

    state = {key: torch.empty(tuple(shape), device="meta") for key, shape in shapes.items()}
    try:
        with torch.device("meta"):
            descriptor = describe(state, name)
    except Exception:  # noqa: BLE001 - not an upscaler (or not one spandrel reads from shapes alone)
        return None
    return descriptor.architecture.name, int(descriptor.scale)
