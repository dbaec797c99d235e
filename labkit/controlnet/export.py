"""A diffusers ControlNetModel's weights in the original ControlNet layout (`control_model.input_blocks...`,
`zero_convs`, `input_hint_block`, `middle_block_out`): the layout of lllyasviel's files and A1111's folder.
diffusers reads this layout (`convert_controlnet_checkpoint`) but has no writer."""

from ..export import apply_plan, encoder_plan

PREFIX = "control_model."


def controlnet_plan(controlnet) -> dict:
    """{diffusers module: (original module, renames)}: the UNet encoder's plan plus ControlNet's own parts."""
    plan = encoder_plan(controlnet)
    embedding = controlnet.controlnet_cond_embedding
    plan["controlnet_cond_embedding.conv_in"] = ("input_hint_block.0", {})  # each conv is followed by a SiLU
    for k in range(len(embedding.blocks)):
        plan[f"controlnet_cond_embedding.blocks.{k}"] = (f"input_hint_block.{2 * k + 2}", {})
    plan["controlnet_cond_embedding.conv_out"] = (f"input_hint_block.{2 * len(embedding.blocks) + 2}", {})
    for i in range(len(controlnet.controlnet_down_blocks)):
        plan[f"controlnet_down_blocks.{i}"] = (f"zero_convs.{i}.0", {})
    plan["controlnet_mid_block"] = ("middle_block_out.0", {})
    return plan


def controlnet_to_ldm(controlnet, prefix: str = PREFIX) -> dict:
    """{original key: tensor} of a ControlNetModel, under `prefix` ("" for the prefix-less files some hosts ship)."""
    renamed = apply_plan(controlnet.state_dict(), controlnet_plan(controlnet), "ControlNet")
    return {prefix + key: tensor for key, tensor in renamed.items()}
