"""Argument checks every public entry point shares: whole numbers, real numbers, texts, flags, names with "did you
mean", and the keywords other tools use for labkit's settings. Each raises BadInput naming the fix; none imports
anything heavy (NumPy scalars are recognised through the `numbers` ABCs they register with).

    whole("steps", 20.0)          # BadInput: steps=20.0 is a float; give a whole number (an int), e.g. steps=20
    real("cfg", np.float32(7))    # 7.0
    choose("sampler", "Eulr", ["Euler", "Euler a"])   # BadInput: ... Did you mean 'Euler'?
"""

import difflib
import math
import numbers
import os

from .errors import BadInput

# keywords of diffusers, A1111's API, ComfyUI and other tools -> what to write in labkit instead
FOREIGN = {
    "cfg_scale": "cfg= (A1111's 'CFG scale')",
    "guidance_scale": "cfg= (diffusers' guidance_scale is A1111's 'CFG scale')",
    "guidance": "cfg= (the CFG scale)",
    "num_inference_steps": "steps=",
    "num_steps": "steps=",
    "sampler_name": "sampler= with an A1111 or ComfyUI name, e.g. sampler='DPM++ 2M'",
    "sampler_index": "sampler= with an A1111 or ComfyUI name, e.g. sampler='DPM++ 2M'",
    "scheduler": "sampler= and schedule= (A1111 names, e.g. sampler='DPM++ 2M', schedule='Karras'); "
                 "labkit builds the diffusers scheduler from them",
    "scheduler_name": "schedule= (A1111's 'Schedule type', e.g. 'Karras')",
    "schedule_type": "schedule= (A1111's 'Schedule type', e.g. 'Karras')",
    "denoise": "strength= (ComfyUI's denoise is A1111's 'Denoising strength')",
    "denoising_strength": "strength=",
    "negative": "negative_prompt=",
    "neg_prompt": "negative_prompt=",
    "negative_prompts": "negative_prompt=",
    "prompts": "prompt= (one text; batch_size= makes several pictures of it)",
    "num_images_per_prompt": "batch_size=",
    "num_images": "batch_size=",
    "n_samples": "batch_size=",
    "batch_count": "a loop over seeds (labkit runs one batch per call)",
    "n_iter": "a loop over seeds (labkit runs one batch per call)",
    "generator": "seed= (and noise= for the tool whose noise to match): labkit makes its own seeded generators",
    "latents": "seed=: labkit draws the initial noise from the seed; for your own latents call lab.pipe(...) "
               "directly",
    "noise_seed": "seed=",
    "subseed": "seed= (labkit has no variation seeds)",
    "size": "width= and height=",
    "w": "width=",
    "h": "height=",
    "denoising_end": "switch_at= with refiner=<Lab>",
    "high_noise_frac": "switch_at= with refiner=<Lab>",
    "clip_layer": "clip_skip= (A1111 counts from 1: clip_skip=2 is ComfyUI's stop_at_clip_layer=-2)",
    "stop_at_clip_layer": "clip_skip= (clip_skip=2 is ComfyUI's stop_at_clip_layer=-2)",
    "init_image": "the image argument: lab.img2img(image, prompt, ...)",
    "mask_image": "the mask argument: lab.inpaint(image, mask, prompt, ...)",
    "inpaint_full_res": "only_masked=",
    "inpaint_full_res_padding": "padding=",
    "mask_blur_x": "mask_blur=",
    "callback": "on_step= (called as on_step(step, total, latents))",
    "callback_on_step_end": "on_step= (called as on_step(step, total, latents))",
    "output_type": "the Result: r.images are PIL images and r.latents the final latents",
    "prompt_embeds": "lab.pipe(...) directly (labkit encodes the prompt itself, with A1111's syntax)",
    "lora": "lab.loras.load(path, weight=...) or a <lora:name:weight> tag in the prompt",
    "loras": "lab.loras.load(path, weight=...) or <lora:name:weight> tags in the prompt",
    "vae": "labkit.open(model, vae=path)",
    "device": "labkit.open(model, device=...)",
    "dtype": "labkit.open(model, dtype=...)",
    "torch_dtype": "labkit.open(model, dtype=...)",
    "rng": "noise= ('a1111-cpu', 'a1111-gpu' or 'comfy')",
    "ensd": "nothing: labkit's samplers take no 'eta noise seed delta'",
    "enable_hr": "hires=True",
    "hr_scale": "hires_scale=",
    "hr_upscaler": "hires_upscaler=",
    "hr_second_pass_steps": "hires_steps=",
    "hr_resize_x": "hires_resize_x=",
    "hr_resize_y": "hires_resize_y=",
    "hr_sampler_name": "hires_sampler=",
    "hr_scheduler": "hires_schedule=",
    "hr_prompt": "hires_prompt=",
    "hr_negative_prompt": "hires_negative_prompt=",
    "hr_cfg": "hires_cfg=",
    "hr_checkpoint_name": "hires_checkpoint= (and txt2img(hires_lab=<Lab>))",
    "hires_denoise": "strength= (the denoising strength; with hires=True it is the second pass's)",
    "restore_faces": "nothing: labkit does not restore faces",
    "guidance_rescale": "nothing: labkit has no CFG rescale",
    "tiling": "nothing: labkit has no tiling",
}


