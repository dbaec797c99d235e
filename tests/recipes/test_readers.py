"""labkit.recipes readers: every supported tool's format read back (A1111, Forge, Fooocus, ComfyUI, InvokeAI), the
sources read_recipe takes, and parsers that never fail with anything but LabkitError."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from labkit.errors import BadInput, LabkitError, UnsupportedFile
from labkit.params import Params
from labkit.recipes import (Recipe, parse_comfyui, parse_fooocus, parse_invokeai, parse_text, read_params,
                            read_recipe)


def png_with(tmp_path, name="in.png", **texts):
    """A small PNG carrying `texts` as tEXt chunks, as other tools write them."""
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    path = tmp_path / name
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, pnginfo=info)
    return path


# ---- reading A1111 and Forge ---------------------------------------------------------------------------------------
A1111_V110 = (
    "masterpiece, best quality, a cozy cabin in the woods, <lora:add_detail:0.6>\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 832x1216, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, VAE: vae-ft-mse-840000.safetensors, "
    'Clip skip: 2, Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "easynegative: c74b4e810b03", '
    "Emphasis: No norm, Sharpness: 2, Version: v1.10.1"
)


def test_a1111_current_version():
    r = parse_text(A1111_V110)
    p = r.params
    assert r.tool == "A1111" and r.version == "v1.10.1" and r.mode == "txt2img"
    assert (p.steps, p.sampler, p.schedule, p.cfg, p.seed) == (28, "DPM++ 2M", "Karras", 6.5, 1234567890)
    assert (p.width, p.height, p.clip_skip, p.noise, p.emphasis) == (832, 1216, 2, "a1111-gpu", "No norm")
    assert p.prompt.endswith("<lora:add_detail:0.6>") and p.negative_prompt == "lowres, bad anatomy"
    assert p.model == "v1-5-pruned-emaonly" and r.model["hash_type"] == "AutoV2"
    assert r.loras == [{"name": "add_detail", "weight": 0.6, "hash": "7c6bad76eb54"}]
    assert r.unmapped == {"VAE hash": "735e4c3a44", "VAE": "vae-ft-mse-840000.safetensors",
                          "TI hashes": "easynegative: c74b4e810b03", "Sharpness": "2"}


def test_a1111_before_1_9_combined_names():
    text = "a cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x512, Version: v1.7.0"
    p = parse_text(text).params
    assert (p.sampler, p.schedule) == ("DPM++ 2M", "Karras")


@pytest.mark.parametrize("version, schedule", [
    ("v1.8.0", "Uniform"),  # before 1.9, a bare "DPM++ SDE" had uniform sigmas
    (None, "Uniform"),  # no Version field at all: older still
    ("v1.9.4", "Karras"),  # since 1.9, no schedule means "Automatic": the sampler's default
    ("1.10.1", "Karras"),
    ("f2.0.1v1.10.1-previous-669-gdfdcbab6", "Karras"),  # Forge, on A1111 1.10
    ("f0.0.17v1.8.0rc-latest-276-g29be1da7", "Uniform"),  # an early Forge, on A1111 1.8
])
def test_dpmpp_sde_without_schedule_type_depends_on_version(version, schedule):
    text = "a cat\nSteps: 20, Sampler: DPM++ SDE, CFG scale: 7, Seed: 1, Size: 512x512"
    r = parse_text(text + (f", Version: {version}" if version else ""))
    assert (r.params.sampler, r.params.schedule) == ("DPM++ SDE", schedule)
    assert any("1.9" in note for note in r.notes) == (schedule == "Uniform")


def test_automatic_in_current_files_is_the_samplers_default():
    text = "x\nSteps: 20, Sampler: DPM++ 2M SDE, Schedule type: Automatic, CFG scale: 7, Seed: 1, Version: v1.10.1"
    assert parse_text(text).params.schedule == "Exponential"


def test_a1111_before_1_6_legacy_hash_and_no_version():
    text = ("girl with an artist's beret, determined, blue eyes\n"
            "Negative prompt: ugly, fat\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b")
    r = parse_text(text)
    assert r.version is None and r.tool == "A1111"
    assert r.model == {"hash": "45dee52b", "hash_type": "AutoV1"} and r.params.model == ""
    assert any("autov1" in note for note in r.notes)
    assert (r.params.sampler, r.params.schedule, r.params.seed) == ("Euler a", "Uniform", 965400086)


def test_forge_is_recognised_and_its_extra_fields_kept():
    text = ("a lighthouse\nSteps: 25, Sampler: Euler a, Schedule type: Automatic, CFG scale: 5, Seed: 7, "
            "Size: 1024x1024, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Module 1: sdxl_vae, "
            "Version: f2.0.1v1.10.1-previous-669-gdfdcbab6")
    r = parse_text(text)
    assert r.tool == "Forge" and r.version.startswith("f2.0.1")
    assert r.params.schedule == "Uniform" and r.unmapped == {"Module 1": "sdxl_vae"}


def test_multiline_prompts_and_quoted_values_with_commas_and_colons():
    text = ("first line of the prompt,\n  second line: with a colon\n"
            "Negative prompt: neg one\nneg two, still negative\n"
            'Steps: 10, Sampler: Euler, CFG scale: 7, Seed: 3, Model: "weird, name: v2", '
            'Wildcard prompt: "a \\"quoted\\" word, and a\\nnewline", Version: v1.10.1')
    r = parse_text(text)
    assert r.params.prompt == "first line of the prompt,\nsecond line: with a colon"  # lines are stripped, as A1111
    assert r.params.negative_prompt == "neg one\nneg two, still negative"
    assert r.params.model == "weird, name: v2"
    assert r.unmapped["Wildcard prompt"] == 'a "quoted" word, and a\nnewline'


def test_missing_fields_take_a1111_defaults():
    r = parse_text("just a prompt\nSteps: 30, Sampler: Euler, Seed: 5")
    p = r.params
    assert (p.cfg, p.clip_skip, p.noise, p.mask_blur, p.padding, p.emphasis) == (7.0, 1, "a1111-gpu", 4, 32, "Original")
    assert (p.width, p.height, p.schedule) == (None, None, "Uniform")


def test_img2img_inpaint_rng_eta_refiner():
    img = parse_text("x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Denoising strength: 0.45, RNG: CPU")
    assert img.mode == "img2img" and img.params.strength == 0.45 and img.params.noise == "a1111-cpu"
    inp = parse_text("x\nSteps: 20, Sampler: DDIM, CFG scale: 7, Seed: 1, Denoising strength: 0.6, Eta DDIM: 0.3, "
                     "Mask blur: 8, Inpaint area: Only masked, Masked area padding: 48, Version: v1.10.1")
    assert inp.mode == "inpaint" and inp.params.eta == 0.3
    assert (inp.params.strength, inp.params.mask_blur, inp.params.only_masked, inp.params.padding) == (0.6, 8, True, 48)
    ref = parse_text("x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Refiner: sd_xl_refiner_1.0 [7440042bbd], "
                     "Refiner switch at: 0.7, Version: v1.10.1")
    assert ref.params.switch_at == 0.7
    assert ref.model["refiner"] == "sd_xl_refiner_1.0" and ref.model["refiner_hash"] == "7440042bbd"
    nv = parse_text("x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, RNG: NV")
    assert nv.unmapped == {"RNG": "NV"} and nv.params.noise == "a1111-gpu" and any("NV" in n for n in nv.notes)


def test_hires_fields_are_read_with_their_denoising_strength():
    r = parse_text("x\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.7, "
                   "Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, Version: v1.10.1")
    p = r.params
    assert r.mode == "txt2img" and (p.hires, p.strength, p.hires_scale, p.hires_steps) == (True, 0.7, 2.0, 10)
    assert r.unmapped == {} and not any("hires" in note.lower() for note in r.notes)


def test_unknown_sampler_kept_as_written_and_noted():
    r = parse_text("x\nSteps: 20, Sampler: Euler Smea Dyn a, CFG scale: 7, Seed: 1, Version: v1.10.1")
    assert r.params.sampler == "Euler Smea Dyn a" and any("Euler Smea Dyn a" in n for n in r.notes)
    r = parse_text("x\nSteps: 20, Sampler: DPM++ 2S a Karras, CFG scale: 7, Seed: 1, Version: v1.7.0")
    assert (r.params.sampler, r.params.schedule) == ("DPM++ 2S a", "Karras")
    assert any("no diffusers equivalent" in n for n in r.notes)


def test_truncated_infotext_is_best_effort_garbage_is_refused():
    r = parse_text("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 12, Si")
    assert r.params.seed == 12 and r.params.prompt == "a cat"
    with pytest.raises(BadInput, match="parameter line"):
        parse_text("a cat\nSteps: 20, Sampl")
    with pytest.raises(BadInput, match="truncated"):
        parse_text("alpha: b, gamma: d, delta: f")
    bad = parse_text("x\nSteps: many, Sampler: Euler, Seed: 4")
    assert bad.unmapped == {"Steps": "many"} and bad.params.steps == 20


# ---- Fooocus -------------------------------------------------------------------------------------------------------
FOOOCUS_JSON = {
    "adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion.safetensors",
    "base_model_hash": "aeb7e9e689", "clip_skip": 2, "full_negative_prompt": ["(worst quality:1.4)", "blurry"],
    "full_prompt": ["a cat on a sofa", "cinematic still, highly detailed"], "guidance_scale": 4,
    "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1, "4852686128"]], "metadata_scheme": "fooocus",
    "negative_prompt": "", "performance": "Speed", "prompt": "a cat on a sofa", "refiner_model": "None",
    "refiner_switch": 0.5, "resolution": "(1152, 896)", "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras",
    "seed": "1234", "sharpness": 2, "steps": 30, "styles": "['Fooocus V2', 'Fooocus Sharp']",
    "vae": "Default (model)", "version": "Fooocus v2.5.5",
}


def test_fooocus_json_scheme(tmp_path):
    path = png_with(tmp_path, parameters=json.dumps(FOOOCUS_JSON), fooocus_scheme="fooocus")
    r = read_recipe(path)
    p = r.params
    assert r.tool == "Fooocus" and r.version == "Fooocus v2.5.5"
    assert (p.sampler, p.schedule, p.steps, p.cfg, p.seed) == ("DPM++ 2M SDE", "Karras", 30, 4.0, 1234)
    assert (p.width, p.height, p.clip_skip, p.switch_at, p.noise) == (1152, 896, 2, 0.5, "comfy")
    assert p.prompt == "a cat on a sofa, cinematic still, highly detailed"
    assert p.negative_prompt == "(worst quality:1.4), blurry"
    assert r.model == {"name": "juggernautXL_v8Rundiffusion", "hash": "aeb7e9e689"}
    assert r.loras == [{"name": "sd_xl_offset_example-lora_1.0", "weight": 0.1, "hash": "4852686128"}]
    assert r.unmapped["sharpness"] == "2" and r.unmapped["prompt"] == "a cat on a sofa"


def test_fooocus_a1111_scheme(tmp_path):
    text = ("a cat on a sofa, cinematic still\nNegative prompt: blurry\n"
            'Steps: 30, Sampler: DPM++ 2M SDE, Seed: 1234, Size: 1152x896, CFG scale: 4, Sharpness: 2, '
            'ADM Guidance: "(1.5, 0.8, 0.3)", Model: juggernautXL_v8Rundiffusion, Performance: Speed, '
            "Scheduler: exponential, Raw prompt: a cat on a sofa, "
            'Lora hashes: "offset-lora: 4852686128", Lora weights: "offset-lora: 0.1", Version: Fooocus v2.5.5')
    r = read_recipe(png_with(tmp_path, parameters=text, fooocus_scheme="a1111"))
    assert r.tool == "Fooocus" and r.params.noise == "comfy"
    assert (r.params.sampler, r.params.schedule) == ("DPM++ 2M SDE", "Exponential")
    assert r.loras == [{"name": "offset-lora", "weight": 0.1, "hash": "4852686128"}]
    assert r.unmapped["Sharpness"] == "2" and r.unmapped["ADM Guidance"] == "(1.5, 0.8, 0.3)"


# ---- ComfyUI -------------------------------------------------------------------------------------------------------
COMFY_SIMPLE = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 8566257, "steps": 24, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1,
        "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SD15\\dreamshaper_8.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 2}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a glass bottle, purple galaxy inside", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}


def test_comfyui_ksampler_graph(tmp_path):
    r = read_recipe(png_with(tmp_path, prompt=json.dumps(COMFY_SIMPLE), workflow="{}"))
    p = r.params
    assert r.tool == "ComfyUI" and r.mode == "txt2img"
    assert (p.seed, p.steps, p.cfg, p.sampler, p.schedule) == (8566257, 24, 6.5, "DPM++ 2M", "Karras")
    assert (p.width, p.height, p.batch_size, p.noise, p.strength) == (512, 640, 2, "comfy", 0.75)
    assert (p.prompt, p.negative_prompt, p.model) == ("a glass bottle, purple galaxy inside", "text, watermark",
                                                      "dreamshaper_8")


def _sdxl_refiner_graph():
    """Base KSamplerAdvanced -> refiner KSamplerAdvanced -> SaveImage, with two LoRAs, CLIPTextEncodeSDXL,
    CLIPSetLastLayer, a ConditioningCombine, and a decoy sampler that only feeds a PreviewImage."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "strength_model": 0.8,
                                                     "lora_name": "outline.safetensors", "strength_clip": 0.8}},
        "3": {"class_type": "LoraLoader", "inputs": {"model": ["2", 0], "clip": ["2", 1], "strength_model": 0.5,
                                                     "lora_name": "style/ink.safetensors", "strength_clip": 1.0}},
        "4": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["3", 1], "stop_at_clip_layer": -2}},
        "5": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            "clip": ["4", 0], "text_g": "a fox in the snow", "text_l": "a fox in the snow", "width": 1024,
            "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}},
        "6": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"clip": ["4", 0], "text_g": "blurry", "text_l": "blurry"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 0], "text": "golden hour"}},
        "8": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["5", 0], "conditioning_2": ["7", 0]}},
        "10": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
        "11": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["3", 0], "positive": ["8", 0], "negative": ["6", 0], "latent_image": ["10", 0],
            "add_noise": "enable", "noise_seed": 640271075, "steps": 25, "cfg": 7.5, "sampler_name": "euler_ancestral",
            "scheduler": "normal", "start_at_step": 0, "end_at_step": 20, "return_with_leftover_noise": "enable"}},
        "12": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"}},
        "13": {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {"clip": ["12", 1], "ascore": 6, "text": "a fox"}},
        "14": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["12", 0], "positive": ["13", 0], "negative": ["13", 0], "latent_image": ["11", 0],
            "add_noise": "disable", "noise_seed": 0, "steps": 25, "cfg": 7.5, "sampler_name": "euler_ancestral",
            "scheduler": "normal", "start_at_step": 20, "end_at_step": 10000, "return_with_leftover_noise": "disable"}},
        "15": {"class_type": "VAEDecode", "inputs": {"samples": ["14", 0], "vae": ["12", 2]}},
        "16": {"class_type": "SaveImage", "inputs": {"images": ["15", 0], "filename_prefix": "fox"}},
        "20": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["7", 0], "negative": ["6", 0], "latent_image": ["10", 0], "seed": 1,
            "steps": 5, "cfg": 2, "sampler_name": "lcm", "scheduler": "sgm_uniform", "denoise": 1}},
        "21": {"class_type": "VAEDecode", "inputs": {"samples": ["20", 0], "vae": ["1", 2]}},
        "22": {"class_type": "PreviewImage", "inputs": {"images": ["21", 0]}},
    }


