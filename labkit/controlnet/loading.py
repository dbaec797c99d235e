"""Read one ControlNet into a diffusers ControlNetModel, offline: its config is derived from the Lab family's
shipped UNet config and the file's own tensor shapes (so SDXL's full, mid and small variants all fit), the
original layout is converted with diffusers' own converter, and a ControlNet of another family is refused."""

import json
from pathlib import Path

from ..errors import UnsupportedFile
from . import files

# ControlNetModel.__init__ arguments that come from the family's UNet config as they are
UNET_FIELDS = ("in_channels", "flip_sin_to_cos", "freq_shift", "layers_per_block", "downsample_padding",
               "mid_block_scale_factor", "act_fn", "norm_num_groups", "norm_eps", "attention_head_dim",
               "num_attention_heads", "use_linear_projection", "class_embed_type", "addition_embed_type",
               "addition_time_embed_dim", "num_class_embeds", "upcast_attention", "resnet_time_scale_shift",
               "projection_class_embeddings_input_dim", "only_cross_attention", "encoder_hid_dim",
               "encoder_hid_dim_type")


def read(path, family: str):
    """(diffusers-layout state dict, the file's layout: "original" or "diffusers") of a ControlNet file for a Lab
    of `family`."""
    from ..detect import inspect
    from ..families import FAMILIES
    from ..header import read_header, read_tensors

    path = Path(path)
    info = inspect(path)  # UnsafeFile for pickles, UnsupportedFile for broken files

    keys = [k.removeprefix(files.ORIGINAL_PREFIX) for k in read_header(path)[0]]
    other = files.other_format(keys) if info.kind in ("controlnet", "unknown") else None
    if other is not None:
        raise UnsupportedFile(f"{path.name} is {other[0]}. {other[1]}")
    if info.kind != "controlnet":
        raise UnsupportedFile(f"{path.name} is not a ControlNet: labkit reads it as a {info.kind} file. Load "
                              f"ControlNets with lab.controlnets.load, checkpoints with labkit.open, LoRAs with "
                              f"lab.loras.load.")
    check_family(path.name, info.family, family)
    state = {k.removeprefix(files.ORIGINAL_PREFIX): v for k, v in read_tensors(path).items()}
    if "input_hint_block.0.weight" in state:  # the original layout
        return from_original(state, FAMILIES[family].config), "original"
    return state, "diffusers"


def check_family(name: str, found: str | None, family: str) -> None:
    """A ControlNet runs only beside the UNet family it was trained for; say both families otherwise."""
    from ..families import FAMILIES

    def display(f):
        return FAMILIES[f].display if f in FAMILIES else f

    if found is None:
        raise UnsupportedFile(f"{name}: labkit cannot tell which model family this ControlNet is for (no cross-"
                              f"attention weights it knows). It needs a {display(family)} ControlNet.")
    if found != family:
        raise UnsupportedFile(f"{name} is a ControlNet for {display(found)}, but this Lab runs {display(family)}: "
                              f"a ControlNet only works beside the model family it was trained with. Use a "
                              f"{display(family)} ControlNet, or open a {display(found)} checkpoint.")


