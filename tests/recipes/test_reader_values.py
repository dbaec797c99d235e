"""read_recipe on any text or JSON object (issue #16): it raises a LabkitError, or returns a Recipe whose Params pass
validate and hold values of the right types; a value Params refuses goes to `unmapped` with a note, never into
Params."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labkit
from labkit import LabkitError, Params
from labkit.params import FIELDS
from labkit.recipes import Recipe

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TYPES = {"int": int, "float": float, "str": str, "bool": bool}

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12)
NUMBERISH = st.one_of(st.integers(-2**70, 2**70).map(str), st.floats().map(str), st.sampled_from(
    ["0", "-1", "20.5", "1e400", "nan", "inf", "-inf", "65x64", "64x64", "True", "7,5", " 3 ", "0x10", "1_000"]))
A1111_KEYS = ["Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Denoising strength", "Clip skip",
              "RNG", "Eta", "Eta DDIM", "Mask blur", "Inpaint area", "Masked area padding", "Batch size", "Emphasis",
              "Refiner switch at", "SGM noise multiplier", "Version", "Model"]


def check_recipe(source) -> None:
    """The property: a LabkitError, or a Recipe whose Params are valid and typed as Params declares."""
    try:
        recipe = labkit.read_recipe(source)
    except LabkitError:
        return
    assert isinstance(recipe, Recipe) and isinstance(recipe.params, Params)
    p = recipe.params
    assert p.validate() is p
    for name in FIELDS:
        value = getattr(p, name)
        declared = Params.__dataclass_fields__[name].type
        allowed = getattr(declared, "__args__", (declared,))
        assert type(value) in allowed, (name, value, declared)
        assert not isinstance(value, float) or math.isfinite(value)


@FAST
@given(st.text(max_size=200))
def test_any_text(text):
    check_recipe(text)


@FAST
@given(st.text(max_size=40).filter(lambda s: not s.lstrip().startswith("{")),
       st.lists(st.tuples(st.sampled_from(A1111_KEYS), NUMBERISH | st.text(max_size=10)), min_size=1, max_size=10))
def test_infotext_with_any_values(prompt, pairs):
    check_recipe(prompt.replace("\n", " ") + "\n" + ", ".join(f"{k}: {v}" for k, v in pairs))


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), JSONISH, max_size=12), JSONISH)
def test_labkit_json_with_any_values(params, mode):
    check_recipe({"format": "labkit-recipe/1", "params": params, "mode": mode})
    check_recipe(json.dumps({"format": "labkit-recipe/1", "params": params}, default=str))


@FAST
@given(st.dictionaries(st.sampled_from(["positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "width",
                                        "height", "strength", "clip_skip", "refiner_start", "rand_device", "scheduler",
                                        "model", "generation_mode", "loras"]), JSONISH, min_size=1, max_size=10))
def test_invokeai_json_with_any_values(data):
    check_recipe({"positive_prompt": "a cat", **data})


@FAST
@given(st.dictionaries(st.sampled_from(["prompt", "full_prompt", "steps", "guidance_scale", "seed", "resolution",
                                        "clip_skip", "refiner_switch", "sampler", "scheduler", "base_model", "loras"]),
                       JSONISH, min_size=1, max_size=10))
def test_fooocus_json_with_any_values(data):
    check_recipe({"guidance_scale": 4, **data})


NODE_IDS = st.sampled_from(["1", "2", "3", "4", "5", "99"])
GRAPH = st.dictionaries(NODE_IDS, st.fixed_dictionaries({
    "class_type": st.sampled_from(["KSampler", "KSamplerAdvanced", "CLIPTextEncode", "EmptyLatentImage",
                                   "CheckpointLoaderSimple", "SaveImage", "VAEDecode", "LoraLoader"]),
    "inputs": st.dictionaries(st.sampled_from(["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "model",
                                               "positive", "negative", "latent_image", "text", "width", "height",
                                               "batch_size", "samples", "images", "ckpt_name"]),
                              st.one_of(st.tuples(NODE_IDS, st.integers(0, 2)).map(list), JSONISH), max_size=8)}),
    min_size=1, max_size=5)


@FAST
@given(GRAPH)
def test_comfyui_graph_with_any_values_and_links(graph):
    check_recipe(graph)