def test_comfyui_advanced_refiner_loras_sdxl_text():
    r = parse_comfyui(_sdxl_refiner_graph())
    p = r.params
    assert (p.seed, p.steps, p.cfg, p.sampler, p.schedule) == (640271075, 25, 7.5, "Euler a", "Normal")
    assert (p.width, p.height, p.clip_skip, p.switch_at, p.noise) == (1024, 768, 2, 0.8, "comfy")
    assert p.prompt == "a fox in the snow AND golden hour" and p.negative_prompt == "blurry"
    assert r.model == {"name": "sd_xl_base_1.0", "refiner": "sd_xl_refiner_1.0"} and p.model == "sd_xl_base_1.0"
    assert r.loras == [{"name": "outline", "weight": 0.8, "hash": None},  # clip and model strengths alike
                       {"name": "ink", "weight": 0.5, "hash": None, "te_weight": 1.0}]  # kept apart, as labkit can
    assert any("<lora:outline:0.8>" in n for n in r.notes) and any("<lora:ink:1:0.5>" in n for n in r.notes)


def test_comfyui_second_pass_is_unmapped_and_img2img_inpaint_modes():
    graph = json.loads(json.dumps(COMFY_SIMPLE))
    graph["30"] = {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0], "scale_by": 1.5}}
    graph["31"] = {"class_type": "KSampler", "inputs": {**graph["3"]["inputs"], "latent_image": ["30", 0],
                                                        "denoise": 0.5, "seed": 99}}
    graph["8"]["inputs"]["samples"] = ["31", 0]
    r = parse_comfyui(graph)
    assert r.params.seed == 8566257 and r.params.strength == 0.75  # the first pass
    assert '"denoise": 0.5' in r.unmapped["stage 2 (node 31)"]

    graph = json.loads(json.dumps(COMFY_SIMPLE))
    graph["5"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["40", 0], "vae": ["4", 2]}}
    graph["40"] = {"class_type": "LoadImage", "inputs": {"image": "cat.png"}}
    graph["3"]["inputs"]["denoise"] = 0.55
    r = parse_comfyui(graph)
    assert r.mode == "img2img" and r.params.strength == 0.55 and r.params.width is None
    graph["41"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["5", 0], "mask": ["40", 1]}}
    graph["3"]["inputs"]["latent_image"] = ["41", 0]
    assert parse_comfyui(graph).mode == "inpaint"


