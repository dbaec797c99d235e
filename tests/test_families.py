"""The family table agrees with the shipped config folders, which hold each architecture."""

import json

import pytest

from labkit import UnsupportedFile, families


def _config(family, part):
    return json.loads((family.config / part / "config.json").read_text())


@pytest.mark.parametrize("name", families.names())
def test_record_matches_its_configs(name):
    family = families.family(name)
    unet, vae = _config(family, "unet"), _config(family, "vae")
    assert unet["cross_attention_dim"] == family.context_width
    assert vae["latent_channels"] == family.latent_channels == unet["out_channels"]
    assert 2 ** (len(vae["block_out_channels"]) - 1) == family.vae_scale
    assert unet["sample_size"] * family.vae_scale == family.native_size_for("v_prediction")
    widths = tuple(_config(family, te)["hidden_size"] for te in family.text_encoders)
    assert widths == family.text_widths and len(family.pad_tokens) == len(widths)
    present = sorted(p.name for p in family.config.iterdir() if p.name.startswith("text_encoder"))
    assert present == sorted(family.text_encoders)
    slots = [slot.component for slot in family.checkpoint_layout.slots]
    assert slots == list(family.text_encoders)  # the single file holds exactly the pipeline's text encoders
    assert family.checkpoint_layout.xl_unet == ("addition_embed_type" in unet)
    index = json.loads((family.config / "model_index.json").read_text())
    assert getattr(__import__("diffusers"), index["_class_name"]).__name__ in family.pipeline_layout.pipelines.values()


def test_refiners_are_families_that_share_the_latent_space():
    for family in families.FAMILIES.values():
        for name in family.refiners:
            refiner = families.family(name)
            assert refiner.latent_channels == family.latent_channels and refiner.embedded == family.embedded


def test_unknown_family_names_the_known_ones():
    with pytest.raises(UnsupportedFile, match="sd1, sd2, sdxl"):
        families.family("flux")
