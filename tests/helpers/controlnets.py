"""Tiny real ControlNets for tests: copies of a toy UNet's encoder (diffusers' ControlNetModel.from_unet) whose
zero convolutions get small seeded random weights (trained ones are not zero either), written in the layouts
users meet: the original (`control_model.*`, or without that prefix), diffusers' single file, a diffusers folder."""

EMBEDDING = (16, 16, 32, 32)  # the hint encoder of labkit's toy ControlNets: 64 px -> 8 latent px


def make_controlnet(lab, seed: int = 0, scale: float = 0.05):
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(lab.components["unet"], conditioning_embedding_out_channels=EMBEDDING)
    for zero in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                 controlnet.controlnet_cond_embedding.conv_out]:
        torch.nn.init.normal_(zero.weight, std=scale)
    return controlnet.eval().requires_grad_(False)


def save_original(controlnet, path, prefix: str = "control_model.", metadata=None):
    from labkit.controlnet.export import controlnet_to_ldm
    from labkit.files import save_safetensors

    tensors = {k: v.contiguous() for k, v in controlnet_to_ldm(controlnet, prefix).items()}
    return save_safetensors(tensors, path, metadata=metadata)


def save_diffusers_file(controlnet, path):
    from labkit.files import save_safetensors

    return save_safetensors({k: v.contiguous() for k, v in controlnet.state_dict().items()}, path)


def save_folder(controlnet, folder):
    controlnet.save_pretrained(folder, safe_serialization=True)
    return folder