def test_comfyui_values_through_links_and_unknown_names():
    graph = json.loads(json.dumps(COMFY_SIMPLE))
    graph["50"] = {"class_type": "PrimitiveNode", "inputs": {"value": 31337}}
    graph["51"] = {"class_type": "String Literal", "inputs": {"string": "a linked prompt"}}
    graph["3"]["inputs"].update(seed=["50", 0], sampler_name="euler_smea_dy", scheduler="align_your_steps")
    graph["6"]["inputs"]["text"] = ["51", 0]
    r = parse_comfyui(graph)
    assert r.params.seed == 31337 and r.params.prompt == "a linked prompt"
    assert (r.params.sampler, r.params.schedule) == ("euler_smea_dy", "align_your_steps")
    assert any("euler_smea_dy" in n for n in r.notes)


def test_comfyui_graphs_without_sampler_or_with_cycles_are_refused(tmp_path):
    no_sampler = {k: v for k, v in COMFY_SIMPLE.items() if k != "3"}
    with pytest.raises(UnsupportedFile, match="no KSampler"):
        parse_comfyui(no_sampler)
    loop = json.loads(json.dumps(COMFY_SIMPLE))
    loop["6"]["inputs"]["clip"] = ["8", 0]  # text encoder <- VAEDecode <- KSampler <- text encoder
    with pytest.raises(UnsupportedFile, match="loop"):
        parse_comfyui(loop)
    with pytest.raises(UnsupportedFile, match="UI 'workflow'"):
        read_recipe(png_with(tmp_path, workflow='{"nodes": []}'))
    with pytest.raises(UnsupportedFile, match="ComfyUI prompt: .*loop"):
        read_recipe(png_with(tmp_path, "loop.png", prompt=json.dumps(loop)))


