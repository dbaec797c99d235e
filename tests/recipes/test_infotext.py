"""labkit.recipes.infotext and the writer's infotext: A1111's field order and quoting, compared with hand-written
strings, and read back by the A1111 parser."""

from labkit.params import Params
from labkit.recipes import infotext, parse_a1111
from labkit.recipes.containers import software

VERSION = software()  # "labkit x.y.z"


# ---- writing: A1111 field order and quoting, compared with hand-written strings ------------------------------
def test_infotext_txt2img_matches_a1111_layout():
    p = Params(prompt="a red circle, (blue:1.2)", negative_prompt="blurry", steps=20, cfg=7.0, sampler="DPM++ 2M",
               schedule="Karras", seed=42, width=512, height=768, noise="a1111-cpu")
    text = infotext(p, {"name": "v1-5-pruned-emaonly", "hash": "6ce0161689"})
    assert text == ("a red circle, (blue:1.2)\n"
                    "Negative prompt: blurry\n"
                    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, "
                    f"Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, RNG: CPU, Version: {VERSION}")


def test_infotext_inpaint_with_every_field_in_order_and_quoted():
    p = Params(prompt="a star\non two lines", negative_prompt="", steps=30, cfg=6.5, sampler="DDIM",
               schedule="Automatic", seed=7, width=64, height=64, strength=0.5, mask_blur=8, only_masked=True,
               padding=16, switch_at=0.7, clip_skip=2, eta=0.25, noise="a1111-gpu", model="ignored", emphasis="Ignore")
    model = {"name": "my model, v2: final", "hash": "0123456789", "refiner": "xl-refiner", "refiner_hash": "abcdef0123"}
    extra = {"loras": [{"name": "outline", "weight": 0.8, "hash": "0123456789ab"}, ("star", 1.0, "ba9876543210")]}
    text = infotext(p, model, mode="inpaint", extra=extra)
    assert text == ("a star\non two lines\n"
                    "Steps: 30, Sampler: DDIM, Schedule type: Automatic, CFG scale: 6.5, Seed: 7, Size: 64x64, "
                    'Model hash: 0123456789, Model: "my model, v2: final", Denoising strength: 0.5, Clip skip: 2, '
                    "Refiner: xl-refiner [abcdef0123], Refiner switch at: 0.7, Mask blur: 8, "
                    "Inpaint area: Only masked, "
                    'Masked area padding: 16, Lora hashes: "outline: 0123456789ab, star: ba9876543210", '
                    f"Emphasis: Ignore, Eta DDIM: 0.25, Version: {VERSION}")


def test_infotext_mode_decides_the_mode_fields():
    p = Params(prompt="x", seed=1, width=64, height=64, strength=0.4, noise="comfy", sampler="Euler a", eta=1.0)
    txt = infotext(p, mode="txt2img")
    img = infotext(p, mode="img2img")
    assert "Denoising strength" not in txt and "Mask blur" not in txt
    assert "Denoising strength: 0.4" in img and "Mask blur" not in img
    assert "RNG: CPU" in txt and "Eta: 1," in txt  # comfy noise: CPU draws; k-diffusion samplers write "Eta"


def test_written_infotext_reads_back_through_the_a1111_parser():
    p = Params(prompt="line one\nline two, (x:1.1)", negative_prompt="bad\nworse", steps=12, cfg=5.5,
               sampler="DPM++ 2M SDE", schedule="Exponential", seed=99, width=64, height=128, clip_skip=2)
    r = parse_a1111(infotext(p, {"name": "toy: v1", "hash": "aaaaaaaaaa"}))
    assert r.tool == "labkit" and r.version == VERSION
    assert r.params == p.replace(model="toy: v1", noise="a1111-cpu")
    assert r.model["hash"] == "aaaaaaaaaa" and not r.unmapped


def test_sgm_noise_multiplier_is_written_only_when_on_and_read_back():
    from labkit import Params
    from labkit.recipes import infotext, parse_a1111

    on = Params(prompt="a cat", seed=1, width=64, height=64, sgm_noise_multiplier=True)
    assert "SGM noise multiplier: True" in infotext(on)
    assert "SGM noise multiplier" not in infotext(on.replace(sgm_noise_multiplier=False))  # A1111: absent = off
    assert parse_a1111(infotext(on)).params.sgm_noise_multiplier is True
    text = "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, SGM noise multiplier: True"
    assert parse_a1111(text).params.sgm_noise_multiplier is True
    assert parse_a1111(text.replace(", SGM noise multiplier: True", "")).params.sgm_noise_multiplier is False
    odd = parse_a1111(text.replace("True", "maybe"))
    assert odd.params.sgm_noise_multiplier is False and odd.unmapped["SGM noise multiplier"] == "maybe"
