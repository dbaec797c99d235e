"""lab.controlnets.load, ControlUnit and ControlNet units in a generation: refused before any work."""

import numpy as np
from PIL import Image

import labkit
from labkit import UnsafeFile, UnsupportedFile

from . import refuses, works
from .env import FAST

LOAD, UNIT, T2I = "lab.controlnets", "ControlUnit", "Lab.txt2img"


def load(name):
    return lambda env: env.lab.controlnets.load(env.path(name) if "." in name else name)


def unit(**kwargs):
    return lambda env: labkit.ControlUnit(**{"model": "edges", **kwargs})


def edges(size=64):
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[size // 4: 3 * size // 4, size // 2] = 255
    return Image.fromarray(rgb)


def t2i(**kwargs):
    return lambda env: env.lab.txt2img("a red circle", control=labkit.ControlUnit(**{"model": "edges",
                                                                                     **kwargs}), **FAST)


def _fitted(r, env):
    assert r.control_maps[0].size == (64, 64) and any("96x128 fitted to 64x64 (Resize and Fill)" in n
                                                        for n in r.notes)


def _gray(r, env):
    assert r.control_maps[0].mode == "RGB" and r.params.control[0].model.startswith("edges [")


CASES = [
    refuses(LOAD, "lab.controlnets.load('missing.safetensors')", load("missing.safetensors"),
            "No such ControlNet file", UnsupportedFile),
    refuses(LOAD, "lab.controlnets.load('control_sd15.pth'): a pickle", load("control_sd15.pth"), "pickled",
            UnsafeFile),
    refuses(LOAD, "lab.controlnets.load(<an SDXL ControlNet>) on an SD1-layout Lab", load("xl_controlnet.safetensors"),
            "ControlNet for labkit toy-xl.*this Lab runs labkit toy", UnsupportedFile),
    refuses(LOAD, "lab.controlnets.load(<a Control-LoRA>)", load("control_lora.safetensors"),
            "Control-LoRA.*full ControlNets", UnsupportedFile),
    refuses(LOAD, "lab.controlnets.load(<a checkpoint>)", load("toy.safetensors"), "not a ControlNet.*checkpoint",
            UnsupportedFile),
    refuses(LOAD, "lab.controlnets.load('edgse'): an unknown name", load("edgse"),
            "No ControlNet named 'edgse'.*Did you mean 'edges'"),
    refuses(UNIT, "ControlUnit(module='cany')", unit(module="cany"), "Did you mean 'canny'"),
    refuses(UNIT, "ControlUnit(module='openpose')", unit(module="openpose"), "not one of.*'canny'"),
    refuses(UNIT, "ControlUnit(control_mode='ControlNet more important')",
            unit(control_mode="ControlNet more important"), "Did you mean 'ControlNet is more important'"),
    refuses(UNIT, "ControlUnit(resize_mode='Crop')", unit(resize_mode="Crop"), "'Just Resize', 'Crop and Resize'"),
    refuses(UNIT, "ControlUnit(weight=3)", unit(weight=3), r"outside \[0, 2\]"),
    refuses(UNIT, "ControlUnit(guidance_end=1.5)", unit(guidance_end=1.5), r"outside \[0, 1\]"),
    refuses(UNIT, "ControlUnit(guidance_start=0.8, guidance_end=0.2)", unit(guidance_start=0.8, guidance_end=0.2),
            "start must be at most end"),
    refuses(UNIT, "ControlUnit(processor_res=10)", unit(processor_res=10), r"outside \[64, 4096\]"),
    refuses(UNIT, "ControlUnit(): no model", lambda env: labkit.ControlUnit(), "needs a model"),
    refuses("Params", "Params(control='canny')", lambda env: labkit.Params(control="canny"),
            "control takes ControlUnit"),
    refuses(T2I, "lab.txt2img(..., control=ControlUnit('edges')): no picture", t2i(), "has no picture"),
    refuses(T2I, "lab.txt2img(..., control=ControlUnit('edges', image=<a white picture>))",
            t2i(image=Image.new("RGB", (64, 64), "white")), "one flat color"),
    refuses(T2I, "lab.txt2img(..., control=ControlUnit('edges', image='edges.png')): a path",
            t2i(image="edges.png"), r"PIL.Image.open\(path\)"),
    refuses(T2I, "lab.txt2img(..., control=ControlUnit('nowhere', image=...)): not on the search paths",
            t2i(model="nowhere", image=edges()), "No ControlNet named 'nowhere'"),
    works(T2I, "lab.txt2img(..., control=ControlUnit('edges', image=<96x128>, resize_mode='Resize and Fill'))",
          t2i(image=edges(128).resize((96, 128)), resize_mode="Resize and Fill"), _fitted,
          "the control map is fitted to the generation size by the unit's resize mode, as A1111 does; the notes "
          "say so"),
    works(T2I, "lab.txt2img(..., control=ControlUnit('edges', image=<a gray 'L' picture>))",
          t2i(image=edges().convert("L")), _gray, "any picture mode is converted to RGB first"),
]
