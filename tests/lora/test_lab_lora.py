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


def comfy_graph_with_lora(lora_name: str, model: float, clip: float) -> dict:
    """A ComfyUI API graph: checkpoint -> LoraLoader -> KSampler (Euler / normal, 3 steps)."""
    text = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "a red circle"}}
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "toy.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": lora_name,
                                                      "strength_model": model, "strength_clip": clip}},
        "3": text, "4": {**text, "inputs": {**text["inputs"], "text": ""}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 4, "steps": 3, "cfg": 5,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0]}},
    }


def test_reproduce_applies_a_comfyui_graphs_lora_with_its_model_and_clip_strengths(lab, tmp_path):
    write(tmp_path / "style.safetensors", kohya_modules(lab, "kohya"), lora_parts)
    lab.loras.search_paths = [tmp_path]
    r = lab.reproduce(comfy_graph_with_lora("style.safetensors", 0.8, 0.5))
    assert [(x.name, x.weight, x.te_weight) for x in r.model.loras] == [("style", 0.8, 0.5)]
    assert r.params.prompt == "a red circle <lora:style:0.5:0.8>" and "prompt" in r.report.honoured
    assert r.report.loras == ["style found by name, applied as <lora:style:0.5:0.8>"]
    same = lab.txt2img("a red circle <lora:style:0.5:0.8>", steps=3, cfg=5, sampler="Euler", schedule="Normal",
                       seed=4, noise="comfy")
    assert np.array_equal(px(same.image), px(r.image))


def test_reproduce_finds_a_recipes_lora_by_hash_under_another_name(lab, tmp_path):
    path = write(tmp_path / "renamed_v2.safetensors", kohya_modules(lab, "kohya"), lora_parts)
    lab.loras.search_paths = [tmp_path]
    text = ("a red circle <lora:style:0.7>\nSteps: 3, Sampler: Euler, CFG scale: 5, Seed: 4, Size: 64x64, "
            f"Lora hashes: \"style: {labkit.hashes.autov3(path)}\", RNG: CPU")
    r = lab.reproduce(text)
    assert [(x.name, x.weight) for x in r.model.loras] == [("style", 0.7)] and "prompt" in r.report.honoured
    assert r.report.loras == ["style found by hash as renamed_v2.safetensors, applied as tagged"]


def test_reproduce_without_the_recipes_lora_says_so_and_draws_without_it(lab, tmp_path):
    lab.loras.search_paths = [tmp_path]
    text = ("a red circle <lora:gone:0.7>\nSteps: 3, Sampler: Euler, CFG scale: 5, Seed: 4, Size: 64x64, "
            "Lora hashes: \"gone: 0123456789ab\", RNG: CPU")
    r = lab.reproduce(text)
    assert r.model.loras == () and "lora gone" in r.report.differs and "prompt" not in r.report.honoured
    assert "0123456789ab" in r.report.differs["lora gone"] and r.params.prompt == "a red circle"
    assert "<lora:gone:0.7>" in r.report.differs["prompt"]
    assert "precision" in r.report.differs  # an A1111 recipe does not say whether it ran in half precision
