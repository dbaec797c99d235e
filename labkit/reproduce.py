"""Regenerate an image from the recipe in its file, and say exactly what could and could not be honoured.

Nothing is reported as honoured on faith: a field is honoured when the run used it as the recipe gave it, and
everything else that changes pixels is listed under `differs` with the reason: the model, LoRAs that could not be
found, a noise stream another tool draws differently, precision the recipe does not record, sampling labkit has
not been checked against the tool for.
"""

from dataclasses import dataclass, field

from .errors import BadInput

# samplers whose every step draws fresh noise
STOCHASTIC = ("Euler a", "DPM2 a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE", "LCM")
# tool -> the stochastic samplers whose noise stream labkit does reproduce (measured: docs/parity.md): A1111 draws
# Euler a's step noise from the picture's own generator, as labkit does
MATCHED_STREAMS = {"A1111": ("Euler a",), "Forge": ("Euler a",)}
# Params fields the report lists as honoured when the run used them as the recipe gave them
REPORTED = ("prompt", "negative_prompt", "steps", "cfg", "sampler", "schedule", "seed", "width", "height",
            "clip_skip", "strength", "switch_at", "noise", "sgm_noise_multiplier", "emphasis")
# tool -> what it runs in half precision on a GPU by default (a recipe never says whether it ran on one)
HALF_PRECISION = {
    "A1111": "the UNet and text encoder in float16 (--precision autocast)",
    "Forge": "the UNet and text encoder in float16",
    "ComfyUI": "the text encoder in float16 and the UNet and VAE in float16 or bfloat16",
    "InvokeAI": "the UNet, text encoder and VAE in float16",
    "Fooocus": "the UNet and text encoder in float16",
}


@dataclass
class Report:
    """`honoured`: fields used as written; `differs`: {what: why it cannot match}; `ignored`: fields labkit has
    no setting for, with their values; `loras`: how each of the recipe's LoRAs was applied; `controls`: which of
    its ControlNet units run and how; `tool`: which program wrote the recipe."""

    tool: str
    honoured: list = field(default_factory=list)
    differs: dict = field(default_factory=dict)
    ignored: dict = field(default_factory=dict)
    loras: list = field(default_factory=list)
    controls: list = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"recipe written by {self.tool}", f"honoured: {', '.join(self.honoured) or '-'}"]
        lines += [f"lora: {line}" for line in self.loras]
        lines += [f"controlnet: {line}" for line in self.controls]
        lines += [f"differs: {k}: {why}" for k, why in self.differs.items()]
        if self.ignored:
            lines.append("ignored: " + ", ".join(f"{k}={v}" for k, v in self.ignored.items()))
        return "\n".join(lines)


REPORTED_HIRES = ("hires", "hires_scale", "hires_resize_x", "hires_resize_y", "hires_steps", "hires_upscaler",
                  "hires_sampler", "hires_schedule", "hires_prompt", "hires_negative_prompt", "hires_cfg")


def _used(mode: str, refiner, hires: bool = False) -> list:
    """The reported fields a run of `mode` uses: strength only from a picture or in hires fix, switch_at only with
    a refiner, the hires fields with hires fix."""
    return [f for f in REPORTED + (REPORTED_HIRES if hires else ()) if not (f == "strength" and mode == "txt2img"
            and not hires) and not (f == "switch_at" and refiner is None)]


def reproduce(lab, source, *, image=None, mask=None, refiner=None, control_images=None, hires_lab=None,
              **overrides):
    """Run the recipe of `source` (path, PIL image, bytes or infotext) on `lab`; returns a Result whose
    `.report` says what was honoured and what differs. `overrides` replace recipe fields (e.g. sampler=). The
    recipe's LoRAs are applied when found on `lab.loras.search_paths`, by name or else by hash; its ControlNet
    units when their model is found on `lab.controlnets.search_paths` (by name, else by A1111's hash) and their
    picture is given: `control_images`, one per unit in order (A1111 does not save them; in img2img and inpaint
    a unit without one takes the init image, as in A1111). A hires fix recipe runs its second pass too (its
    upscaler found by name, `labkit.upscalers.names()`; `hires_lab=<Lab>` for its "Hires checkpoint")."""
    from . import samplers
    from .recipes import read_recipe

    recipe = read_recipe(source)
    p = recipe.params.replace(**overrides) if overrides else recipe.params
    report = Report(tool=recipe.tool, ignored=dict(recipe.unmapped))
    report.differs.update({f"note {i + 1}": n for i, n in enumerate(recipe.notes)})
    _check_model(lab, recipe, report)
    try:
        samplers.resolve(p.sampler, p.schedule)
    except BadInput as exc:
        raise BadInput(f"The recipe's sampler cannot run here: {exc} Pass sampler=... (and schedule=...) to "
                       f"reproduce with another one.\n{report}") from exc
    prompt, removed = _with_loras(lab, recipe, p.prompt, report)
    if removed:
        report.differs["prompt"] = f"ran without {', '.join(removed)}: the LoRA was not found"
    p = p.replace(prompt=prompt, model=lab.name, control=_controls(lab, p.control, control_images, recipe.mode,
                                                                   report))
    _tool_differences(lab, recipe, p, report)
    run = _runner(lab, recipe.mode, image, mask, refiner, recipe, report, hires_lab)
    result = run(params=p)
    used = _used(recipe.mode, refiner, p.hires)
    report.honoured = [f for f in used if f not in report.differs and getattr(result.params, f) == getattr(p, f)]
    for f in used:
        if f not in report.differs and getattr(result.params, f) != getattr(p, f):
            report.differs[f] = f"recipe {getattr(p, f)!r}, ran {getattr(result.params, f)!r}"
    result.report = report
    return result


