"""labkit's shipped config folders build the real architectures (parameter counts of the public models)."""

import json

import pytest

from labkit.families import CONFIGS

# parameter counts of the public SD 1.5 / SD 2.x / SDXL base / SDXL refiner components
REAL_COUNTS = {
    ("sd1", "unet"): 859_520_964, ("sd1", "vae"): 83_653_863, ("sd1", "text_encoder"): 123_060_480,
    ("sd2", "unet"): 865_910_724, ("sd2", "text_encoder"): 340_387_840,
    ("sdxl", "unet"): 2_567_463_684, ("sdxl", "text_encoder"): 123_060_480, ("sdxl", "text_encoder_2"): 694_659_840,
    ("sdxl-refiner", "unet"): 2_259_526_660, ("sdxl-refiner", "text_encoder_2"): 694_659_840,
}


def _count(family, part):
    import transformers
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = CONFIGS / family / part
    with init_empty_weights():
        if part == "unet":
            model = UNet2DConditionModel.from_config(json.loads((folder / "config.json").read_text()))
        elif part == "vae":
            model = AutoencoderKL.from_config(json.loads((folder / "config.json").read_text()))
        else:
            config = transformers.CLIPTextConfig.from_pretrained(folder)
            model = getattr(transformers, config.architectures[0])(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family, part", sorted(REAL_COUNTS))
def test_full_size_configs_match_the_public_models(family, part):
    assert _count(family, part) == REAL_COUNTS[(family, part)]


@pytest.mark.parametrize("family", ["toy", "toy-xl", "toy-xl-refiner"])
def test_toy_families_are_tiny(family):
    total = sum(_count(family, p) for p in ("unet", "vae", "text_encoder", "text_encoder_2")
                if (CONFIGS / family / p).is_dir())
    assert total < 12_000_000
