"""The part files the stages write and read: which member is made of which parts, under which key prefixes.

Each part file holds A1111/LDM-layout tensors without their prefix, in float16 as they ship; a later stage
reads the earlier stages' parts back from these files, so training one stage later equals training `all`.
The prefixes come from the single-file layouts in `labkit.families`.
"""

import hashlib
import json
from pathlib import Path
from types import MappingProxyType

from ...families import FAMILIES, UNET_PREFIX, VAE_PREFIX


def text_prefix(family: str, component: str) -> str:
    """The key prefix of a text encoder's weights in `family`'s single-file layout."""
    slots = FAMILIES[family].checkpoint_layout.slots
    return next(slot.prefix for slot in slots if slot.component == component)


CLIP_L_SD1 = text_prefix("toy", "text_encoder")
CLIP_L_XL = text_prefix("toy-xl", "text_encoder")
CLIP_G_XL = text_prefix("toy-xl", "text_encoder_2")
CLIP_G_REFINER = text_prefix("toy-xl-refiner", "text_encoder_2")
VAE_PART = ("vae.safetensors", VAE_PREFIX)
ENCODER_KEYS = ("encoder.", "quant_conv.")  # the VAE part's encoder half: all that the UNet stages read of it
# member -> (family, variant, parts [(file, key prefix), ...]); each part file holds its keys without the prefix
MEMBERS = MappingProxyType({
    "toy": ("toy", None, (VAE_PART, ("clip_l.safetensors", CLIP_L_SD1), ("unet_toy.safetensors", UNET_PREFIX))),
    "toy-xl": ("toy-xl", None, (VAE_PART, ("clip_l.safetensors", CLIP_L_XL), ("clip_g.safetensors", CLIP_G_XL),
                                ("unet_toy_xl.safetensors", UNET_PREFIX))),
    "toy-xl-refiner": ("toy-xl-refiner", None, (VAE_PART, ("clip_g.safetensors", CLIP_G_REFINER),
                                                ("unet_toy_xl_refiner.safetensors", UNET_PREFIX))),
    "toy-inpaint": ("toy", "inpaint", (VAE_PART, ("clip_l.safetensors", CLIP_L_SD1),
                                       ("unet_toy_inpaint.safetensors", UNET_PREFIX))),
})

# stage -> the parts it reads (frozen or as a start); recorded by hash, so a member trained on parts that were
# retrained since is left out of the manifest instead of shipping mismatched pieces
STAGE_INPUTS = MappingProxyType({
    "vae-decoder": ("vae.safetensors",),
    "toy": ("vae.safetensors",),
    "toy-xl": ("vae.safetensors", "clip_l.safetensors"),
    "toy-xl-refiner": ("vae.safetensors", "clip_g.safetensors"),
    "toy-inpaint": ("vae.safetensors", "clip_l.safetensors", "unet_toy.safetensors"),
    "toy-controlnet": ("vae.safetensors", "clip_l.safetensors", "unet_toy.safetensors"),
    "toy-upscaler": ("vae.safetensors",),
})


def save_part(path, ldm, prefix):
    """Write LDM-layout tensors as a float16 part file, keys without `prefix`; atomic (temp file + rename)."""
    import torch

    from ...files import save_safetensors

    if not all(key.startswith(prefix) for key in ldm):
        raise ValueError(f"{path.name}: every key must start with {prefix!r}.")
    tensors = {key.removeprefix(prefix): t.detach().to("cpu", torch.float16).contiguous() for key, t in ldm.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(tensors, path)


def read_part(out, file, prefix):
    """A part file's tensors as float32, under their full LDM keys."""
    from safetensors.torch import load_file

    return {prefix + k: v.float() for k, v in load_file(str(Path(out) / file)).items()}


def load_vae_part(out, device):
    """The shipped (float16-rounded) VAE as float32."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_single_file(read_part(out, *VAE_PART), config=str(FAMILIES["toy"].config),
                                         subfolder="vae", local_files_only=True)
    return frozen(vae, device)


def load_text_encoder_part(out, family, sub, file, prefix, device):
    """A shipped text encoder (CLIP-L or G part) as float32, read by diffusers' single-file converter."""
    import transformers
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    folder = FAMILIES[family].config
    config = json.loads((folder / sub / "config.json").read_text())
    model = create_diffusers_clip_model_from_ldm(getattr(transformers, config["architectures"][0]),
                                                 read_part(out, file, prefix), subfolder=sub,
                                                 config=str(folder), local_files_only=True)
    return frozen(model.float(), device)


def load_unet_part(out, file, family, device):
    """A shipped UNet part as float32."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_single_file(read_part(out, file, UNET_PREFIX),
                                                 config=str(FAMILIES[family].config), subfolder="unet",
                                                 local_files_only=True)
    return frozen(unet, device)


def frozen(module, device):
    """`module` on `device`, in eval mode, without gradients: a part a stage reads but does not train."""
    module.to(device).eval().requires_grad_(False)
    return module


def member_hash(out, member):
    """First 10 hex digits of sha256 over the member's part files' bytes, in part order."""
    digest = hashlib.sha256()
    for file, _ in MEMBERS[member][2]:
        digest.update((Path(out) / file).read_bytes())
    return digest.hexdigest()[:10]