# ---- InvokeAI ------------------------------------------------------------------------------------------------------
INVOKE = {
    "generation_mode": "sdxl_txt2img", "positive_prompt": "a lighthouse at dusk", "negative_prompt": "blurry",
    "width": 1024, "height": 1024, "seed": 3456, "rand_device": "cpu", "cfg_scale": 6.0, "cfg_rescale_multiplier": 0,
    "steps": 30, "scheduler": "dpmpp_2m_k", "clip_skip": 0,
    "model": {"key": "4f1c", "hash": "blake3:9d2b", "name": "Juggernaut XL v9", "base": "sdxl", "type": "main"},
    "loras": [{"model": {"key": "77aa", "hash": "blake3:1e0f", "name": "detail_tweaker_xl", "base": "sdxl",
                         "type": "lora"}, "weight": 0.5}],
    "positive_style_prompt": "cinematic", "app_version": "4.2.7",
}


def test_invokeai(tmp_path):
    r = read_recipe(png_with(tmp_path, invokeai_metadata=json.dumps(INVOKE)))
    p = r.params
    assert r.tool == "InvokeAI" and r.version == "4.2.7" and r.mode == "txt2img"
    assert (p.prompt, p.negative_prompt, p.seed, p.steps, p.cfg) == ("a lighthouse at dusk", "blurry", 3456, 30, 6.0)
    assert (p.sampler, p.schedule, p.width, p.clip_skip, p.noise) == ("DPM++ 2M", "Karras", 1024, 1, "a1111-cpu")
    assert r.model == {"name": "Juggernaut XL v9", "hash": "blake3:9d2b", "base": "sdxl"}
    assert r.loras == [{"name": "detail_tweaker_xl", "weight": 0.5, "hash": "blake3:1e0f"}]
    assert r.unmapped["positive_style_prompt"] == "cinematic"
    odd = parse_invokeai({**INVOKE, "scheduler": "deis", "generation_mode": "img2img", "strength": 0.4})
    assert odd.params.sampler == "deis" and odd.mode == "img2img" and odd.params.strength == 0.4


