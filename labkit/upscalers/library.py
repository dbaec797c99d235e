"""spandrel, imported beside a torch build that has no torchvision.

spandrel (MIT, chaiNNer's loader of ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, SPAN, Compact... weight files) lists
torchvision as a requirement, but only its LaMa (inpainting) and RestoreFormer (face restoration) architectures
import it, and neither is an upscaler. PyPI's torchvision pins another torch and pulls a multi-GB CUDA build, so
labkit installs spandrel with `--no-deps` (bin/setup) and, where torchvision is missing, imports spandrel with a
stand-in `torchvision.transforms.functional` in `sys.modules` whose functions raise, taken out again at once so
no other library sees it. The upscalers spandrel loads never touch it (tests/upscalers check they all load).
"""

import sys
import threading
import types

REQUIREMENT = "spandrel>=0.4.2"  # bin/setup installs it so (a test checks)
INSTALL = f"pip install --no-deps '{REQUIREMENT}' 'einops>=0.8'"
STAND_IN = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


def spandrel():
    """The spandrel module; LabkitError naming the install command when it is not installed."""
    with _LOCK:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        try:
            import torchvision  # noqa: F401 (a working torchvision: import spandrel as it is)
        except Exception:
            return _import_with_stand_in()
        return _import()


_LOCK = threading.Lock()  # one import at a time: the stand-in must never be seen by another thread's import


def _import():
    from ..errors import LabkitError

    try:
        import spandrel as module
    except ModuleNotFoundError as error:
        if error.name in ("spandrel", "einops"):
            raise LabkitError(f"Model upscalers need spandrel, which is not installed: {INSTALL} (--no-deps: its "
                                f"torchvision requirement would replace this torch build).") from None
        raise
    return module


def _import_with_stand_in():
    saved = {name: sys.modules.get(name) for name in STAND_IN}
    sys.modules.update(_stand_in())
    try:
        return _import()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _stand_in() -> dict:
    """Modules named like torchvision's whose functions raise: what spandrel's LaMa and RestoreFormer import."""

    def missing(*args, **kwargs):
        raise RuntimeError("torchvision is not installed: this spandrel architecture (LaMa or RestoreFormer) "
                           "needs it; labkit's upscalers do not.")

    root, transforms, functional = (types.ModuleType(name) for name in STAND_IN)
    functional.rotate = functional.normalize = missing
    functional.InterpolationMode = type("InterpolationMode", (), {"BILINEAR": "bilinear", "NEAREST": "nearest"})
    root.transforms, transforms.functional = transforms, functional
    return dict(zip(STAND_IN, (root, transforms, functional)))