def is_whole(value) -> bool:
    """An int or a NumPy integer, never a bool (True is not 1 here)."""
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def is_real(value) -> bool:
    """An int, a float or a NumPy number, never a bool."""
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _is_bool(value) -> bool:
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool")


def kind(value) -> str:
    """"an int", "a str", "None", "bytes"...: a value's type as a message says it."""
    if value is None:
        return "None"
    name = type(value).__name__
    if name in ("bytes", "bytearray"):
        return name
    return ("an " if name[0].lower() in "aeiou" else "a ") + name


def described(name: str, value) -> str:
    """"steps=20.5 is a float", "steps is missing (None)": the start of a message about a wrong type."""
    if value is None:
        return f"{name} is missing (None)"
    return f"{name}={shown(value)} is {kind(value)}"


def shown(value) -> str:
    """A value as a message shows it: short, its type where the repr hides it."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text


def whole(name: str, value, low=None, high=None, example=None) -> int:
    """`value` as an int within [low, high]; BadInput for floats (never truncated), bools, texts and the rest."""
    if not is_whole(value):
        hint = f", e.g. {name}={example}" if example is not None else ""
        if is_real(value):
            raise BadInput(f"{name}={shown(value)} is a float; give a whole number (an int){hint}: labkit does not "
                           f"round settings.")
        raise BadInput(f"{described(name, value)}; give a whole number (an int){hint}.")
    number = int(value)
    _in_range(name, number, low, high)
    return number


def real(name: str, value, low=None, high=None, example=None) -> float:
    """`value` as a finite float within [low, high]; BadInput for NaN, infinities, bools and non-numbers."""
    if not is_real(value):
        hint = f", e.g. {name}={example}" if example is not None else ""
        raise BadInput(f"{described(name, value)}; give a number{hint}.")
    number = float(value)
    if not math.isfinite(number):
        raise BadInput(f"{name}={shown(value)} is not a finite number; give a real value"
                       + (f", e.g. {name}={example}." if example is not None else "."))
    _in_range(name, number, low, high)
    return number


def _in_range(name, number, low, high) -> None:
    if low is not None and number < low or high is not None and number > high:
        span = (f"at least {low}" if high is None else f"at most {high}" if low is None
                else f"between {low} and {high}")
        raise BadInput(f"{name}={number!r} is out of range: it must be {span}.")


def flag(name: str, value) -> bool:
    """`value` as a bool: True / False (or a NumPy bool); BadInput for 0, 1, "yes" and the rest."""
    if not _is_bool(value):
        raise BadInput(f"{described(name, value)}; give True or False.")
    return bool(value)


def text(name: str, value, allow_none: bool = False) -> str | None:
    """`value` as text; bytes are refused with how to decode them."""
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        raise BadInput(f"{name}= got bytes; give text: {name}=value.decode('utf-8').")
    raise BadInput(f"{described(name, value)}; give text (a str).")


def path(name: str, value):
    """`value` as given when it is a path (str or os.PathLike, not empty); BadInput otherwise."""
    if isinstance(value, (bytes, bytearray)):
        raise BadInput(f"{name}= got bytes; give a path as text or a pathlib.Path.")
    if not isinstance(value, (str, os.PathLike)):
        raise BadInput(f"{described(name, value)}; give a file path (a str or "
                       f"pathlib.Path).")
    if not str(os.fspath(value)).strip():
        raise BadInput(f"{name}={shown(value)} is empty; give a file path.")
    return value


def callback(name: str, value):
    """`value` when callable or None; BadInput otherwise."""
    if value is not None and not callable(value):
        raise BadInput(f"{name}={shown(value)} is not callable; give a function (or None).")
    return value


def did_you_mean(word, options) -> str:
    """" Did you mean 'x'?" for the closest option (case-insensitive), or ""."""
    if not isinstance(word, str):
        return ""
    lowered = {}
    for option in options:  # the first spelling of a name wins ("Euler" before ComfyUI's "euler")
        lowered.setdefault(str(option).lower(), option)
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    if not close and len(word) >= 3:  # "gpu" -> "a1111-gpu": a word inside exactly one option
        close = [option for option in lowered if word.lower() in option][:2]
        close = close if len(close) == 1 else []
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""


def choose(name: str, value, options, what: str | None = None):
    """`value` if it is one of `options`; BadInput listing them, with "did you mean" for a near miss."""
    if isinstance(value, str) and value in options:
        return value
    if not isinstance(value, str):
        text(name, value)
    listed = ", ".join(map(repr, options))
    raise BadInput(f"{name}={shown(value)} is not {what or 'one of the choices'}: use one of {listed}."
                   + did_you_mean(value, options))


def unknown_keywords(names, valid, where: str) -> None:
    """BadInput for keywords `where` does not take: another tool's name gets labkit's, a near miss a suggestion."""
    unknown = [n for n in names if n not in valid]
    if not unknown:
        return
    lines = []
    for name in unknown:
        if name in FOREIGN:
            lines.append(f"{name}= is another tool's name: labkit's equivalent is {FOREIGN[name]}.")
        else:
            lines.append(f"{name}= is not a setting.{did_you_mean(name, valid)}")
    raise BadInput(f"Unknown setting(s) for {where}: " + " ".join(lines) + f" Valid settings: {', '.join(valid)}.")
