"""The layers of a Lab a LoRA can patch, keyed by every flat name a LoRA file may use for them.

UNet layers answer to their diffusers path (kohya SD1/SD2 files) and their LDM/SGM path (kohya SDXL files,
ComfyUI); the LDM names come from the single-file writer's own plan (labkit.export), so there is one table of
UNet names in labkit, not two. Text-encoder layers answer to `text_model.<path>` whether or not the model nests
a `text_model` (transformers >= 5.6 flattened CLIPTextModel; CLIPTextModelWithProjection still nests it).
"""

import re
from dataclasses import dataclass

from ..families import LAYOUTS
from .formats import flat, text_path

# LDM UNet path -> block label (A1111's LoRA Block Weight names); anything else is "BASE"
UNET_BLOCKS = ((re.compile(r"^input_blocks\.(\d+)\."), "IN{:02d}"),
               (re.compile(r"^middle_block\."), "M00"),
               (re.compile(r"^output_blocks\.(\d+)\."), "OUT{:02d}"))


@dataclass(eq=False)
class Target:
    """One patchable layer: the component it lives in, its module path there, the module, and its block label."""

    component: str
    path: str
    module: object
    block: str

    @property
    def weight(self):
        return self.module.weight


def ldm_paths(unet) -> dict:
    """{diffusers module path: LDM/SGM module path} for every UNet module that holds parameters."""
    from ..export import apply_plan, unet_plan

    names = {key: key for key in unet.state_dict()}  # the plan renames keys; carry each key as its own value
    ldm = apply_plan(names, unet_plan(unet), "UNet")  # {LDM key: diffusers key}
    return {d.rsplit(".", 1)[0]: key.rsplit(".", 1)[0] for key, d in ldm.items()}


def unet_block(ldm_path: str) -> str:
    for pattern, label in UNET_BLOCKS:
        found = pattern.match(ldm_path + ".")
        if found:
            return label.format(*(int(g) for g in found.groups()))
    return "BASE"


def _patchable(model):
    """(path, module) for every Linear and Conv2d layer: the layers LoRA formats patch."""
    import torch

    return [(path, m) for path, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]


def unet_targets(unet) -> dict:
    ldm = ldm_paths(unet)
    table = {}
    for path, module in _patchable(unet):
        target = Target("unet", path, module, unet_block(ldm.get(path, "")))
        table[flat(path)] = target
        if path in ldm:
            table[flat(ldm[path])] = target
    return table


def text_targets(component: str, encoder, block: str) -> dict:
    return {flat(text_path(path)): Target(component, path, module, block) for path, module in _patchable(encoder)}


def target_table(lab) -> dict:
    """{component: {flat name: Target}} for the components of `lab` that LoRAs patch."""
    tables = {"unet": unet_targets(lab.components["unet"])}
    for component, block in LAYOUTS[lab.layout].text_blocks.items():
        model = lab.components.get(component)
        if model is not None:
            tables[component] = text_targets(component, model, block)
    return tables
