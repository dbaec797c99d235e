"""Params(...), replace, validate, from_dict: every field's type and range, other tools' keywords."""

import numpy as np

from labkit import BadInput, Params

from . import refuses, works

P = "Params"


def make(**settings):
    return lambda env: Params(**settings)


def field(name, value, fix, what=None):
    return refuses(P, what or f"Params({name}={value!r})", make(**{name: value}), fix)


def _numpy_scalars(p, env):
    assert (p.steps, p.seed, p.cfg, p.strength) == (5, 7, 3.5, 0.5)
    assert type(p.steps) is int and type(p.seed) is int and type(p.cfg) is float and type(p.strength) is float


def _ints_become_floats(p, env):
    assert p.cfg == 7.0 and type(p.cfg) is float and p.eta == 0.0 and type(p.eta) is float


CASES = [
    field("steps", 20.5, "whole number", "Params(steps=20.5): a float step count"),
    field("steps", 20.0, "whole number .*does not round", "Params(steps=20.0): a float, even a whole one"),
    field("steps", "20", r"give a whole number \(an int\)", "Params(steps='20'): text"),
    field("steps", None, "whole number", "Params(steps=None)"),
    field("steps", True, "is a bool; give a whole number", "Params(steps=True): bool is not an int"),
    field("steps", 0, "at least 1 step"),
    field("steps", -5, "at least 1 step"),
    field("cfg", float("nan"), "not a finite number", "Params(cfg=nan)"),
    field("cfg", float("inf"), "not a finite number", "Params(cfg=inf)"),
    field("cfg", -1.0, r"negative: the CFG scale is 0 or more"),
    field("cfg", "7", "give a number", "Params(cfg='7')"),
    field("cfg", None, "give a number"),
    field("cfg", b"7", "give a number", "Params(cfg=b'7'): bytes"),
    field("seed", 1.5, "whole number", "Params(seed=1.5): a float seed"),
    field("seed", 42.0, "whole number", "Params(seed=42.0)"),
    field("seed", -2, r"-1 \(random\) or a non-negative integer"),
    field("seed", 2**64, r"up to 2\*\*63 - 1", "Params(seed=2**64)"),
    field("seed", "42", "whole number", "Params(seed='42')"),
    field("width", 65, "use 64"),
    field("width", 0, "use 8"),
    field("width", 64.0, "whole number"),
    field("height", "512", "whole number"),
    field("height", -64, "multiple of 8"),
    field("batch_size", 0, "at least 1 picture"),
    field("batch_size", 2.0, "whole number"),
    field("strength", 0, r"outside \(0, 1\]: 0.3 keeps most"),
    field("strength", 1.5, r"outside \(0, 1\]"),
    field("strength", float("nan"), "not a finite number", "Params(strength=nan)"),
    field("switch_at", 1.0, r"outside \(0, 1\): .*denoising_end"),
    field("mask_blur", -1, r"0 \(sharp\) or more"),
    field("mask_blur", 4.5, "whole number"),
    field("padding", -8, "0 or more pixels"),
    field("only_masked", 1, "give True or False"),
    field("only_masked", "yes", "give True or False"),
    field("sgm_noise_multiplier", None, "give True or False"),
    field("clip_skip", 0, "counts from 1"),
    field("clip_skip", 2.0, "whole number"),
    field("emphasis", "original", "Did you mean 'Original'"),
    field("noise", "gpu", "Did you mean 'a1111-gpu'"),
    field("noise", "cpu", "Did you mean 'a1111-cpu'"),
    field("eta", 2.0, r"outside \[0, 1\]"),
    field("eta", float("nan"), "not a finite number", "Params(eta=nan)"),
    field("prompt", b"a cat", r"decode\('utf-8'\)", "Params(prompt=b'a cat'): bytes"),
    field("prompt", None, r"give text \(a str\)"),
    field("prompt", ["a", "cat"], "give text", "Params(prompt=['a', 'cat']): a list"),
    field("negative_prompt", 5, "give text"),
    field("sampler", 3, "give text"),
    field("schedule", None, "give text"),
    field("model", None, "give text"),
    refuses(P, "Params(cfg_scale=7)", make(cfg_scale=7), r"cfg_scale= is another tool's name: .*cfg="),
    refuses(P, "Params(guidance_scale=7)", make(guidance_scale=7), "labkit's equivalent is cfg="),
    refuses(P, "Params(num_inference_steps=30)", make(num_inference_steps=30), "equivalent is steps="),
    refuses(P, "Params(denoising_strength=0.5)", make(denoising_strength=0.5), "equivalent is strength="),
    refuses(P, "Params(negative='ugly')", make(negative="ugly"), "equivalent is negative_prompt="),
    refuses(P, "Params(stepz=30)", make(stepz=30), "Did you mean 'steps'"),
    refuses(P, "Params().replace(denoise=0.5)", lambda env: Params().replace(denoise=0.5),
            r"strength= \(ComfyUI's denoise"),
    refuses(P, "Params().replace(sampler_name='euler')", lambda env: Params().replace(sampler_name="euler"),
            "sampler= with an A1111 or ComfyUI name"),
    refuses(P, "Params().replace(stepss=3)", lambda env: Params().replace(stepss=3),
            "Did you mean 'steps'.*Valid settings: prompt"),
    refuses(P, "Params().replace(steps=2.5)", lambda env: Params().replace(steps=2.5), "whole number"),
    refuses(P, "Params(*40 values): too many positional settings", lambda env: Params(*range(40)), "name them"),
    refuses(P, "Params('a cat', prompt='a dog'): twice", lambda env: Params("a cat", prompt="a dog"), "twice"),
    refuses(P, "Params.from_dict('steps: 20')", lambda env: Params.from_dict("steps: 20"), "takes a dict"),
    refuses(P, "Params.from_dict({'steps': '20'})", lambda env: Params.from_dict({"steps": "20"}), "whole number"),
    refuses(P, "Params(seed=2**63 - 1, batch_size=2): image 2's seed passes the limit",
            make(seed=2**63 - 1, batch_size=2), "smaller seed"),
    works(P, "Params(steps=np.int64(5), seed=np.int32(7), cfg=np.float32(3.5), strength=np.float64(0.5))",
          make(steps=np.int64(5), seed=np.int32(7), cfg=np.float32(3.5), strength=np.float64(0.5)),
          _numpy_scalars, "NumPy scalars are taken and stored as Python int / float"),
    works(P, "Params(cfg=7, eta=0)", make(cfg=7, eta=0), _ints_become_floats, "whole numbers where a float "
          "belongs are taken as floats"),
]

assert all(isinstance(c.error, type) and issubclass(c.error, BadInput) for c in CASES if c.fix)
