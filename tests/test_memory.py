"""Memory plans (labkit.memory, labkit.limits): what a Lab holds, decodes planned to fit, checks before a file
loads, and offload explained where it cannot help."""

from types import SimpleNamespace

import numpy as np
import pytest

import labkit
from labkit import BadInput, Limits, TooLarge
from labkit.limits import decode_memory, decode_plan, estimate


def px(image):
    return np.asarray(image, dtype=np.int16)


def test_memory_reports_every_model_and_the_lora_copies(tmp_path):
    from tests.helpers.lora_files import kohya_modules, lora_parts, write

    lab = labkit.open("toy")
    report = lab.memory()
    assert {m.name for m in report.models} == {"unet", "vae", "text_encoder"}
    assert sum(m.bytes for m in report.models) == lab.weight_bytes
    assert {(m.device, m.dtype) for m in report.models} == {("cpu", "float32")}
    assert report.process > lab.weight_bytes and report.lora_copies == 0
    lab.loras.load(write(tmp_path / "l.safetensors", kohya_modules(lab, "lora"), lora_parts))
    lab.loras.apply()
    report = lab.memory()
    assert report.lora_copies == 0 and report.lora_from_file > 0  # read back from the file, no copies
    lab.loras.unfuse()
    lab.weight_files = None  # as a diffusers folder's Lab has it
    lab.loras.apply()  # now every changed weight is copied
    copies = lab.memory().lora_copies
    assert copies > 0 and copies == lab.loras.copies_bytes
    assert "LoRA copies" in str(lab.memory()) and "text_encoder" in str(lab.memory())


def full_size_sdxl(memory_gb, dtype="float32"):
    """What the planner reads of a Lab: full-size SDXL's weights (13.6 GiB in float32) on a machine's CPU."""
    weights = 13.6 * 2**30 * (1 if dtype == "float32" else 0.5)
    return SimpleNamespace(family="sdxl", dtype=dtype, device="cpu", weight_bytes=weights, offload=None,
                           limits=Limits(max_memory_gb=memory_gb), vae_scale=8, components={})


def test_a_2048_sdxl_decode_is_tiled_to_fit_a_24_gb_machine_and_whole_on_a_bigger_one():
    lab = full_size_sdxl(24)
    plan, need = decode_plan(lab, 2048, 2048, 1)
    assert plan == "tiled" and lab.weight_bytes + need < 24 * 2**30
    assert decode_memory(lab, 2048, 2048, 1) > 15 * 2**30  # a whole decode: about 17 GiB
    assert decode_plan(lab, 1024, 1024, 1)[0] == "whole"
    assert decode_plan(lab, 1024, 1024, 4)[0] == "sliced"  # four at once do not fit; one at a time does
    assert decode_plan(full_size_sdxl(64), 2048, 2048, 1)[0] == "whole"
    assert decode_plan(full_size_sdxl(24, "bfloat16"), 1024, 1024, 4)[0] == "whole"


def test_the_estimate_names_the_decode_plan():
    found = estimate(full_size_sdxl(24), labkit.Params(width=2048, height=2048, steps=1, sampler="Euler"))
    assert found.decode_plan == "tiled" and "VAE decode tiled" in str(found)
    assert found.memory == found.weights + max(found.activations, found.decode)


def limit_for(lab, extra_bytes):
    return Limits(max_memory_gb=(lab.weight_bytes + extra_bytes) / 2**30)


def test_a_batch_whose_decode_does_not_fit_is_decoded_one_picture_at_a_time():
    lab = labkit.open("toy")
    settings = {"steps": 2, "seed": 5, "batch_size": 3, "sampler": "Euler"}
    whole = lab.txt2img("a red circle", **settings)
    assert estimate(lab, whole.params).decode_plan == "whole" and not any("VAE decoded" in n for n in whole.notes)
    lab.limits = limit_for(lab, decode_memory(lab, 64, 64, 2))  # one picture's decode fits, three do not
    sliced = lab.txt2img("a red circle", **settings)
    assert any("one picture at a time" in n for n in sliced.notes)
    assert len(sliced.images) == 3
    for a, b in zip(whole.images, sliced.images):
        assert np.abs(px(a) - px(b)).max() <= 1


def test_a_picture_whose_decode_does_not_fit_is_decoded_in_tiles():
    from labkit.images import decode_latents, to_pictures
    from labkit.limits import TILE_PX

    lab = labkit.open("toy")
    side = TILE_PX + 128  # bigger than a tile
    p = lab.params(prompt="a red circle", steps=1, seed=2, width=side, height=side, sampler="Euler")
    room = max(estimate(lab, p).activations, decode_memory(lab, side, side, 1, "tiled")) * 1.01
    assert room < decode_memory(lab, side, side, 1)  # the UNet and a tile fit, the whole decode does not
    lab.limits = limit_for(lab, room)
    assert estimate(lab, p).decode_plan == "tiled"
    r = lab.txt2img(params=p)
    assert any("in tiles of" in n for n in r.notes) and r.image.size == (side, side)
    whole = to_pictures(decode_latents(lab.components["vae"], r.latents))[0]
    # tiles see their own group-norm statistics and attention context: the same picture, a few levels apart
    assert np.abs(px(whole) - px(r.image)).mean() < 6
    assert np.corrcoef(px(whole).ravel(), px(r.image).ravel())[0, 1] > 0.95
    assert lab.components["vae"].use_tiling is False  # the VAE as it was


def test_offload_on_the_cpu_is_explained_and_unknown_modes_are_refused():
    with pytest.raises(BadInput, match="nothing to offload.*dtype='bfloat16'"):
        labkit.open("toy", offload="model")
    with pytest.raises(BadInput, match="use 'model'.*'sequential'"):
        labkit.open("toy", offload="gpu")


def test_a_file_that_cannot_fit_is_refused_before_it_loads_with_what_would_fit(tmp_path):
    path = labkit.open("toy").save_single_file(tmp_path / "m.safetensors")
    with pytest.raises(TooLarge, match=r"cannot be opened as asked: loading needs about .* this machine has .*"
                                       r"dtype='bfloat16' halves it.*limits=None"):
        labkit.open(path, limits=Limits(max_memory_gb=1e-4))
    lab = labkit.open(path, limits=None)  # no checks at all, for this Lab's runs either
    assert lab.limits is None and lab.txt2img("a red circle", steps=1, seed=1).image.size == (64, 64)
    with pytest.raises(BadInput, match="labkit.Limits"):
        labkit.open(path, limits=24)
