"""Hires fix: A1111's two-pass txt2img (modules/processing.py, StableDiffusionProcessingTxt2Img).

The first pass draws the picture at the size the model knows, which settles the composition; the picture (its
latents for the latent modes, its pixels for the other upscalers) is then made bigger and redrawn from part way
into the noise schedule, which adds detail at the new size. As in A1111:
- the target is int(width x hires_scale), or hires_resize_x / hires_resize_y (one of them 0: the aspect ratio
  decides the other); both given: the picture is upscaled to cover that box and its center cut out;
- the second pass draws fresh noise from the same seeds at the new size, and runs exactly hires_steps steps (0:
  the first pass's count), the last ones of a schedule int(steps / min(strength, 0.999)) long;
- its prompt is hires_prompt or the first pass's, and its LoRAs are that prompt's <lora:...> tags (an empty
  hires_prompt keeps the first pass's LoRAs; a hires_prompt without tags turns them off);
- a refiner (SDXL) takes over in the second pass at switch_at (A1111's default "Hires refiner: second pass");
- ControlNet units act in both passes (the extension's default), their maps fitted to each pass's size.
"""

from dataclasses import dataclass, replace
from time import perf_counter

from .errors import BadInput

# Params fields that only the second pass reads ("" or None: the first pass's value)
SECOND_PASS = {"hires_sampler": "sampler", "hires_schedule": "schedule", "hires_prompt": "prompt",
               "hires_negative_prompt": "negative_prompt", "hires_cfg": "cfg"}
HIRES_DEFAULTS = {"hires_scale": 2.0, "hires_resize_x": 0, "hires_resize_y": 0, "hires_steps": 0,
                  "hires_upscaler": "Latent", "hires_sampler": "", "hires_schedule": "", "hires_prompt": "",
                  "hires_negative_prompt": "", "hires_cfg": None, "hires_checkpoint": ""}