# ---- sources and missing metadata ----------------------------------------------------------------------------------
def test_sources_path_image_bytes_text_and_no_metadata(tmp_path):
    path = png_with(tmp_path, parameters=A1111_V110)
    expected = parse_text(A1111_V110).params
    assert read_params(path) == read_params(str(path)) == read_params(path.read_bytes()) == expected
    with Image.open(path) as image:
        assert read_params(image) == expected
    assert read_params(A1111_V110) == expected
    bare = tmp_path / "bare.png"
    Image.new("RGB", (8, 8)).save(bare)
    with pytest.raises(UnsupportedFile, match="No recipe found in .*bare.png"):
        read_recipe(bare)
    with pytest.raises(UnsupportedFile, match="not an image"):
        read_recipe(b"definitely not an image")
    with pytest.raises(UnsupportedFile, match="no such file"):
        read_recipe(tmp_path / "missing.png")


def test_a_garbled_chunk_gives_way_to_the_next_recipe(tmp_path):
    path = png_with(tmp_path, labkit="{not json", parameters=A1111_V110)
    r = read_recipe(path)
    assert r.tool == "A1111" and any("labkit chunk" in n for n in r.notes)


def test_import_stays_light():
    code = "import sys, labkit.recipes; assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2]).returncode == 0


