"""Loading ControlNets: the original layout (with and without `control_model.`), diffusers' single file and
folder give the same weights; SDXL-layout ones load beside an SDXL Lab; another family, pickles, Control-LoRAs,
union models and T2I-Adapters are refused with the reason; labkit.inspect names the kind and family."""

import pytest
import torch

import labkit
from labkit.controlnet.infotext import unit_text
from tests.helpers.controlnets import make_controlnet, save_diffusers_file, save_folder, save_original


@pytest.fixture(scope="module")
def reference(sd_lab):
    return make_controlnet(sd_lab, seed=1)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)


@pytest.mark.parametrize("layout", ["original", "original-no-prefix", "diffusers-file", "folder"])
def test_every_layout_loads_the_same_weights(sd_lab, reference, tmp_path, layout):
    if layout == "folder":
        source = save_folder(reference, tmp_path / "cn-folder")
    elif layout == "diffusers-file":
        source = save_diffusers_file(reference, tmp_path / "cn.safetensors")
    else:
        source = save_original(reference, tmp_path / "cn.safetensors",
                               prefix="control_model." if layout == "original" else "")
    info = sd_lab.controlnets.load(source, name=f"cn-{layout}")
    model, _ = sd_lab.controlnets.loaded[info.name]
    assert same_weights(model, reference)
    expected = {"original-no-prefix": "original", "diffusers-file": "diffusers"}.get(layout, layout)
    assert info.family == "toy" and info.layout == expected


def test_inspect_names_kind_and_family_from_the_header(sd_lab, xl_lab, reference, tmp_path):
    path = save_original(reference, tmp_path / "sd.safetensors")
    info = labkit.inspect(path)
    assert (info.kind, info.family) == ("controlnet", "toy")
    xl = save_diffusers_file(make_controlnet(xl_lab), tmp_path / "xl.safetensors")
    assert (labkit.inspect(xl).kind, labkit.inspect(xl).family) == ("controlnet", "toy-xl")


def test_an_sdxl_layout_controlnet_loads_beside_an_sdxl_lab(xl_lab, tmp_path):
    reference = make_controlnet(xl_lab, seed=2)
    path = save_diffusers_file(reference, tmp_path / "xl.safetensors")
    info = xl_lab.controlnets.load(path)
    assert same_weights(xl_lab.controlnets.loaded[info.name][0], reference)
    original = save_original(reference, tmp_path / "xl-original.safetensors")  # label_emb mapped too
    info = xl_lab.controlnets.load(original, name="xl-original")
    assert same_weights(xl_lab.controlnets.loaded[info.name][0], reference)


def test_a_controlnet_of_another_family_is_refused_naming_both(sd_lab, xl_lab, tmp_path):
    path = save_diffusers_file(make_controlnet(xl_lab), tmp_path / "xl.safetensors")
    with pytest.raises(labkit.UnsupportedFile, match=r"(?s)for labkit toy-xl.*runs labkit toy|toy-xl.*toy"):
        sd_lab.controlnets.load(path)
    assert "xl" not in sd_lab.controlnets.loaded


def test_pickled_and_missing_files_are_refused(sd_lab, tmp_path):
    pickled = tmp_path / "control_sd15_canny.pth"
    torch.save({"a": torch.zeros(1)}, pickled)
    with pytest.raises(labkit.UnsafeFile, match="pickled"):
        sd_lab.controlnets.load(pickled)
    with pytest.raises(labkit.UnsupportedFile, match="No such ControlNet file"):
        sd_lab.controlnets.load(tmp_path / "missing.safetensors")
    with pytest.raises(labkit.BadInput, match="No ControlNet named 'nothing-like-it'"):
        sd_lab.controlnets.load("nothing-like-it")


@pytest.mark.parametrize("keys, what", [
    ({"lora_controlnet": [1], "input_hint_block.0.weight": [16, 3, 3, 3],
      "input_blocks.1.0.in_layers.2.down": [8, 32, 3, 3]}, "Control-LoRA"),
    ({"controlnet_cond_embedding.conv_in.weight": [16, 3, 3, 3], "task_embedding": [8, 32],
      "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": [32, 64]}, "union model"),
    ({"adapter.body.0.resnets.0.block1.weight": [32, 32, 3, 3], "adapter.conv_in.weight": [32, 192, 3, 3]},
     "T2I-Adapter"),
])
def test_formats_that_are_not_plain_controlnets_are_recognised_and_explained(sd_lab, tmp_path, keys, what):
    from labkit.files import save_safetensors

    path = save_safetensors({k: torch.zeros(s) for k, s in keys.items()}, tmp_path / "other.safetensors")
    with pytest.raises(labkit.UnsupportedFile, match=what):
        sd_lab.controlnets.load(path)


def test_a_checkpoint_given_as_a_controlnet_says_what_it_is(sd_lab, tmp_path):
    path = sd_lab.save_single_file(tmp_path / "model.safetensors")
    with pytest.raises(labkit.UnsupportedFile, match="not a ControlNet.*checkpoint"):
        sd_lab.controlnets.load(path)


def test_names_on_the_search_paths_and_a1111s_title(sd_lab, reference, tmp_path):
    folder = tmp_path / "models" / "ControlNet"
    folder.mkdir(parents=True)
    path = save_original(reference, folder / "my_canny.safetensors")
    sd_lab.controlnets.search_paths = [folder]
    assert sd_lab.controlnets.names() == ["my_canny"]
    info = sd_lab.controlnets.load("my_canny")
    assert info.title == f"my_canny [{labkit.hashes.autov1(path)}]"  # A1111's legacy 8-digit model hash
    renamed = path.rename(folder / "renamed.safetensors")
    sd_lab.controlnets.loaded.clear()
    found = sd_lab.controlnets.load(f"my_canny [{info.hash}]")  # a recipe's title: found by A1111's hash
    assert found.path == renamed
    assert f"Model: renamed [{info.hash}]" in unit_text(labkit.ControlUnit(found.title))  # its name here


@pytest.mark.parametrize("family, overrides", [("sd1", {}), ("sd2", {}), ("sdxl", {}),
                                               ("sdxl", {"transformer_layers_per_block": [1, 2, 2]})])
def test_full_size_configs_are_read_back_from_the_shapes(family, overrides):
    """SD 1.x / 2.x / SDXL ControlNets as diffusers builds them (and an SDXL one with shallower blocks, as its
    "mid" ControlNets are): the config labkit derives from the family and the shapes rebuilds every tensor."""
    import json

    from diffusers import ControlNetModel, UNet2DConditionModel

    from labkit.controlnet.loading import config_for
    from labkit.families import FAMILIES

    folder = FAMILIES[family].config
    unet_config = {**json.loads((folder / "unet" / "config.json").read_text()), **overrides}
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
        original = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
        shapes = {k: v.shape for k, v in original.state_dict().items()}
        rebuilt = ControlNetModel.from_config(config_for(original.state_dict(), folder))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
