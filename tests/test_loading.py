"""open(): single files written by save_single_file, diffusers folders, VAE swap, embeddings, pickles, errors."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import labkit
from labkit import BadInput, UnsafeFile, UnsupportedFile

FAST = {"steps": 3, "sampler": "Euler", "seed": 5}


def px(image):
    return np.asarray(image, dtype=np.float64)


@pytest.fixture(scope="module")
def sd_file(sd_lab, tmp_path_factory):
    return sd_lab.save_single_file(tmp_path_factory.mktemp("ckpt") / "toy-random.safetensors")


def test_single_file_round_trip_gives_the_same_pictures(sd_lab, sd_file):
    info = labkit.inspect(sd_file)
    assert (info.kind, info.family, info.variant) == ("checkpoint", "toy", None)
    lab = labkit.open(sd_file)
    assert (lab.family, lab.name, type(lab.pipe).__name__) == ("toy", "toy-random", "StableDiffusionPipeline")
    assert np.array_equal(px(lab.txt2img("a red circle", **FAST).image), px(sd_lab.txt2img("a red circle", **FAST).image))
    r = lab.txt2img("x", **FAST)
    assert r.model.hash == info.short_hash and len(r.model.hash) == 10


@pytest.mark.parametrize("fixture, mode", [("xl_lab", "txt2img"), ("refiner_lab", "img2img"),
                                           ("inpaint_lab", "txt2img")])
def test_every_layout_round_trips(request, fixture, mode, tmp_path):
    original = request.getfixturevalue(fixture)
    path = original.save_single_file(tmp_path / f"{fixture}.safetensors")
    info = labkit.inspect(path)
    assert (info.family, info.variant) == (original.family, original.variant)
    lab = labkit.open(path)
    assert (lab.family, lab.variant) == (original.family, original.variant)
    if mode == "txt2img":
        a, b = lab.txt2img("a blue star", **FAST).image, original.txt2img("a blue star", **FAST).image
    else:
        from PIL import Image

        init = Image.new("RGB", (64, 64), (30, 80, 200))
        a = lab.img2img(init, "a blue star", strength=0.5, **FAST).image
        b = original.img2img(init, "a blue star", strength=0.5, **FAST).image
    assert np.array_equal(px(a), px(b))


def test_refiner_from_files_hands_off(xl_lab, refiner_lab, tmp_path):
    base = labkit.open(xl_lab.save_single_file(tmp_path / "xl.safetensors"))
    refiner = labkit.open(refiner_lab.save_single_file(tmp_path / "ref.safetensors"))
    r = base.txt2img("a star", refiner=refiner, switch_at=0.5, **FAST)
    assert r.stages == {"base": "xl", "refiner": "ref"}


def test_diffusers_folder(sd_lab, tmp_path):
    sd_lab.pipe.save_pretrained(tmp_path / "folder")
    lab = labkit.open(tmp_path / "folder")
    assert (lab.family, lab.name) == ("toy", "folder")
    assert np.array_equal(px(lab.txt2img("a red circle", **FAST).image),
                          px(sd_lab.txt2img("a red circle", **FAST).image))


def test_vae_swap(sd_lab, sd_file, tmp_path):
    from labkit.export import vae_to_ldm

    vae = sd_lab.components["vae"]
    state = {k: v.clone() for k, v in vae_to_ldm(vae).items()}
    state["first_stage_model.decoder.conv_out.bias"] += 0.3  # a visibly different decoder
    save_file({k.removeprefix("first_stage_model."): v.contiguous() for k, v in state.items()},
              tmp_path / "vae.safetensors")
    assert labkit.inspect(tmp_path / "vae.safetensors").kind == "vae"
    lab = labkit.open(sd_file, vae=tmp_path / "vae.safetensors")
    plain = labkit.open(sd_file)
    assert torch.allclose(lab.components["vae"].decoder.conv_out.bias, vae.decoder.conv_out.bias + 0.3)
    assert px(lab.txt2img("x", **FAST).image).mean() > px(plain.txt2img("x", **FAST).image).mean() + 5


def test_pickles_are_refused_unless_allowed(sd_file, tmp_path):
    from safetensors.torch import load_file

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(str(sd_file))}, ckpt)
    with pytest.raises(UnsafeFile, match="allow_pickle=True"):
        labkit.open(ckpt)
    lab = labkit.open(ckpt, allow_pickle=True)
    assert lab.family == "toy"
    assert np.array_equal(px(lab.txt2img("x", **FAST).image), px(labkit.open(sd_file).txt2img("x", **FAST).image))


def test_pickled_code_is_not_run(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": Boom()}, ckpt)
    with pytest.raises(UnsafeFile, match="weights_only"):
        labkit.open(ckpt, allow_pickle=True)


def test_textual_inversion_sd_and_sdxl(sd_lab, xl_lab, tmp_path):
    from labkit.lab import Lab
    from labkit.toy.build import fresh_components

    lab = Lab(fresh_components("toy"), "toy")  # a private Lab: embeddings change the tokenizer
    torch.manual_seed(0)
    save_file({"emb_params": torch.randn(2, 64)}, tmp_path / "emb.safetensors")
    before = lab.txt2img("a <shiny> circle", **FAST).image
    assert lab.load_embedding(tmp_path / "emb.safetensors", "<shiny>") == ["<shiny>", "<shiny>_1"]
    ids = lab.components["tokenizer"].convert_tokens_to_ids(["<shiny>", "<shiny>_1"])
    table = lab.components["text_encoder"].get_input_embeddings().weight
    assert ids == [49408, 49409]
    from safetensors.torch import load_file

    assert torch.allclose(table[ids], load_file(str(tmp_path / "emb.safetensors"))["emb_params"])
    assert np.abs(px(lab.txt2img("a <shiny> circle", **FAST).image) - px(before)).mean() > 0.5

    xl = Lab(fresh_components("toy-xl"), "toy-xl")
    save_file({"clip_l": torch.randn(1, 64), "clip_g": torch.randn(1, 96)}, tmp_path / "xl.safetensors")
    assert xl.load_embedding(tmp_path / "xl.safetensors", "<x>") == ["<x>"]
    assert xl.components["tokenizer_2"].convert_tokens_to_ids("<x>") == 49408
    with pytest.raises(BadInput, match="does not fit"):
        lab.load_embedding(tmp_path / "xl.safetensors", "<y>")


@pytest.mark.parametrize("make, error, match", [
    (lambda d: d / "nope.safetensors", UnsupportedFile, "no such file"),
    (lambda d: (d / "junk.safetensors").write_bytes(b"hello world, not safetensors") and d / "junk.safetensors",
     UnsupportedFile, "safetensors"),
    (lambda d: d / "toy-does-not-exist", UnsupportedFile, "no such file"),
])
def test_bad_paths(tmp_path, make, error, match):
    with pytest.raises(error, match=match):
        labkit.open(make(tmp_path))


def test_truncated_file(sd_file, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(sd_file.read_bytes()[:5000])
    with pytest.raises(UnsupportedFile):
        labkit.open(cut)


def test_unknown_model_name_lists_the_embedded_ones():
    with pytest.raises(UnsupportedFile, match="labkit.models()"):
        labkit.open("toy-galaxy")


def test_lora_file_is_not_a_checkpoint(tmp_path):
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4)},
              tmp_path / "style.safetensors")
    with pytest.raises(UnsupportedFile, match="lab.loras.load"):
        labkit.open(tmp_path / "style.safetensors")


def test_unknown_family(sd_file, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(sd_file))
    key = next(k for k in state if k.endswith("attn2.to_k.weight"))
    state[key] = torch.zeros(state[key].shape[0], 300)  # a context width no family has
    save_file(state, tmp_path / "odd.safetensors")
    with pytest.raises(UnsupportedFile, match="unknown model family"):
        labkit.open(tmp_path / "odd.safetensors")


def test_bad_dtype(sd_file):
    with pytest.raises(BadInput, match="float16"):
        labkit.open(sd_file, dtype="float8")


def test_save_single_file_never_overwrites(sd_lab, sd_file):
    before = sd_file.read_bytes()
    with pytest.raises(BadInput, match="overwrite=True"):
        sd_lab.save_single_file(sd_file)
    assert sd_file.read_bytes() == before


def test_prediction_override(sd_file):
    lab = labkit.open(sd_file, prediction="v_prediction")
    assert lab.components["scheduler"].config.prediction_type == "v_prediction"
    assert labkit.open(sd_file).components["scheduler"].config.prediction_type == "epsilon"
    with pytest.raises(BadInput, match="v_prediction"):
        labkit.open(sd_file, prediction="x0")


def test_open_can_run_the_text_encoder_in_half_precision_as_comfyui_does():
    import torch

    lab = labkit.open("toy", text_encoder_dtype="float16")
    assert lab.components["text_encoder"].dtype == torch.float16 and lab.components["unet"].dtype == torch.float32
    assert lab.text_encoder_dtype == "float16" and lab.txt2img("a red circle", steps=2, seed=1).latents.isfinite().all()
    with pytest.raises(labkit.BadInput, match="float16"):
        labkit.open("toy", text_encoder_dtype="half-ish")