# ---- properties: parsers return a recipe or a LabkitError, nothing else --------------------------------------------
KEYS = ["Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model", "Version",
        "Denoising strength", "Clip skip", "RNG", "Eta", "Mask blur", "Inpaint area", "Lora hashes", "Hires steps",
        "Refiner", "Refiner switch at", "Scheduler", "Batch size"]
VALUES = st.one_of(st.text(max_size=12), st.integers().map(str), st.floats().map(str),
                   st.sampled_from(["Euler a", "DPM++ 2M Karras", "512x768", "v1.8.0", "f2.0.1v1.10.1", "CPU", "NV",
                                    '"a: b, c"', '"broken', "Only masked", "labkit 0.1.0", "Fooocus v2"]))
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _returns_recipe_or_labkit_error(parse, value, *args):
    try:
        recipe = parse(value, *args)
    except LabkitError:
        return
    assert isinstance(recipe, Recipe) and isinstance(recipe.params, Params)


@FAST
@given(st.text(max_size=300), st.sampled_from(["", "a1111", "fooocus"]))
def test_any_text_parses_or_raises_labkit_error(text, scheme):
    _returns_recipe_or_labkit_error(parse_text, text, scheme)


@FAST
@given(st.text(max_size=60), st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=0, max_size=8))
def test_infotext_like_text_parses_or_raises_labkit_error(prompt, pairs):
    line = ", ".join(f"{key}: {value}" for key, value in pairs)
    _returns_recipe_or_labkit_error(parse_text, f"{prompt}\nNegative prompt: {prompt[::-1]}\n{line}")


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)
NODE_IDS = st.sampled_from(["1", "2", "3", "4", "5", "6"])
CLASSES = st.sampled_from(["KSampler", "KSamplerAdvanced", "CLIPTextEncode", "CLIPTextEncodeSDXL", "LoraLoader",
                           "CheckpointLoaderSimple", "EmptyLatentImage", "VAEDecode", "SaveImage", "VAEEncode",
                           "ConditioningCombine", "ConditioningConcat", "CLIPSetLastLayer", "SetLatentNoiseMask",
                           "PrimitiveNode", "ControlNetApplyAdvanced", "Unknown"])
