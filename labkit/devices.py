"""Devices: the torch devices this machine has, a device name checked against them, and each device's memory.

    available()        # ["cpu"] or ["cpu", "cuda", "cuda:0"], plus "mps" / "xpu" where torch has them
    check("gpu")       # BadInput: 'gpu' is not a torch device name ... Valid devices here: cpu.
"""

import os

from . import checks
from .errors import BadInput

KINDS = {"cuda": "CUDA (NVIDIA) GPU", "mps": "Apple GPU (MPS)", "xpu": "Intel GPU (XPU)"}
# words people write for a device -> the kinds they may mean, in order
WORDS = {"gpu": ("cuda", "mps", "xpu"), "nvidia": ("cuda",), "cuda0": ("cuda",), "metal": ("mps",),
         "apple": ("mps",), "intel": ("xpu",), "auto": ("cuda", "mps", "cpu")}


def cpu_cores() -> int:
    """The cores this process may use (its affinity mask where the OS has one): what sweeps and the Studio divide."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _has(kind: str) -> int:
    """How many devices of `kind` torch can use here (0 when none)."""
    import torch

    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return int(mps is not None and mps.is_available())
    xpu = getattr(torch, "xpu", None)
    return xpu.device_count() if kind == "xpu" and xpu is not None and xpu.is_available() else 0


def available() -> list[str]:
    """The device names torch can use on this machine, "cpu" first."""
    found = ["cpu"]
    for kind in KINDS:
        n = _has(kind)
        if n:
            found += [kind] + ([f"{kind}:{i}" for i in range(n)] if kind != "mps" else [])
    return found


def check(device) -> str:
    """`device` (a name or a torch.device) as a name torch can use here; BadInput naming the valid ones."""
    if type(device).__name__ == "device" and type(device).__module__.startswith("torch"):
        device = str(device)
    checks.text("device", device)
    valid = available()
    if device in valid:
        return device
    kind, _, index = device.strip().lower().partition(":")
    here = f"Valid devices here: {', '.join(valid)}."
    if kind in KINDS and not _has(kind):
        raise BadInput(f"device={device!r}: this machine has no {KINDS[kind]} that torch can use (torch "
                       f"{_torch_version()}). {here}")
    if kind in KINDS:
        raise BadInput(f"device={device!r}: this machine has {_has(kind)} {KINDS[kind]}(s), numbered from 0. {here}")
    if kind == "cpu":
        raise BadInput(f"device={device!r}: write 'cpu'. {here}")
    meant = next((k for k in WORDS.get(kind, ()) if k in valid), None)
    hint = (f" Did you mean {meant!r}?" if meant else
            " This machine has no GPU torch can use; use 'cpu'." if kind in WORDS else checks.did_you_mean(kind, valid))
    raise BadInput(f"device={device!r} is not a torch device name.{hint} {here}")


def _torch_version() -> str:
    import torch

    return torch.__version__


def memory(device) -> int:
    """Bytes of memory the device has: the GPU's own for CUDA, the machine's RAM otherwise."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return 16 * 2**30
