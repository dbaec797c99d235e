"""LoRAs through the Lab: prompt tags, manager toggles, what results and saved recipes record, refiner stages."""

import numpy as np
import pytest

import labkit
from labkit import BadInput, LoraMismatch
from tests.helpers.labs import make_lab
from tests.helpers.lora_files import kohya_modules, lora_parts, write

FAST = {"steps": 3, "sampler": "Euler", "seed": 4}


def px(image):
    return np.asarray(image, dtype=np.float64)


@pytest.fixture
def lab():
    return make_lab("toy", seed=5)


def test_prompt_tag_applies_a_lora_from_the_search_path(lab, tmp_path):
    write(tmp_path / "style.safetensors", kohya_modules(lab, "kohya"), lora_parts)
    lab.loras.search_paths = [tmp_path]
    plain = lab.txt2img("a red circle", **FAST)
    tagged = lab.txt2img("a red circle <lora:style:1>", **FAST)
    assert np.abs(px(plain.image) - px(tagged.image)).mean() > 0.5
    record = tagged.model.loras[0]
    assert (record.name, record.weight, record.stage) == ("style", 1.0, "base")
    assert record.hash == labkit.hashes.autov3(tmp_path / "style.safetensors")
    again = lab.txt2img("a red circle", **FAST)  # a tag lasts one call
    assert np.array_equal(px(again.image), px(plain.image)) and again.model.loras == ()
    with pytest.raises(BadInput, match=str(tmp_path)):
        lab.txt2img("a red circle <lora:missing:1>", **FAST)


def test_loaded_lora_is_written_into_the_recipe_and_reproduces(lab, tmp_path):
    path = write(tmp_path / "ink.safetensors", kohya_modules(lab, "kohya"), lora_parts)
    lab.loras.load(path, weight=0.7)
    r = lab.txt2img("a blue star", **FAST)
    assert r.params.prompt == "a blue star <lora:ink:0.7>"
    saved = r.save(tmp_path / "out.png")
    text = saved.read_bytes()
    assert b"Lora hashes" in text and labkit.hashes.autov3(path).encode() in text
    assert labkit.read_params(saved) == r.params
    lab.loras.disable("ink")
    assert np.array_equal(px(lab.reproduce(saved).image), px(r.image))  # the tag brings the LoRA back


def test_base_loras_do_not_reach_the_refiner(tmp_path):
    xl, refiner = make_lab("toy-xl", seed=5), make_lab("toy-xl-refiner", seed=5)
    path = write(tmp_path / "xlstyle.safetensors", kohya_modules(xl, "kohya"), lora_parts)
    xl.loras.load(path)
    r = xl.txt2img("a star", refiner=refiner, switch_at=0.5, **FAST)
    assert [(rec.name, rec.stage) for rec in r.model.loras] == [("xlstyle", "base")]
    assert any("base only" in n for n in r.notes)
    with pytest.raises(LoraMismatch, match="refiner"):
        xl.txt2img("a star", refiner=refiner, refiner_loras=[path], **FAST)


def test_save_single_file_writes_the_models_own_weights(lab, tmp_path):
    path = write(tmp_path / "w.safetensors", kohya_modules(lab, "kohya"), lora_parts)
    before = lab.txt2img("x", **FAST).image
    lab.loras.load(path)
    lab.txt2img("x", **FAST)  # folds the LoRA into the weights
    reopened = labkit.open(lab.save_single_file(tmp_path / "m.safetensors"))
    assert np.array_equal(px(reopened.txt2img("x", **FAST).image), px(before))
