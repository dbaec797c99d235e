"""What a Lab checks before any work, for every public mode: the settings (Params, sampler, clip skip), the pictures
and masks, the refiner, and the run's estimated time and memory against `lab.limits`. Each check raises a
LabkitError naming the fix; nothing is loaded, drawn or changed before all of them pass."""

import math
import os

from . import checks
from .errors import BadInput
from .params import Params


def settings(lab, params, prompt, overrides: dict) -> Params:
    """`params` (or defaults) with `prompt` and `overrides` applied and checked: every setting's type and range
    (`Params`), the sampler, schedule and eta against diffusers, clip_skip against the Lab's text encoders."""
    from .samplers import check

    if params is not None and not isinstance(params, Params):
        raise BadInput(params_hint(params))
    p = params or Params()
    if prompt is not None:
        overrides["prompt"] = checks.text("prompt", prompt)
    p = p.replace(**overrides) if overrides else p.validate()
    check(p.sampler, p.schedule, p.eta)
    layers = min(lab.components[name].config.num_hidden_layers for name in lab.family_record.text_encoders)
    if p.clip_skip > layers:
        raise BadInput(f"clip_skip={p.clip_skip}: A1111 counts from 1 (last layer); this model's text encoder "
                       f"has {layers} layers. Use 1 or 2.")
    return p


def params_hint(params) -> str:
    """Why `params=` got something other than a Params, and what to pass."""
    if isinstance(params, str):
        return ("params= takes a labkit.Params, not text: the argument after the prompt is params. Pass the "
                "negative prompt by name: negative_prompt='...'.")
    if isinstance(params, dict):
        return "params= takes a labkit.Params, not a dict: pass the settings as keywords (**settings) or Params(**d)."
    return f"params= takes a labkit.Params (or None), not {checks.kind(params)}."


def mode(lab, name: str) -> None:
    """BadInput when the Lab's family cannot run pipeline mode `name` (a refiner alone cannot draw from text)."""
    if lab.family_record.pipeline(name) is None:
        raise BadInput(f"A {lab.family} model cannot run {name}: a refiner refines. Use it as "
                       f"`refiner=` of a base txt2img call, or call img2img/inpaint on it.")


def refiner(lab, other) -> None:
    """BadInput unless `other` is a Lab whose family can finish `lab`'s latents."""
    if not (hasattr(other, "family_record") and hasattr(other, "loras")):
        hint = (f"pass refiner=labkit.open({str(other)!r})" if isinstance(other, (str, os.PathLike))
                else "pass refiner=labkit.open(name or path)")
        raise BadInput(f"refiner= takes a Lab, not {checks.kind(other)}: {hint}.")
    fits = lab.family_record.refiners
    if other.family not in fits:
        hint = f"a {' or '.join(fits)} model" if fits else "none: only SDXL-layout bases hand off to a refiner"
        raise BadInput(f"Refiner {other.name or other.family!r} ({other.family}) does not fit a "
                       f"{lab.family} base: its UNet works on another latent space or conditioning. "
                       f"Fitting refiner: {hint}.")


def call(lab, p: Params, kind: str, *, image=None, mask=None, refiner_lab=None, on_step=None, size=None,
         hires_lab=None):
    """What every public mode (`kind`: txt2img, img2img, inpaint, outpaint) checks before any work; returns
    (image, mask) as 8-bit PIL images (or None). `size`: the picture's (width, height) when neither `p` nor the
    image gives it (outpainting's canvas)."""
    from . import images as im
    from . import limits

    checks.callback("on_step", on_step)
    mode(lab, "inpaint" if lab.variant == "inpaint" or kind == "outpaint" else kind)
    if refiner_lab is not None:
        refiner(lab, refiner_lab)
    if kind != "txt2img":
        image = im.normalize(image, "image")
        if int(p.steps * p.strength) < 1:  # diffusers runs int(steps * strength) steps from an image
            raise BadInput(f"steps={p.steps} with strength={p.strength:g} leaves no step to run ({kind} runs "
                           f"int(steps x strength) = 0 steps): use steps={math.ceil(1 / p.strength)} or more, or "
                           f"a higher strength.")
    if kind == "inpaint":
        mask = im.check_mask(mask, image)
        if p.only_masked:
            im.check_painted(mask)
    if size is None and image is not None:
        size = im.target_size(image, p.width, p.height, lab.vae_scale)[:2]
    width, height = size or (p.width or lab.native_size, p.height or lab.native_size)
    limits.check(lab, p.replace(width=width, height=height), "txt2img" if kind == "txt2img" else "img2img",
                 refiner_lab)
    if p.hires or hires_lab is not None:
        hires(lab, p, kind, width, height, hires_lab)
    return image, mask


def hires(lab, p: Params, kind: str, width: int, height: int, hires_lab) -> None:
    """Hires fix's checks: txt2img only, a target bigger than the first pass, a known upscaler, the second pass
    within the limits (estimated at the target size)."""
    from . import limits
    from .hires import check

    if not p.hires:
        raise BadInput("hires_lab= runs hires fix's second pass: it needs hires=True.")
    if kind != "txt2img" or lab.variant == "inpaint":
        what = "an inpainting model" if kind == "txt2img" else kind
        raise BadInput(f"hires=True is txt2img's hires fix; {what} has none (A1111 ignores its hires fields there). "
                       f"Set hires=False, or upscale first (labkit.upscale) and run {kind} at the bigger size.")
    found = check(lab, p, width, height, hires_lab)
    second = p.replace(width=found.out_width, height=found.out_height, steps=p.hires_steps or p.steps, hires=False)
    limits.check(hires_lab or lab, second, "img2img")


def refiner_requests(requests) -> list:
    """`refiner_loras=` as [(path or name, weight)], checked before anything is loaded."""
    if not isinstance(requests, (list, tuple)):
        raise BadInput(f"refiner_loras= takes a list of paths or (path, weight) pairs, e.g. "
                       f"refiner_loras=['detail.safetensors'], not {checks.kind(requests)}.")
    out = []
    for request in requests:
        if isinstance(request, tuple) and len(request) != 2:
            raise BadInput(f"refiner_loras: {request!r} is not a (path, weight) pair.")
        path, weight = request if isinstance(request, tuple) else (request, 1.0)
        out.append((checks.path("refiner_loras", path), checks.real("refiner_loras weight", weight)))
    return out
