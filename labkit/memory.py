"""Memory: what a Lab holds and where (`lab.memory()`), what opening a file will need (checked before it loads),
and CPU offload during a generation (`labkit.open(..., device="cuda", offload="model" | "sequential")`).

Offload is diffusers' own (`enable_model_cpu_offload`, `enable_sequential_cpu_offload`, through accelerate's
hooks), switched on for the length of one generation and off after it, so between runs the weights are ordinary
CPU tensors that LoRA folding, export and `lab.pipe` use as they are.
"""

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, TooLarge
from .families import UNET_PREFIX
from .limits import gib

OFFLOADS = ("model", "sequential")
LOAD_OVERHEAD = 1.1  # a load's peak over weights + file, with room for the rest of the process (benchmarks/
# fullsize.py measured 1.0-1.05 of them, the ~0.5 GiB Python process included: SDXL float32 20.2 GiB)
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Resident:
    """One model of a Lab: where its weights are, in which dtype, and how many bytes they take."""

    name: str
    device: str
    dtype: str
    bytes: int


@dataclass(frozen=True)
class MemoryReport:
    """`lab.memory()`: each model's weights, the copies LoRA folding keeps, the process and the GPU."""

    models: tuple
    lora_copies: int  # bytes of original weights kept to undo LoRAs (0 when they are read back from the file)
    lora_from_file: int  # how many changed weights are read back from the file instead
    process: int | None  # the process's resident memory (RSS), bytes
    gpu_allocated: int | None  # torch's CUDA allocations now and at their peak, bytes (None without CUDA)
    gpu_peak: int | None
    offload: str | None

    def __str__(self) -> str:
        rows = [f"  {m.name:<15} {m.device:<7} {m.dtype:<9} {gib(m.bytes):>10}" for m in self.models]
        total = sum(m.bytes for m in self.models)
        lines = ["weights:", *rows, f"  {'total':<33} {gib(total):>10}",
                 f"LoRA copies: {gib(self.lora_copies)} ({self.lora_from_file} weights read back from the file)"]
        if self.process is not None:
            lines.append(f"process (RSS): {gib(self.process)}")
        if self.gpu_allocated is not None:
            lines.append(f"GPU allocated: {gib(self.gpu_allocated)} (peak {gib(self.gpu_peak)})")
        if self.offload:
            lines.append(f"offload: {self.offload} (weights wait on the CPU between runs)")
        return "\n".join(lines)


def report(lab) -> MemoryReport:
    """What `lab` holds and where."""
    import torch

    from .limits import first_tensor, weight_bytes

    models = []
    for name, module in lab.components.items():
        if hasattr(module, "parameters"):
            dtype, device = first_tensor(module)
            models.append(Resident(name, str(device), str(dtype).removeprefix("torch."),
                                   weight_bytes({name: module})))
    copies = lab.loras.copies_bytes
    cuda = torch.cuda.is_available()
    return MemoryReport(tuple(models), copies, lab.loras.from_file, process_rss(),
                        torch.cuda.memory_allocated() if cuda else None,
                        torch.cuda.max_memory_allocated() if cuda else None, getattr(lab, "offload", None))


def process_rss() -> int | None:
    """This process's resident memory in bytes (Linux; None elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_offload(offload, device: str) -> str | None:
    """`offload` once it is None or a mode that means something on `device`; BadInput explaining otherwise."""
    if offload is None:
        return None
    if offload not in OFFLOADS:
        raise BadInput(f"offload={offload!r}: use 'model' (each model moves to the GPU while it runs) or "
                       f"'sequential' (one layer at a time: least GPU memory, slowest), or None.")
    if str(device).split(":")[0] == "cpu":
        raise BadInput(f"offload={offload!r} moves weights between a GPU and the CPU, but this model runs on the "
                       f"CPU, where every weight already is: there is nothing to offload. Leave offload=None; to "
                       f"need less memory open it with dtype='bfloat16', or make pictures smaller.")
    return offload


def check_open(path, device: str, dtype: str, offload: str | None, limits) -> None:
    """Before a single file loads: TooLarge with the estimate and what would fit, when opening it as asked needs
    more memory than the machine (CPU) or the device (GPU) has. Loading holds the file and the converted weights
    at once on the CPU; a GPU then holds the weights, or with offload only the largest model or layer."""
    if limits is None:
        return
    from . import detect, devices
    from .header import read_header

    info = detect.inspect(path)
    if info.kind != "checkpoint" or not info.n_params:
        return
    weights = info.n_params * DTYPE_BYTES[dtype]
    loading = (weights + Path(path).stat().st_size) * LOAD_OVERHEAD
    ram = limits.max_memory_gb * 2**30 if limits.max_memory_gb is not None else devices.memory("cpu")
    gpu = str(device).split(":")[0] != "cpu"
    problems = []
    if loading > ram:
        problems.append(f"loading needs about {gib(loading)} of main memory (the file, {gib(os.path.getsize(path))}, "
                        f"and its weights in {dtype}, {gib(weights)}, at once); this machine has {gib(ram)}")
    if gpu:
        header, _ = read_header(path)
        unet = sum(math.prod(entry["shape"]) for key, entry in header.items() if key.startswith(UNET_PREFIX))
        on_gpu = {None: weights, "model": unet * DTYPE_BYTES[dtype], "sequential": 0}[offload]
        memory = devices.memory(device)
        if on_gpu > memory:
            problems.append(f"its weights need about {gib(on_gpu)} on {device}, which has {gib(memory)}")
    if problems:
        raise TooLarge(f"{Path(path).name} ({info.n_params / 1e9:.2f} billion weights) cannot be opened as asked: "
                       f"{'; '.join(problems)}. {_what_fits(info.n_params, dtype, gpu, offload)}")


def _what_fits(n_params: int, dtype: str, gpu: bool, offload) -> str:
    options = []
    if dtype == "float32":
        half = "float16" if gpu else "bfloat16"
        options.append(f"dtype={half!r} halves it ({gib(n_params * 2)} of weights)")
    if gpu and offload != "sequential":
        options.append("offload='model' keeps only the largest model on the GPU, offload='sequential' only one layer")
    options.append("labkit.open(..., limits=None) skips this check if you know better")
    return "Options: " + "; ".join(options) + "."


@contextmanager
def offloaded(lab, pipe):
    """Within the block, `pipe` runs with the Lab's CPU offload (nothing happens without one); after it, the
    hooks are gone and every model's weights are ordinary CPU tensors again."""
    mode = getattr(lab, "offload", None)
    if mode is None:
        yield
        return
    from .quiet import quiet_libraries

    with quiet_libraries():
        if mode == "model":
            pipe.enable_model_cpu_offload(device=lab.device)
        else:
            pipe.enable_sequential_cpu_offload(device=lab.device)
    try:
        yield
    finally:
        pipe.remove_all_hooks()  # sequential offload's hooks put each weight back on the CPU as they go
        for module in pipe.components.values():
            if hasattr(module, "parameters") and any(True for _ in module.parameters()):
                module.to("cpu")
