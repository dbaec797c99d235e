"""Hires fix in recipes: A1111's infotext from 1.6 to 1.10 read field by field (and Forge's Hires CFG Scale,
pre-1.0 "First pass size", pre-1.9 combined hires sampler names), written in A1111's order and format, and
round-tripped: read(write(p)) == p for every hires field."""

import pytest

from labkit import Params
from labkit.recipes import infotext, parse_a1111

V16 = ("a cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: 6ce0161689, "
       "Model: v1-5-pruned-emaonly, Denoising strength: 0.7, Hires upscale: 2, Hires upscaler: Latent, Version: v1.6.0")
V19 = ("a cat\nSteps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, "
       "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.35, Clip skip: 2, "
       "Hires upscale: 1.5, Hires steps: 12, Hires upscaler: R-ESRGAN 4x+, Version: v1.9.4")
V110 = ('a cat\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 7, Size: 832x1216, '
        'Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.4, Hires sampler: Euler a, '
        'Hires prompt: "masterpiece, detailed skin", Hires schedule type: Exponential, Hires resize: 1024x1536, '
        'Hires steps: 15, Hires upscaler: 4x-UltraSharp, Refiner: sd_xl_refiner_1.0 [7440042bbd], '
        'Refiner switch at: 0.8, Version: v1.10.1')
V17 = ("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.5, "
       "Hires upscale: 2, Hires sampler: DPM++ 2M Karras, Hires checkpoint: other_model [0123456789], "
       "Hires negative prompt: blurry, Hires upscaler: Latent (bicubic antialiased), Version: v1.7.0")
FORGE = ("a cat\nSteps: 20, Sampler: Euler, Schedule type: Automatic, CFG scale: 7, Seed: 1, Size: 512x512, "
         "Denoising strength: 0.45, Hires CFG Scale: 4.5, Hires upscale: 2, Hires upscaler: Lanczos, Version: f2.0.1")
OLD = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 1024x1024, Denoising strength: 0.7, " \
      "First pass size: 512x512"
HIRES = ("hires", "hires_scale", "hires_resize_x", "hires_resize_y", "hires_steps", "hires_upscaler", "hires_sampler",
         "hires_schedule", "hires_prompt", "hires_negative_prompt", "hires_cfg", "hires_checkpoint", "strength",
         "width", "height", "sampler", "schedule")


@pytest.mark.parametrize("text, want", [
    (V16, (True, 2.0, 0, 0, 0, "Latent", "", "", "", "", None, "", 0.7, 512, 768, "DPM++ 2M", "Karras")),
    (V19, (True, 1.5, 0, 0, 12, "R-ESRGAN 4x+", "", "", "", "", None, "", 0.35, 512, 768, "DPM++ 2M", "Karras")),
    (V110, (True, 2.0, 1024, 1536, 15, "4x-UltraSharp", "Euler a", "Exponential", "masterpiece, detailed skin", "",
            None, "", 0.4, 832, 1216, "DPM++ 2M", "Karras")),
    (V17, (True, 2.0, 0, 0, 0, "Latent (bicubic antialiased)", "DPM++ 2M", "Karras", "", "blurry", None,
           "other_model", 0.5, 512, 512, "Euler a", "Uniform")),  # "Automatic" as A1111 resolves it for Euler
    (FORGE, (True, 2.0, 0, 0, 0, "Lanczos", "", "", "", "", 4.5, "", 0.45, 512, 512, "Euler", "Uniform")),
    (OLD, (True, 2.0, 1024, 1024, 0, "Latent", "", "", "", "", None, "", 0.7, 512, 512, "Euler a", "Uniform")),
])
def test_a1111_hires_infotext_is_read_field_by_field(text, want):
    recipe = parse_a1111(text)
    assert recipe.mode == "txt2img"
    assert tuple(getattr(recipe.params, f) for f in HIRES) == want
    assert not any(key.startswith("Hires") or key == "Denoising strength" for key in recipe.unmapped)


def test_the_hires_checkpoint_keeps_its_hash_and_says_how_to_run_it():
    recipe = parse_a1111(V17)
    assert recipe.model["hires_checkpoint"] == "other_model" and recipe.model["hires_checkpoint_hash"] == "0123456789"
    assert any("hires_lab" in note for note in recipe.notes)


