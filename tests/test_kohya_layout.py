"""labkit's single-file writer gives the same key names and shapes as kohya-ss/sd-scripts' writer, full size.

An independent check of labkit.export against a second implementation: tests/fixtures/kohya_layout/{sd1,sdxl}.json
hold {key: shape} of the files kohya's own `save_stable_diffusion_checkpoint` writes for full-size SD 1.5 and SDXL
(made by make.py beside them from the same labkit/configs; provenance in README.md there). Here labkit's components
are built from those configs on the meta device: names and shapes only, no weight is allocated.
"""

import json
from pathlib import Path

import pytest
import torch

from labkit import export
from labkit.families import family as family_record

FIXTURES = Path(__file__).parent / "fixtures" / "kohya_layout"

# Keys kohya writes in only some cases and labkit never writes, each with the reason. The fixtures record kohya's
# output for a model that came from a diffusers folder; these are what kohya adds when it came from a single file.
# test_allowed_differences_are_exactly_these checks the fixtures list exactly these, so none is allowed silently.
ALLOWED_EXTRA_IN_KOHYA = {
    "sd1": {},
    "sdxl": {
        "conditioner.embedders.1.model.logit_scale": (
            "OpenCLIP's contrastive-loss temperature, a 0-d scalar no text encoder uses: diffusers' "
            "CLIPTextModelWithProjection has no such weight, so kohya only copies it over from a source single file "
            "(logit_scale=None when training started from diffusers)."),
    },
}


def meta_components(layout):
    """Full-size unet, vae and text encoder(s) of `layout`'s family, built from labkit's configs on the meta device."""
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel

    record = family_record(layout)
    folder = record.config
    with torch.device("meta"):
        components = {
            "unet": UNet2DConditionModel.from_config(json.loads((folder / "unet" / "config.json").read_text())),
            "vae": AutoencoderKL.from_config(json.loads((folder / "vae" / "config.json").read_text())),
        }
        for sub in record.text_encoders:
            config = transformers.CLIPTextConfig.from_pretrained(folder / sub)
            components[sub] = getattr(transformers, config.architectures[0])(config)
    return components


def kohya(layout):
    return json.loads((FIXTURES / f"{layout}.json").read_text())


@pytest.mark.parametrize("layout, n_keys", [("sd1", 1130), ("sdxl", 2513)])
def test_keys_and_shapes_match_kohya(layout, n_keys):
    fixture = kohya(layout)
    assert fixture["source"].startswith("kohya-ss/sd-scripts@")
    theirs = {key: tuple(shape) for key, shape in fixture["keys"].items()}
    assert len(theirs) == n_keys

    sources = export.all_sources(meta_components(layout), layout)
    ours = {key: tuple(export.file_shape(group)) for key, group in sources.items()}
    built = {key: tuple(export.assemble(group).shape) for key, group in sources.items()}  # what to_single_file makes
    assert built == ours, sorted(key for key in ours if built[key] != ours[key])[:20]

    only_kohya = sorted(set(theirs) - set(ours))
    only_labkit = sorted(set(ours) - set(theirs))
    wrong_shape = sorted(key for key in set(ours) & set(theirs) if ours[key] != theirs[key])
    assert not (only_kohya or only_labkit or wrong_shape), (
        f"{layout}: labkit's single file differs from kohya's ({fixture['source']}):\n"
        f"  only in kohya ({len(only_kohya)}): {only_kohya[:20]}\n"
        f"  only in labkit ({len(only_labkit)}): {only_labkit[:20]}\n"
        f"  other shape ({len(wrong_shape)}): {[(k, ours[k], theirs[k]) for k in wrong_shape[:20]]}")


@pytest.mark.parametrize("layout", ["sd1", "sdxl"])
def test_allowed_differences_are_exactly_these(layout):
    """The keys kohya may add beyond the fixture are exactly the named non-weights, and labkit writes none of them."""
    extra = kohya(layout).get("extra_keys_when_source_is_single_file", {})
    assert set(extra) == set(ALLOWED_EXTRA_IN_KOHYA[layout])
    assert all(shape == [] for shape in extra.values())  # scalars, not weights of any layer
    assert not set(extra) & set(kohya(layout)["keys"])
