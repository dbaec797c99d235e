"""Forward pre-hooks on a UNet that adapt what the pipelines hand it (the ControlNet hook lives in
`labkit.controlnet.hook`)."""


def cast_conditioning(unet, args, kwargs):
    """UNet forward pre-hook: text conditioning (encoder_hidden_states, SDXL's pooled text_embeds) in the UNet's
    dtype, whatever dtype the text encoders ran in."""
    hidden = kwargs.get("encoder_hidden_states")
    if hidden is not None and hidden.dtype != unet.dtype:
        kwargs["encoder_hidden_states"] = hidden.to(unet.dtype)
    added = kwargs.get("added_cond_kwargs")
    if added and "text_embeds" in added and added["text_embeds"].dtype != unet.dtype:
        kwargs["added_cond_kwargs"] = {**added, "text_embeds": added["text_embeds"].to(unet.dtype)}
    return args, kwargs