def _check_model(lab, recipe, report: Report) -> None:
    want = recipe.model.get("hash")
    have = lab.model_hash
    if want and have and not (have.startswith(want) or want.startswith(have)):
        report.differs["model"] = (f"the recipe's model hash is {want} ({recipe.model.get('name', '?')}); this lab's "
                                   f"is {have} ({lab.name}): another checkpoint draws another picture")
    elif want and not have:
        report.differs["model"] = (f"the recipe names model {recipe.model.get('name', '?')} [{want}]; this lab has "
                                   f"no hash")


def _with_loras(lab, recipe, prompt: str, report: Report) -> tuple[str, list]:
    """(the prompt with a `<lora:name:te:unet>` tag for each of the recipe's LoRAs it does not tag yet (ComfyUI
    keeps them in its graph), the tags removed). A LoRA found only by hash is linked under the recipe's name; one
    not found at all has its tag removed, and the report says so."""
    import re

    from .prompts import extract_networks
    from .recipes.infotext import lora_tag

    tagged = {tag.name for tag in extract_networks(prompt)[1]}
    added, removed = [], []
    for lora in recipe.loras:
        name = lora.get("name")
        found = lab.loras.locate(name, lora.get("hash")) if name else None
        if found is None:
            report.differs[f"lora {name}"] = (f"not found on lab.loras.search_paths by name or by hash "
                                              f"({lora.get('hash') or 'none given'}): the picture is drawn without it")
            pattern = rf"\s*<(?:lora|lyco):{re.escape(name)}(?::[^>]*)?>"
            removed += re.findall(pattern, prompt)
            prompt = re.sub(pattern, "", prompt)
            continue
        if found.stem != name:
            lab.loras.link(name, found)
        how = "by name" if found.stem == name else f"by hash as {found.name}"
        if name not in tagged:
            added.append(lora_tag({**lora, "name": name}))
        report.loras.append(f"{name} found {how}, applied as {lora_tag(lora) if name not in tagged else 'tagged'}")
    return (" ".join([prompt, *added]) if added else prompt), [tag.strip() for tag in removed]


def _controls(lab, units, images, mode: str, report: Report) -> tuple:
    """The recipe's ControlNet units that can run here, with their pictures; the others said in the report."""
    from .errors import LabkitError

    images = [images] if images is not None and not isinstance(images, (list, tuple)) else list(images or [])
    kept = []
    for k, unit in enumerate(units):
        picture = images[k] if k < len(images) else None
        if picture is None and mode == "txt2img":
            report.differs[f"ControlNet {k}"] = (f"{unit.model}: its control picture is not in the recipe (A1111 does "
                                                 f"not save it): pass control_images=[...]; drawn without the unit")
            continue
        try:
            info = lab.controlnets.load(unit.model)
        except LabkitError as error:
            report.differs[f"ControlNet {k}"] = (f"{unit.model} not used: {error} The picture is drawn without "
                                                 f"the unit")
            continue
        report.controls.append(f"ControlNet {k}: {unit.model} found as {info.path.name}, {unit.module}, weight "
                            f"{unit.weight:g}")
        kept.append(unit.replace(model=info.title, image=picture))
    return tuple(kept)


def _tool_differences(lab, recipe, p, report: Report) -> None:
    """What another tool does that labkit cannot know or match: noise streams, GPU noise without CUDA, the
    precision it ran in, sampling not checked against it."""
    from .noise import effective_mode

    if recipe.tool == "labkit":
        return
    if p.sampler in STOCHASTIC and p.sampler not in MATCHED_STREAMS.get(recipe.tool, ()):
        report.differs["sampler"] = (f"{p.sampler} draws new noise at every step; {recipe.tool}'s per-step noise "
                                     f"stream cannot be matched bit for bit, so the picture will be similar, not equal")
    if recipe.mode == "inpaint":
        report.differs["inpaint"] = (f"{recipe.tool} keeps the unmasked area its own way while it samples; labkit "
                                     f"follows diffusers' inpaint pipeline there (docs/parity.md)")
    if p.cfg < 1:
        report.differs["cfg"] = (f"CFG {p.cfg} is below 1: {recipe.tool} extrapolates toward the negative prompt, "
                                 f"diffusers turns guidance off")
    if effective_mode(p.noise)[0] != p.noise:
        report.differs["noise"] = "the recipe used A1111's GPU noise; without CUDA labkit drew CPU noise"
    half = HALF_PRECISION.get(recipe.tool)
    if half and lab.dtype == "float32":
        report.differs["precision"] = (f"on an NVIDIA GPU {recipe.tool} runs {half} by default, on a CPU in float32; "
                                       f"the recipe does not say which, and this Lab runs float32: expect "
                                       f"differences of a few levels if it ran on a GPU")


def _runner(lab, mode: str, image, mask, refiner, recipe, report: Report, hires_lab=None):
    """The Lab method that reproduces `mode`, with the inputs the recipe cannot carry."""
    if recipe.model.get("refiner") and refiner is None:
        report.differs["refiner"] = f"the recipe used refiner {recipe.model['refiner']}; pass refiner=<Lab> to use it"
    if mode == "txt2img":
        return lambda params: lab.txt2img(params=params, refiner=refiner, hires_lab=hires_lab)
    if image is None:
        raise BadInput(f"The recipe is an {mode} run: its init image is not in the file. Pass image= (and mask= for "
                       f"inpainting) to reproduce it.\n{report}")
    if mode == "img2img":
        return lambda params: lab.img2img(image, params=params, refiner=refiner)
    if mask is None:
        raise BadInput(f"The recipe is an inpaint run: pass mask= as well as image=.\n{report}")
    return lambda params: lab.inpaint(image, mask, params=params, refiner=refiner)
