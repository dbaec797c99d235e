"""lab.reproduce: regenerate from a file's recipe and report what was honoured and what differs."""

import numpy as np
import pytest
from PIL import Image

from labkit import BadInput

FAST = {"steps": 4, "sampler": "Euler"}
# A1111 recipes ask for GPU noise: without CUDA labkit warns (tested in test_lab) and the report says "differs: noise"
pytestmark = pytest.mark.filterwarnings("ignore:noise='a1111-gpu' needs a CUDA device:UserWarning")


def px(image):
    return np.asarray(image, dtype=np.float64)


def test_own_png_reproduces_exactly(sd_lab, tmp_path):
    r = sd_lab.txt2img("a (red:1.2) circle", negative_prompt="blurry", seed=21, cfg=5.0, schedule="Karras", **FAST)
    again = sd_lab.reproduce(r.save(tmp_path / "a.png"))
    assert np.array_equal(px(again.image), px(r.image))
    assert again.report.tool == "labkit" and not again.report.differs
    assert {"prompt", "seed", "sampler", "schedule", "cfg", "steps"} <= set(again.report.honoured)


def test_own_png_with_an_ancestral_sampler_reproduces_exactly(sd_lab, tmp_path):
    r = sd_lab.txt2img("a red circle", seed=9, steps=4, sampler="Euler a")
    again = sd_lab.reproduce(r.save(tmp_path / "a.png"))
    assert np.array_equal(np.asarray(again.image), np.asarray(r.image))
    assert not again.report.differs and "sampler" in again.report.honoured
    assert "strength" not in again.report.honoured and "switch_at" not in again.report.honoured  # unused here


def test_a1111_text_with_a_stochastic_sampler_says_it_cannot_match(sd_lab):
    text = ("a red circle\nNegative prompt: ugly\nSteps: 6, Sampler: DPM++ SDE, Schedule type: Karras, CFG scale: 2, "
            "Seed: 886204265, Size: 64x64, Model hash: 0123456789, Model: someModel, Version: v1.10.1")
    r = sd_lab.reproduce(text)
    assert (r.params.steps, r.params.cfg, r.params.seed, r.params.sampler) == (6, 2.0, 886204265, "DPM++ SDE")
    assert "bit for bit" in r.report.differs["sampler"]
    assert "0123456789" in r.report.differs["model"]
    assert "seed" in r.report.honoured and r.report.tool == "A1111"


def test_sampler_without_diffusers_equivalent(sd_lab):
    text = "a star\nSteps: 5, Sampler: DPM++ 2S a, CFG scale: 4, Seed: 1, Size: 64x64, Version: v1.10.1"
    with pytest.raises(BadInput, match="sampler="):
        sd_lab.reproduce(text)
    r = sd_lab.reproduce(text, sampler="Euler a")
    assert r.params.sampler == "Euler a" and r.image.size == (64, 64)


def test_img2img_recipe_needs_its_init_image(sd_lab, tmp_path):
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    r = sd_lab.img2img(init, "a red circle", strength=0.6, seed=2, **FAST)
    path = r.save(tmp_path / "i.png")
    with pytest.raises(BadInput, match="image="):
        sd_lab.reproduce(path)
    again = sd_lab.reproduce(path, image=init)
    assert np.array_equal(px(again.image), px(r.image)) and "strength" in again.report.honoured


def test_ignored_fields_are_listed(sd_lab):
    text = ("a circle\nSteps: 3, Sampler: Euler, CFG scale: 3, Seed: 4, Size: 64x64, Face restoration: CodeFormer, "
            "Tiling: True, Version: v1.10.1")
    report = sd_lab.reproduce(text).report
    assert {"Face restoration", "Tiling"} <= set(report.ignored) and "ignored: " in str(report)


def test_a1111_euler_a_reproduces_the_noise_stream_and_comfyui_euler_a_does_not(sd_lab):
    a1111 = ("a red circle\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 7, Size: 64x64, RNG: CPU, "
             "Version: v1.10.1")
    assert "sampler" not in sd_lab.reproduce(a1111).report.differs  # measured equal: docs/parity.md
    graph = {"1": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 4, "cfg": 5,
                                                        "sampler_name": "euler_ancestral", "scheduler": "normal"}}}
    assert "bit for bit" in sd_lab.reproduce(graph).report.differs["sampler"]


def test_cfg_below_one_and_inpaint_recipes_say_what_differs(sd_lab):
    low = "a red circle\nSteps: 4, Sampler: Euler, CFG scale: 0.5, Seed: 7, Size: 64x64, RNG: CPU"
    assert "extrapolates" in sd_lab.reproduce(low).report.differs["cfg"]
    inpaint = ("a red circle\nSteps: 4, Sampler: Euler, CFG scale: 5, Seed: 7, Size: 64x64, Denoising strength: 0.5, "
               "Mask blur: 4, RNG: CPU")
    image, mask = Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    assert "unmasked" in sd_lab.reproduce(inpaint, image=image, mask=mask).report.differs["inpaint"]
