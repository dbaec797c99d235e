"""ControlNet units in recipes: A1111's `ControlNet N` lines written and read back field by field, the
extension's own example lines read, older forms kept aside with a note, and `reproduce` restoring the units whose
model it finds (and saying which it could not)."""

import numpy as np
import pytest
from PIL import Image

import labkit
from labkit.controlnet.infotext import unit_text
from labkit.recipes.writer import infotext
from tests.helpers.controlnets import make_controlnet, save_original

# the extension's current format (its tests' hashes), and its 1.1.4xx dataclass format
CURRENT = ('a house\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x768, '
           'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: Crop '
           'and Resize, Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance '
           'End: 1.0, Pixel Perfect: False, Control Mode: Balanced", ControlNet 1: "Module: none, Model: '
           'control_v11f1p_sd15_depth [cfd03158], Weight: 0.6, Resize Mode: Just Resize, Processor Res: 512, '
           'Threshold A: 0.5, Threshold B: 0.5, Guidance Start: 0.0, Guidance End: 0.8, Pixel Perfect: True, '
           'Control Mode: ControlNet is more important", Version: v1.10.1')
DATACLASS = ('a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ControlNet 0: "Module: '
             'openpose_full, Model: control_v11p_sd15_openpose [cab727d4], Weight: 1, Resize Mode: Crop and Resize, '
             'Low Vram: False, Processor Res: 512, Threshold A: 0.5, Threshold B: 0.5, Guidance Start: 0, Guidance '
             'End: 1, Pixel Perfect: True, Control Mode: Balanced, Hr Option: Both, Save Detected Map: True", '
             'Version: v1.6.0')
LEGACY = ('a dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ControlNet Enabled: True, '
          'ControlNet Module: canny, ControlNet Model: control_sd15_canny [fef5e48e], ControlNet Weight: 1, '
          'ControlNet Guidance Strength: 1')


def test_the_extensions_own_lines_are_read_field_by_field():
    units = labkit.read_params(CURRENT).control
    assert units[0] == labkit.ControlUnit("control_v11p_sd15_canny [d14c016b]", module="canny", threshold_a=100.0,
                                          threshold_b=200.0)
    assert units[1] == labkit.ControlUnit("control_v11f1p_sd15_depth [cfd03158]", weight=0.6, guidance_end=0.8,
                                          resize_mode="Just Resize", pixel_perfect=True,
                                          control_mode="ControlNet is more important")


def test_written_lines_are_the_extensions_format_and_read_back_equal():
    units = labkit.read_params(CURRENT).control
    p = labkit.Params(prompt="a house", steps=20, seed=1, width=512, height=768, control=units)
    text = infotext(p)
    assert ('ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: '
            'Crop and Resize, Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, '
            'Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced"') in text
    assert labkit.read_params(text).control == units


def test_older_forms_and_model_preprocessors_are_kept_aside_with_a_note():
    recipe = labkit.read_recipe(DATACLASS)
    assert recipe.params.control[0].module == "none" and recipe.unmapped["ControlNet 0 module"] == "openpose_full"
    assert any("Low Vram, Hr Option, Save Detected Map read and not used" in n for n in recipe.notes)
    legacy = labkit.read_recipe(LEGACY)
    assert legacy.params.control == () and legacy.unmapped["ControlNet Module"] == "canny"
    assert any("older format" in n for n in legacy.notes)


def test_a_unit_of_a_module_without_sliders_writes_the_hidden_default():
    assert "Threshold A: 0.5, Threshold B: 0.5" in unit_text(labkit.ControlUnit("x", module="invert"))


@pytest.fixture()
def lab_with_controlnet(sd_lab, tmp_path):
    folder = tmp_path / "models" / "ControlNet"
    folder.mkdir(parents=True)
    save_original(make_controlnet(sd_lab, seed=3, scale=0.2), folder / "mine.safetensors")
    sd_lab.controlnets.search_paths, sd_lab.controlnets.loaded = [folder], {}
    return sd_lab


def edges():
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[16:48, 20] = 255
    return Image.fromarray(rgb)


def test_a_saved_picture_reproduces_with_its_unit(lab_with_controlnet, tmp_path):
    lab = lab_with_controlnet
    r = lab.txt2img("a circle", steps=4, seed=3, control=labkit.ControlUnit("mine", image=edges(), weight=0.8))
    path = r.save(tmp_path / "out.png")
    assert labkit.read_params(path) == r.params  # the round trip, units included
    again = lab.reproduce(path, control_images=[edges()])
    assert np.array_equal(np.asarray(again.image), np.asarray(r.image))
    assert any("ControlNet 0: mine" in line for line in again.report.controls)
    without = lab.reproduce(path)
    assert "ControlNet 0" in without.report.differs and "not in the recipe" in without.report.differs["ControlNet 0"]


def test_reproduce_says_which_unit_it_could_not_restore(lab_with_controlnet):
    text = CURRENT.replace("Size: 512x768", "Size: 64x64")
    r = lab_with_controlnet.reproduce(text, control_images=[edges(), edges()], noise="a1111-cpu")
    assert "control_v11p_sd15_canny" in r.report.differs["ControlNet 0"]
    assert r.params.control == ()
