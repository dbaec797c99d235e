"""labkit.read_recipe / read_params: what a reader does with sources it cannot read and values Params refuses."""

import json

import labkit
from labkit import BadInput, UnsupportedFile

from . import refuses, works

READ = "labkit.read_recipe"
LINE = "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64"


def read(source):
    return lambda env: labkit.read_recipe(source(env) if callable(source) else source)


def infotext(**changes):
    """An infotext whose parameter line has `changes` (A1111 keys) instead of the defaults."""
    fields = {"Steps": "20", "Sampler": "Euler", "CFG scale": "7", "Seed": "1", "Size": "64x64", **changes}
    return "a red circle\n" + ", ".join(f"{k}: {v}" for k, v in fields.items())


def kept_out(key, field):
    """A check: the recipe's Params are valid, `field` is labkit's default, `key` is in unmapped with a note."""
    def check(recipe, env):
        assert recipe.params.validate() is recipe.params
        assert getattr(recipe.params, field) == getattr(labkit.Params(), field), recipe.params
        assert key in recipe.unmapped and any(note.startswith(key) for note in recipe.notes), recipe.notes
    return check


def labkit_json(**params):
    return {"format": "labkit-recipe/1", "params": {"prompt": "a cat", "steps": 20, "cfg": 7.0, **params}}


def comfy_graph(positive):
    return {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7, "sampler_name": "euler",
                                                     "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                                     "positive": positive, "negative": ["7", 0],
                                                     "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly", "clip": ["4", 1]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}}


def _dangling(recipe, env):
    assert recipe.params.prompt == "" and any("node 99, which is not in the graph" in n for n in recipe.notes)


CASES = [
    refuses(READ, "labkit.read_recipe(None)", read(None), "takes a path, PIL image, bytes or text"),
    refuses(READ, "labkit.read_recipe(3.5)", read(3.5), "takes a path, PIL image, bytes or text"),
    refuses(READ, "labkit.read_recipe('')", read(""), "parameter line"),
    refuses(READ, "labkit.read_recipe('just a prompt')", read("just a prompt"), "last line should read like"),
    refuses(READ, "labkit.read_recipe('{}')", read("{}"), "no known tool writes", UnsupportedFile),
    refuses(READ, "labkit.read_recipe({'steps': 20})", read({"steps": 20}), "labkit reads A1111", UnsupportedFile),
    refuses(READ, "labkit.read_recipe('missing.png')", lambda env: labkit.read_recipe(env.path("missing.png")),
            "no such file", UnsupportedFile),
    refuses(READ, "labkit.read_recipe(<a folder>)", lambda env: labkit.read_recipe(env.path("good")),
            "is a folder, not an image", UnsupportedFile),
    refuses(READ, "labkit.read_recipe(<a PNG without a recipe>)", lambda env: labkit.read_recipe(env.path("bare.png")),
            "No recipe found", UnsupportedFile),
    refuses(READ, "labkit.read_recipe(b'not an image')", read(b"not an image"), "give a PNG, JPEG or WebP picture",
            UnsupportedFile),
    refuses(READ, "labkit.read_recipe('a cat\\nSteps: x, Seed: z, CFG scale: q'): nothing readable",
            read("a cat\nSteps: x, Seed: z, CFG scale: q"), "readable form"),
    refuses(READ, "labkit.read_recipe(<ComfyUI graph whose nodes feed each other>)", read(
            {"1": {"class_type": "KSampler", "inputs": {"latent_image": ["2", 0]}},
             "2": {"class_type": "KSampler", "inputs": {"latent_image": ["1", 0]}}}), "loop", UnsupportedFile),
    refuses("labkit.read_params", "labkit.read_params(123)", lambda env: labkit.read_params(123),
            "takes a path, PIL image, bytes or text"),
    works(READ, "infotext 'Steps: 20.5'", read(infotext(Steps="20.5")), kept_out("Steps", "steps"),
          "a value Params refuses goes to recipe.unmapped with a note saying why; Params keep labkit's default"),
    works(READ, "infotext 'Steps: 0'", read(infotext(Steps="0")), kept_out("Steps", "steps"),
          "the note gives Params' reason (at least 1 step)"),
    works(READ, "infotext 'Size: 65x64'", read(infotext(Size="65x64")), kept_out("Size", "width"),
          "a size off the 8-pixel grid is kept out"),
    works(READ, "infotext 'CFG scale: -3'", read(infotext(**{"CFG scale": "-3"})), kept_out("CFG scale", "cfg"),
          "a negative CFG is kept out"),
    works(READ, "infotext 'CFG scale: nan'", read(infotext(**{"CFG scale": "nan"})), kept_out("CFG scale", "cfg"),
          "NaN is kept out"),
    works(READ, "infotext 'Seed: -7'", read(infotext(Seed="-7")), kept_out("Seed", "seed"), "a seed below -1"),
    works(READ, "infotext 'Clip skip: 0'", read(infotext(**{"Clip skip": "0"})), kept_out("Clip skip", "clip_skip"),
          "clip skip counts from 1"),
    works(READ, "infotext 'Eta: 3'", read(infotext(Eta="3")), kept_out("Eta", "eta"), "eta is in [0, 1]"),
    works(READ, "labkit JSON {'steps': 'lots'}", read(labkit_json(steps="lots")), kept_out("steps", "steps"),
          "labkit's own JSON is read field by field"),
    works(READ, "labkit JSON {'cfg': true}", read(labkit_json(cfg=True)), kept_out("cfg", "cfg"),
          "true is not a number"),
    works(READ, "labkit JSON {'only_masked': 'maybe'}", read(labkit_json(only_masked="maybe")),
          kept_out("only_masked", "only_masked"), "a flag must be true or false"),
    works(READ, "InvokeAI JSON {'steps': true}", read(json.dumps({"positive_prompt": "a cat", "steps": True,
          "cfg_scale": 7, "seed": 1})), kept_out("steps", "steps"), "true is not a step count"),
    works(READ, "ComfyUI graph whose positive prompt links to a missing node", read(comfy_graph(["99", 0])),
          _dangling, "a link to a node the graph lacks leaves the prompt empty, and a note says so"),
]

assert all(issubclass(c.error, BadInput) or c.error is UnsupportedFile for c in CASES)
