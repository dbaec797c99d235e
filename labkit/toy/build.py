"""Fresh (randomly initialised, seeded) components of any family, built from labkit's shipped configs.

Training starts from these; tests use them as tiny real components (the toy families are tiny).
"""

import json

from ..families import family as family_record


def fresh_components(family: str, seed: int = 0, in_channels: int | None = None) -> dict:
    """{unet, vae, text_encoder(s), tokenizer(s), scheduler} of `family` with seeded random weights."""
    import torch
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from ..loading import default_scheduler
    from ..tokenizers import tokenizer

    record = family_record(family)
    folder = record.config
    torch.manual_seed(seed)
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    if in_channels:
        unet_config["in_channels"] = in_channels
    components = {
        "unet": UNet2DConditionModel.from_config(unet_config),
        "vae": AutoencoderKL.from_config(json.loads((folder / "vae" / "config.json").read_text())),
        "scheduler": default_scheduler(family),
        "text_encoder": None,
        "tokenizer": None,
    }
    toks = tokenizer(family)
    toks = toks if isinstance(toks, tuple) else (toks,)
    for sub, tok in zip(record.text_encoders, toks):
        config = transformers.CLIPTextConfig.from_pretrained(folder / sub)
        cls = getattr(transformers, config.architectures[0])
        components[sub] = cls(config)
        components["tokenizer" + sub.removeprefix("text_encoder")] = tok
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if components.get(name) is not None:
            components[name].eval()
    return components