@dataclass(frozen=True)
class Target:
    """The second pass's picture: upscaled to (width, height), then `crop` latent cells cut (x, y): the size
    the second pass draws is (out_width, out_height)."""

    width: int
    height: int
    crop_x: int = 0
    crop_y: int = 0
    cell: int = 8

    @property
    def out_width(self) -> int:
        return (self.width // self.cell - self.crop_x) * self.cell

    @property
    def out_height(self) -> int:
        return (self.height // self.cell - self.crop_y) * self.cell


def target(width: int, height: int, p, cell: int = 8) -> Target:
    """A1111's calculate_target_resolution for a first pass of width x height."""
    rx, ry = p.hires_resize_x, p.hires_resize_y
    if rx == 0 and ry == 0:
        return Target(int(width * p.hires_scale), int(height * p.hires_scale), cell=cell)
    if ry == 0:
        return Target(rx, rx * height // width, cell=cell)
    if rx == 0:
        return Target(ry * width // height, ry, cell=cell)
    if rx / ry > width / height:  # the box is wider than the picture: fit the width, cut rows
        w, h = rx, rx * height // width
    else:
        w, h = ry * width // height, ry
    return Target(w, h, (w - rx) // cell, (h - ry) // cell, cell)


def check(lab, p, width: int, height: int, hires_lab=None) -> Target:
    """The target of `p`'s hires fix on `lab` for a first pass of width x height; BadInput naming the fix for a
    target smaller than the first pass, an unknown upscaler or second-pass model."""
    from .upscalers.registry import choose

    found = target(width, height, p, lab.vae_scale)
    if found.out_width < width or found.out_height < height:
        raise BadInput(f"Hires fix to {found.out_width}x{found.out_height} is smaller than the first pass "
                       f"({width}x{height}): hires fix makes pictures bigger. Give hires_resize_x / hires_resize_y "
                       f"of at least the first pass's size, or hires_scale above 1 (resize to 0 x 0).")
    choose(p.hires_upscaler)
    if p.hires_steps == 0 and int(p.steps / min(p.strength, 0.999)) < 1:
        raise BadInput(f"steps={p.steps} with strength={p.strength:g}: the second pass has no step to run.")
    if p.hires_checkpoint and hires_lab is None:
        raise BadInput(f"hires_checkpoint={p.hires_checkpoint!r} names another model for the second pass: open it "
                       f"(second = labkit.open(...)) and pass txt2img(..., hires_lab=second), or set "
                       f"hires_checkpoint='' to use this model.")
    if hires_lab is not None and hires_lab.layout != lab.layout:
        raise BadInput(f"hires_lab is a {hires_lab.family} model, which cannot continue a {lab.family} picture's "
                       f"latents: give a model of the same family ({lab.layout} layout).")
    return found


def second_pass_params(p, first, found: Target, hires_lab=None):
    """The second pass's Params: the request `p` (its ControlNet pictures kept) with the first pass's resolved
    seed, the target size and the hires_* fields in place of the first pass's settings."""
    changes = {field: getattr(p, hires) for hires, field in SECOND_PASS.items() if getattr(p, hires) not in ("", None)}
    model = hires_lab.name if hires_lab is not None else first.model
    return p.replace(**changes, seed=first.seed, noise=first.noise, width=found.out_width, height=found.out_height,
                     steps=p.hires_steps or p.steps, model=model, hires=False, **HIRES_DEFAULTS)


def upscale_latents(latents, upscaler: str, found: Target):
    """First-pass latents (B, C, h, w) resized by a latent mode (A1111's torch interpolate) and center-cut."""
    import torch.nn.functional as F

    from .upscalers.registry import LATENT_MODES

    mode, antialias = LATENT_MODES[upscaler]
    size = (found.height // found.cell, found.width // found.cell)
    out = F.interpolate(latents.float(), size=size, mode=mode, antialias=antialias)
    return cut(out, found)


def cut(latents, found: Target):
    """A1111's center cut of `crop` latent cells (half before, the rest after)."""
    h, w = latents.shape[2:]
    cx, cy = found.crop_x, found.crop_y
    return latents[:, :, cy // 2:h - (cy + 1) // 2, cx // 2:w - (cx + 1) // 2]


def upscale_pictures(lab, pictures, upscaler, found: Target, p2, notes: list):
    """First-pass pictures made target-sized by a pixel or model upscaler (A1111's resize_image; a model is fed
    BGR as A1111 feeds it, RGB for a ComfyUI recipe), center-cut and encoded by the VAE: UNet-space latents
    (B, C, H/8, W/8)."""
    import torch

    from .upscalers.run import resize_with

    left, top = found.crop_x // 2 * found.cell, found.crop_y // 2 * found.cell
    box = (left, top, left + found.out_width, top + found.out_height)
    bgr = p2.noise != "comfy"
    big = [resize_with(picture, upscaler, (found.width, found.height), device=lab.device, bgr=bgr).crop(box)
           for picture in pictures]
    name = getattr(upscaler, "name", upscaler)
    notes.append(f"hires fix: {len(big)} picture(s) upscaled with {name} to {found.width}x{found.height}")
    return torch.cat([lab.encode_image(picture, p2) for picture in big])


def first_pass_steps(on_step, second_steps: int):
    """on_step for the first pass, its total counting the second pass's steps too; `.state` keeps the first
    pass's loop total and whether on_step asked to stop."""
    state = {"total": 0, "stopped": False}

    def callback(step, total, latents):
        state["total"] = total
        answer = on_step(step, total + second_steps, latents)
        state["stopped"] = state["stopped"] or answer is False
        return answer

    callback.state = state
    return callback


def second_pass_steps(on_step, done: int):
    """on_step for the second pass, its steps counted after the first pass's `done`."""

    def callback(step, total, latents):
        return on_step(done + step, done + total, latents)

    return callback


def run(lab, p, *, refiner=None, on_step=None, hires_lab=None):
    """Hires fix on `lab` (checked by the caller): first pass, upscale, second pass; one Result."""
    from .upscalers.registry import choose

    second_lab, t0 = hires_lab or lab, perf_counter()
    first_step = None if on_step is None else first_pass_steps(on_step, p.hires_steps or p.steps)
    first = lab.run_pass("txt2img", p, on_step=first_step, label="txt2img")
    if first_step is not None and first_step.state["stopped"]:
        first.notes.append("hires fix: interrupted in the first pass, so the second pass did not run")
        return first
    found = target(first.params.width, first.params.height, p, lab.vae_scale)
    p2 = second_pass_params(p, first.params, found, hires_lab)
    notes, t = [], perf_counter()
    choice = choose(p.hires_upscaler)
    if choice.kind == "latent":
        init = upscale_latents(first.latents, choice.name, found)
    else:
        init = upscale_pictures(second_lab, first.images, choice, found, p2, notes)
    upscale_time = perf_counter() - t
    second_step = None if on_step is None else second_pass_steps(on_step, first_step.state["total"])
    second = second_lab.run_pass("img2img", p2, refiner=refiner, on_step=second_step, label="txt2img",
                                 init_latents=init, fixed_steps=True)
    return merge(first, second, p, notes, {"upscale": upscale_time, "total": perf_counter() - t0}, hires_lab)


def merge(first, second, p, notes: list, timings: dict, hires_lab=None):
    """One Result of both passes: the second pass's pictures and latents, the request's Params as resolved by
    the first pass (A1111's Size is the first pass's), both passes' timings, notes and LoRAs, the first pass's
    pictures in `first_pass`."""
    params = first.params.replace(hires_checkpoint=hires_lab.name if hires_lab is not None else p.hires_checkpoint)
    loras = tuple(first.model.loras) + tuple(r for r in second.model.loras if r not in first.model.loras)
    stages = {**first.stages, **({"hires": second.stages["base"]} if hires_lab is not None else {}),
              **{k: v for k, v in second.stages.items() if k != "base"}}
    result = replace(second, params=params, mode="txt2img", stages=stages,
                     model=replace(second.model if hires_lab is None else first.model, loras=loras,
                                   refiner=second.model.refiner),
                     notes=first.notes + [n for n in notes + second.notes if n not in first.notes])
    result.timings = {**{f"first pass {k}": v for k, v in first.timings.items() if k != "total"},
                      "first pass": first.timings["total"], "upscale": timings["upscale"],
                      **{f"second pass {k}": v for k, v in second.timings.items() if k != "total"},
                      "second pass": second.timings["total"], "total": timings["total"]}
    result.first_pass = first.images
    result.control_maps = first.control_maps + second.control_maps
    return result