def test_hires_fields_are_written_in_a1111s_order_and_format():
    p = Params(prompt="a cat", steps=30, sampler="DPM++ 2M", schedule="Karras", cfg=6, seed=7, width=832, height=1216,
               strength=0.4, hires=True, hires_sampler="Euler a", hires_prompt="masterpiece, detailed skin",
               hires_schedule="Exponential", hires_resize_x=1024, hires_resize_y=1536, hires_steps=15,
               hires_upscaler="4x-UltraSharp")
    line = infotext(p, {"name": "sd_xl_base_1.0", "hash": "31e35c80fc"}).splitlines()[-1]
    assert ('Denoising strength: 0.4, RNG: CPU, Hires sampler: Euler a, Hires prompt: "masterpiece, detailed skin", '
            'Hires schedule type: Exponential, Hires resize: 1024x1536, Hires steps: 15, Hires upscaler: '
            '4x-UltraSharp, Version: labkit') in line
    plain = infotext(Params(prompt="a cat", seed=1, width=512, height=512, hires=True, hires_upscaler="Latent"))
    assert "Hires upscale: 2, Hires upscaler: Latent" in plain and "Hires steps" not in plain  # 0 is not written
    assert "Denoising strength" not in infotext(Params(prompt="a cat", seed=1))  # no hires: txt2img has none


@pytest.mark.parametrize("text", [V16, V19, V110, V17, FORGE])
def test_read_write_read_keeps_every_hires_field(text):
    first = parse_a1111(text).params
    again = parse_a1111(infotext(first)).params
    assert {f: getattr(again, f) for f in HIRES} == {f: getattr(first, f) for f in HIRES}


def test_hires_fields_on_img2img_are_not_written():
    p = Params(prompt="a cat", seed=1, hires=True, strength=0.5)
    assert "Hires" not in infotext(p, mode="img2img") and "Denoising strength: 0.5" in infotext(p, mode="img2img")


def comfy_hires_graph(upscale: dict, second: dict | None = None) -> dict:
    """ComfyUI's latent hires fix: KSampler -> LatentUpscaleBy / LatentUpscale -> KSampler (denoise < 1)."""
    first = {"seed": 42, "steps": 20, "cfg": 7, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1,
             "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}
    return {
        "3": {"class_type": "KSampler", "inputs": first},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "10": upscale,
        "11": {"class_type": "KSampler", "inputs": {**first, "denoise": 0.5, "steps": 12, "latent_image": ["10", 0],
                                                    **(second or {})}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


def test_comfyui_latent_upscale_passes_read_as_hires_fix():
    from labkit.recipes import parse_comfyui

    by = parse_comfyui(comfy_hires_graph({"class_type": "LatentUpscaleBy", "inputs": {
        "upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["3", 0]}}))
    p = by.params
    assert (p.hires, p.hires_scale, p.hires_upscaler, p.hires_steps, p.strength, p.steps, p.width, p.height) == (
        True, 1.5, "Latent (nearest-exact)", 12, 0.5, 20, 512, 768)
    assert not by.unmapped and p.hires_sampler == "" and p.hires_cfg is None
    to = parse_comfyui(comfy_hires_graph({"class_type": "LatentUpscale", "inputs": {
        "upscale_method": "bilinear", "width": 1024, "height": 1536, "crop": "disabled", "samples": ["3", 0]}},
        {"sampler_name": "euler_ancestral", "scheduler": "normal", "cfg": 5}))
    p = to.params
    assert (p.hires_resize_x, p.hires_resize_y, p.hires_upscaler, p.hires_sampler, p.hires_cfg) == (
        1024, 1536, "Latent", "Euler a", 5.0)
    other = parse_comfyui(comfy_hires_graph({"class_type": "LatentUpscaleBy", "inputs": {
        "upscale_method": "bislerp", "scale_by": 2, "samples": ["3", 0]}}))
    assert not other.params.hires and any(key.startswith("stage 2") for key in other.unmapped)  # no A1111 twin