def from_original(state: dict, config_folder: Path) -> dict:
    """The original layout (input_blocks, zero_convs, input_hint_block...) in diffusers' names, through diffusers'
    converter; SDXL's `label_emb` (which that converter skips) mapped here."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    unet = json.loads((config_folder / "unet" / "config.json").read_text())
    converted = convert_controlnet_checkpoint(state, unet)
    for ldm, diffusers in (("label_emb.0.0", "add_embedding.linear_1"), ("label_emb.0.2", "add_embedding.linear_2")):
        for end in ("weight", "bias"):
            if f"{ldm}.{end}" in state:
                converted[f"{diffusers}.{end}"] = state[f"{ldm}.{end}"]
    return converted


def config_for(state: dict, config_folder: Path) -> dict:
    """ControlNetModel's config: the family's UNet config, with what the tensors show (block widths and types,
    transformer depth per block, the hint encoder's channels, the projection kind) read from their shapes."""
    unet = json.loads((config_folder / "unet" / "config.json").read_text())
    config = {k: unet[k] for k in UNET_FIELDS if k in unet}
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("down_blocks.")})
    config["block_out_channels"] = [state[f"down_blocks.{b}.resnets.0.conv1.weight"].shape[0] for b in blocks]
    attends = [any(k.startswith(f"down_blocks.{b}.attentions.") for k in state) for b in blocks]
    config["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attends]
    depth = [len({k.split(".")[5] for k in state if k.startswith(f"down_blocks.{b}.attentions.0.transformer_blocks.")})
             for b in blocks]  # 0 for SDXL's "small" ControlNets' emptied blocks
    mid_attends = any(k.startswith("mid_block.attentions.") for k in state)
    mid_depth = len({k.split(".")[4] for k in state if k.startswith("mid_block.attentions.0.transformer_blocks.")})
    config["transformer_layers_per_block"] = [d if a else 1 for d, a in zip(depth[:-1], attends)] + [
        depth[-1] if attends[-1] else mid_depth]  # the middle block takes the last entry
    config["mid_block_type"] = "UNetMidBlock2DCrossAttn" if mid_attends else "UNetMidBlock2D"
    to_k = next((v for k, v in sorted(state.items()) if k.endswith("attn2.to_k.weight")), None)
    if to_k is not None:
        config["cross_attention_dim"] = to_k.shape[1]
    proj = next((v for k, v in sorted(state.items()) if k.endswith(".proj_in.weight")), None)
    if proj is not None:
        config["use_linear_projection"] = proj.ndim == 2
    embedding = state["controlnet_cond_embedding.conv_in.weight"]  # (C0, conditioning channels, 3, 3)
    hint = [embedding.shape[0]]
    k = 1
    while f"controlnet_cond_embedding.blocks.{k}.weight" in state:
        hint.append(state[f"controlnet_cond_embedding.blocks.{k}.weight"].shape[0])
        k += 2
    config["conditioning_embedding_out_channels"] = hint
    config["conditioning_channels"] = embedding.shape[1]
    config["in_channels"] = state["conv_in.weight"].shape[1]
    return config


def build(state: dict, config_folder: Path, name: str, *, device="cpu", dtype="float32"):
    """A ControlNetModel holding `state` exactly (every tensor used, none missing), on `device` in `dtype`."""
    import torch
    from diffusers import ControlNetModel

    config = config_for(state, config_folder)
    with torch.device("meta"):
        model = ControlNetModel.from_config(config)
    wanted = getattr(torch, dtype)
    try:  # the tensors cast first, then assigned: no second copy, and diffusers' cast warning never fires
        model.load_state_dict({k: v.to(device=device, dtype=wanted) for k, v in state.items()}, strict=True,
                              assign=True)
    except RuntimeError as error:
        raise UnsupportedFile(f"{name}: its tensors do not fit a ControlNet of this family's layout "
                              f"({str(error).splitlines()[0]}). The file may be truncated or of a layout labkit "
                              f"does not read.") from None
    return model.eval().requires_grad_(False)


def load_folder(folder: Path, family: str, *, device="cpu", dtype="float32"):
    """A diffusers ControlNet folder (config.json + safetensors weights), checked against `family`."""
    import torch
    from diffusers import ControlNetModel

    if not any(folder.glob("*.safetensors")):
        raise UnsupportedFile(f"{folder} holds no .safetensors weights (pickled .bin weights can run code when "
                              f"loaded): convert them to .safetensors with a tool you trust.")
    model = ControlNetModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    from ..detect import CONTROLNET_FAMILIES

    check_family(folder.name, CONTROLNET_FAMILIES.get(model.config.cross_attention_dim), family)
    return model.to(device=device, dtype=getattr(torch, dtype)).eval().requires_grad_(False)
