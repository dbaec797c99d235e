"""LoRA files as the tools that write them name modules (kohya / A1111 names, random rank-4 weights), written
here, not by labkit: tests of LoRA loading, grids, widgets and recipes share them."""

import torch
from safetensors.torch import save_file

from labkit.export import unet_to_ldm

RANK, ALPHA = 4, 2.0
TEXT = {"sd": {"text_encoder": "lora_te_"}, "xl": {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}}


def gen(seed):
    return torch.Generator().manual_seed(seed)


def rand(*shape, g, scale=0.1):
    return torch.randn(*shape, generator=g) * scale


def kohya_text(lab) -> list:
    """(kohya name, weight shape) of every Linear in the text encoders' layers (what kohya trains), named with
    `text_model_` whether or not the model nests it."""
    out = []
    for component, prefix in TEXT[lab.layout].items():
        for path, m in lab.components[component].named_modules():
            if isinstance(m, torch.nn.Linear) and "encoder.layers." in path:
                out.append((prefix + "text_model_" + path.removeprefix("text_model.").replace(".", "_"),
                            tuple(m.weight.shape)))
    return out


def kohya_unet_diffusers(lab, convs=False) -> list:
    """(kohya SD1 name, shape): diffusers module paths with underscores; Linear layers (and all convs)."""
    kinds = (torch.nn.Linear, torch.nn.Conv2d) if convs else (torch.nn.Linear,)
    return [("lora_unet_" + path.replace(".", "_"), tuple(m.weight.shape))
            for path, m in lab.components["unet"].named_modules() if isinstance(m, kinds) and "blocks" in path]


def kohya_unet_sgm(lab) -> list:
    """(kohya SDXL name, shape): LDM/SGM names of every transformer-block weight, read from labkit.export."""
    ldm = unet_to_ldm(lab.components["unet"])
    return [("lora_unet_" + key[len("model.diffusion_model."):-len(".weight")].replace(".", "_"), tuple(t.shape))
            for key, t in ldm.items() if "transformer_blocks" in key and key.endswith(".weight") and t.ndim == 2]


def lora_parts(shape, g):
    """kohya LoRA / LoCon: down (r, in[, kh, kw]), up (out, r[, 1, 1])."""
    tail = (1, 1) if len(shape) == 4 else ()
    return {".lora_down.weight": rand(RANK, *shape[1:], g=g), ".lora_up.weight": rand(shape[0], RANK, *tail, g=g),
            ".alpha": torch.tensor(ALPHA)}


def write(path, modules, parts, seed=0, metadata=None):
    g, state = gen(seed), {}
    for name, shape in modules:
        state.update({name + suffix: t for suffix, t in parts(shape, g).items()})
    save_file(state, str(path), metadata=metadata)
    return path


def kohya_modules(lab, fmt) -> list:
    if lab.layout == "xl":
        return kohya_unet_sgm(lab) + kohya_text(lab)
    return kohya_unet_diffusers(lab, convs=fmt == "locon") + kohya_text(lab)


def sd1_sized_lora(path):
    """A tiny file with SD 1.x widths (CLIP-L 768): its family is sd1 whatever model it is loaded into."""
    g = gen(1)
    save_file({"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": rand(4, 768, g=g),
               "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": rand(768, 4, g=g),
               "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight":
                   rand(4, 768, g=g),
               "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight":
                   rand(320, 4, g=g)}, str(path))
    return path