INPUT_NAMES = st.sampled_from(["seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "model",
                               "positive", "negative", "latent_image", "samples", "images", "text", "text_g", "text_l",
                               "ckpt_name", "lora_name", "strength_model", "strength_clip", "clip", "width", "height",
                               "batch_size", "conditioning_1", "conditioning_2", "stop_at_clip_layer", "value",
                               "end_at_step", "conditioning"])
INPUT_VALUES = st.one_of(st.tuples(NODE_IDS, st.integers(0, 2)).map(list), JSONISH,
                         st.sampled_from(["euler", "karras", "dpmpp_2m", "x.safetensors", 20, 7.5, -2, 0.5]))
GRAPHS = st.dictionaries(NODE_IDS, st.fixed_dictionaries({
    "class_type": CLASSES, "inputs": st.dictionaries(INPUT_NAMES, INPUT_VALUES, max_size=8)}), max_size=6)


@st.composite
def mutated_graphs(draw):
    """A real graph with some inputs replaced by other values or by links to any node (cycles included)."""
    graph = json.loads(json.dumps(draw(st.sampled_from([COMFY_SIMPLE, _sdxl_refiner_graph()]))))
    ids = sorted(graph)
    for _ in range(draw(st.integers(1, 5))):
        node = graph[draw(st.sampled_from(ids))]
        key = draw(st.sampled_from(sorted(node["inputs"])))
        node["inputs"][key] = draw(st.one_of(st.tuples(st.sampled_from(ids), st.integers(0, 2)).map(list), JSONISH))
    return graph


@FAST
@given(st.one_of(GRAPHS, mutated_graphs(), st.dictionaries(st.text(max_size=4), JSONISH, max_size=6)))
def test_any_graph_parses_or_raises_labkit_error(graph):
    _returns_recipe_or_labkit_error(parse_comfyui, graph)


@FAST
@given(st.dictionaries(st.sampled_from(list(INVOKE) + list(FOOOCUS_JSON)), JSONISH, max_size=10))
def test_any_invokeai_or_fooocus_dict_parses_or_raises_labkit_error(data):
    _returns_recipe_or_labkit_error(parse_invokeai, data)
    _returns_recipe_or_labkit_error(parse_fooocus, data)
