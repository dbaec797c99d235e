"""Properties of Params over every field (issue #16): valid values round-trip through replace, validate, from_dict
and A1111 infotext; any other value raises BadInput, never another exception."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit import BadInput, Params, samplers
from labkit.params import FIELDS, MAX_SEED, NOISE_MODES
from labkit.prompts import EMPHASIS
from labkit.recipes import infotext, parse_a1111

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def numbers(ints, floats=None):
    """Python and NumPy forms of the same values (NumPy scalars must be taken as the Python ones)."""
    forms = [ints, ints.map(np.int64)] if floats is None else [floats, floats.map(np.float64)]
    return st.one_of(*forms)


TEXT = st.from_regex(r"([a-z][a-z ,()]{0,24}[a-z])?", fullmatch=True)  # prompts infotext keeps as written
SIZES = st.one_of(st.none(), st.integers(1, 256).map(lambda n: 8 * n))
UNIT = st.floats(0.01, 1.0, allow_nan=False)


@st.composite
def control_units(draw):
    """0 to 2 ControlNet units with settings A1111's infotext can carry (a module's sliders at values, else None)."""
    from labkit.controlnet.preprocess import PREPROCESSORS
    from labkit.controlnet.units import CONTROL_MODES, RESIZE_MODES, ControlUnit

    units = []
    for _ in range(draw(st.integers(0, 2))):
        module = draw(st.sampled_from(sorted(PREPROCESSORS)))
        start = draw(st.sampled_from([0.0, 0.1, 0.25, 0.5]))
        module_sliders = (("threshold_a", PREPROCESSORS[module].a), ("threshold_b", PREPROCESSORS[module].b))
        sliders = {name: float(draw(st.integers(1, 255))) if spec else None for name, spec in module_sliders}
        units.append(ControlUnit(draw(st.from_regex(r"[a-z][a-z0-9_]{0,10}( \[[0-9a-f]{8}\])?", fullmatch=True)),
                                 module=module, weight=draw(st.sampled_from([0.0, 0.5, 1.0, 1.35, 2.0])),
                                 guidance_start=start, guidance_end=draw(st.sampled_from([0.5, 0.8, 1.0])),
                                 control_mode=draw(st.sampled_from(CONTROL_MODES)),
                                 resize_mode=draw(st.sampled_from(RESIZE_MODES)), pixel_perfect=draw(st.booleans()),
                                 processor_res=draw(st.sampled_from([64, 512, 1024])), **sliders))
    return tuple(units)


VALID = {
    "prompt": TEXT,
    "negative_prompt": TEXT,
    "steps": numbers(st.integers(1, 150)),
    "cfg": numbers(None, st.floats(0, 30, allow_nan=False)),
    "sampler": st.sampled_from(samplers.names()),
    "schedule": st.sampled_from(samplers.schedules()),
    "seed": numbers(st.one_of(st.just(-1), st.integers(0, 2**32 - 1))),
    "width": SIZES,
    "height": SIZES,
    "batch_size": numbers(st.integers(1, 8)),
    "strength": numbers(None, UNIT),
    "mask_blur": numbers(st.integers(0, 64)),
    "only_masked": st.booleans(),
    "padding": numbers(st.integers(0, 256)),
    "switch_at": numbers(None, st.floats(0.01, 0.99, allow_nan=False)),
    "clip_skip": numbers(st.integers(1, 12)),
    "emphasis": st.sampled_from(EMPHASIS),
    "eta": st.one_of(st.none(), numbers(None, st.floats(0, 1, allow_nan=False))),
    "noise": st.sampled_from(NOISE_MODES),
    "sgm_noise_multiplier": st.booleans(),
    "model": TEXT,
    "control": control_units(),
    "hires": st.booleans(),
    "hires_scale": st.integers(21, 80).map(lambda n: n * 0.05),  # A1111's slider: 1.05 to 4 in 0.05 steps
    "hires_resize_x": st.one_of(st.just(0), SIZES.filter(bool)),
    "hires_resize_y": st.one_of(st.just(0), SIZES.filter(bool)),
    "hires_steps": numbers(st.integers(0, 150)),
    "hires_upscaler": st.sampled_from(["Latent", "Latent (bicubic antialiased)", "None", "Lanczos", "Nearest",
                                       "R-ESRGAN 4x+", "4x-UltraSharp"]),
    "hires_sampler": st.one_of(st.just(""), st.sampled_from(samplers.names())),
    "hires_schedule": st.one_of(st.just(""), st.sampled_from(samplers.schedules())),
    "hires_prompt": TEXT,
    "hires_negative_prompt": TEXT,
    "hires_cfg": st.one_of(st.none(), numbers(None, st.floats(0, 30, allow_nan=False))),
    "hires_checkpoint": TEXT,
}
HIRES_SAME = {"hires_sampler": "sampler", "hires_prompt": "prompt", "hires_negative_prompt": "negative_prompt",
              "hires_cfg": "cfg", "hires_schedule": "schedule"}  # written only when they differ from the first pass
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8),
                     st.binary(max_size=4), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.text(),
                     max_size=1), st.integers(-2**31, 2**31 - 1).map(np.int32), st.floats(width=32).map(np.float32))


def test_every_field_has_a_strategy():
    assert set(VALID) == set(FIELDS)


@FAST
@given(st.fixed_dictionaries({}, optional=VALID))
def test_valid_settings_round_trip(settings_):
    p = Params(**settings_)
    assert p.validate() is p and Params().replace(**settings_) == p and Params.from_dict(p.to_dict()) == p
    for name, value in settings_.items():
        held = getattr(p, name)
        assert held == value or (isinstance(value, float) and math.isclose(held, value))
        assert type(held) in (int, float, str, bool, type(None), tuple), (name, type(held))


@FAST
@given(st.fixed_dictionaries({}, optional={k: v for k, v in VALID.items()
                                           if k not in ("batch_size", "model", "switch_at", "schedule")}),
       st.sampled_from(["txt2img", "img2img", "inpaint"]))
def test_valid_settings_round_trip_through_infotext(settings_, mode):
    p = Params(**settings_)
    read = parse_a1111(infotext(p, mode=mode)).params
    carried = ["prompt", "negative_prompt", "steps", "cfg", "seed", "clip_skip", "emphasis", "eta", "sampler",
               "sgm_noise_multiplier", "control"]
    carried += ["width", "height"] if p.width and p.height else []
    carried += ["strength"] if mode != "txt2img" else []
    carried += ["mask_blur", "only_masked"] + (["padding"] if p.only_masked else []) if mode == "inpaint" else []
    carried += ["noise"] if p.noise != "comfy" else []  # ComfyUI's noise is written as A1111's "RNG: CPU"
    assert {f: getattr(read, f) for f in carried} == {f: getattr(p, f) for f in carried}
    assert read.hires == (p.hires and mode == "txt2img")
    if read.hires:
        assert_hires_carried(p, read)
    schedule = p.schedule if p.schedule != "Automatic" else samplers.canonical(p.sampler, "Automatic")[1]
    assert read.schedule in (schedule, p.schedule)


def assert_hires_carried(p, read):
    """Hires fields through infotext: each as written, "" (the first pass's) where it equals the first pass's."""
    resized = bool(p.hires_resize_x or p.hires_resize_y)
    carried = ["strength", "hires_steps", "hires_upscaler", "hires_checkpoint", "hires_resize_x", "hires_resize_y"]
    assert {f: getattr(read, f) for f in carried} == {f: getattr(p, f) for f in carried}
    if not resized:
        assert math.isclose(read.hires_scale, p.hires_scale)
    for hires, first in HIRES_SAME.items():
        mine = getattr(p, hires)
        want = "" if mine == getattr(p, first) or mine in ("", None) else mine
        assert getattr(read, hires) in (want, None if want == "" and hires == "hires_cfg" else want), hires


@FAST
@given(st.sampled_from(FIELDS), ANYTHING)
def test_any_value_is_taken_or_refused_with_bad_input(name, value):
    try:
        p = Params(**{name: value})
    except BadInput:
        return
    held = getattr(p, name)
    assert p.validate() is p
    assert type(held) in (int, float, str, bool, type(None)) or (name == "control" and held == ()), (name, value, held)


TEXTS_AND_FLAGS = ("prompt", "negative_prompt", "model", "sampler", "schedule", "only_masked", "sgm_noise_multiplier",
                   "hires", "hires_upscaler", "hires_sampler", "hires_schedule", "hires_prompt",
                   "hires_negative_prompt", "hires_checkpoint")


@pytest.mark.parametrize("name", [n for n in FIELDS if n not in TEXTS_AND_FLAGS])
@FAST
@given(value=st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.booleans(), st.binary(max_size=3),
                       st.text(min_size=1, max_size=4)))
def test_numbers_refuse_nan_inf_bools_and_text(name, value):
    with pytest.raises(BadInput):
        Params(**{name: value})


@FAST
@given(st.sampled_from([n for n in FIELDS if n in ("steps", "seed", "width", "height", "batch_size", "mask_blur",
                                                   "padding", "clip_skip")]),
       st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: x != 0))
def test_whole_number_fields_refuse_floats_rather_than_rounding(name, value):
    with pytest.raises(BadInput, match="whole number"):
        Params(**{name: value})


@FAST
@given(st.text(max_size=12).filter(lambda s: s not in FIELDS and s.isidentifier()), ANYTHING)
def test_unknown_settings_are_refused_with_the_valid_names(name, value):
    with pytest.raises(BadInput, match="Valid settings: prompt"):
        Params().replace(**{name: value})
    with pytest.raises(BadInput, match="Valid settings: prompt"):
        Params(**{name: value})


@pytest.mark.parametrize("seed, limit", [(MAX_SEED, True), (MAX_SEED + 1, False)])
def test_the_largest_seed(seed, limit):
    if limit:
        assert Params(seed=seed).seed == seed
    else:
        with pytest.raises(BadInput):
            Params(seed=seed)
