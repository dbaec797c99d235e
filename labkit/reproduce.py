"""Regenerate an image from the recipe in its file, and say exactly what could and could not be honoured."""

from dataclasses import dataclass, field

from .errors import BadInput

# samplers whose every step draws fresh noise: other tools' per-step noise streams cannot be matched bit for bit
STOCHASTIC = ("Euler a", "DPM2 a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE", "LCM")
# Params fields the report lists as honoured when the run used them as the recipe gave them
REPORTED = ("prompt", "negative_prompt", "steps", "cfg", "sampler", "schedule", "seed", "width", "height",
            "clip_skip", "strength", "switch_at", "noise", "emphasis")


@dataclass
class Report:
    """`honoured`: fields used as written; `differs`: {field: why it cannot match}; `ignored`: fields labkit has
    no setting for, with their values; `tool`: which program wrote the recipe."""

    tool: str
    honoured: list = field(default_factory=list)
    differs: dict = field(default_factory=dict)
    ignored: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"recipe written by {self.tool}", f"honoured: {', '.join(self.honoured) or '-'}"]
        lines += [f"differs: {k}: {why}" for k, why in self.differs.items()]
        if self.ignored:
            lines.append("ignored: " + ", ".join(f"{k}={v}" for k, v in self.ignored.items()))
        return "\n".join(lines)


def _used(mode: str, refiner) -> list:
    """The reported fields a run of `mode` uses: strength only from a picture, switch_at only with a refiner."""
    return [f for f in REPORTED if not (f == "strength" and mode == "txt2img") and
            not (f == "switch_at" and refiner is None)]


def reproduce(lab, source, *, image=None, mask=None, refiner=None, **overrides):
    """Run the recipe of `source` (path, PIL image, bytes or infotext) on `lab`; returns a Result whose
    `.report` says what was honoured and what differs. `overrides` replace recipe fields (e.g. sampler=)."""
    from . import samplers
    from .noise import effective_mode
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
    if p.sampler in STOCHASTIC and recipe.tool != "labkit":  # labkit's own step noise repeats for a seed
        report.differs["sampler"] = (f"{p.sampler} draws new noise at every step; {recipe.tool}'s per-step noise "
                                     f"stream cannot be matched bit for bit, so the picture will be similar, not equal")
    if effective_mode(p.noise)[0] != p.noise:
        report.differs["noise"] = "the recipe used A1111's GPU noise; without CUDA labkit drew CPU noise"
    run = _runner(lab, recipe.mode, image, mask, refiner, recipe, report)
    result = run(params=p.replace(model=lab.name))
    used = _used(recipe.mode, refiner)
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
    for lora in recipe.loras:
        report.differs.setdefault("loras", "")
        report.differs["loras"] += f"{lora.get('name')} (weight {lora.get('weight')}) must be loaded for a match; "


def _runner(lab, mode: str, image, mask, refiner, recipe, report: Report):
    """The Lab method that reproduces `mode`, with the inputs the recipe cannot carry."""
    if recipe.model.get("refiner") and refiner is None:
        report.differs["refiner"] = f"the recipe used refiner {recipe.model['refiner']}; pass refiner=<Lab> to use it"
    if mode == "txt2img":
        return lambda params: lab.txt2img(params=params, refiner=refiner)
    if image is None:
        raise BadInput(f"The recipe is an {mode} run: its init image is not in the file. Pass image= (and mask= for "
                       f"inpainting) to reproduce it.\n{report}")
    if mode == "img2img":
        return lambda params: lab.img2img(image, params=params, refiner=refiner)
    if mask is None:
        raise BadInput(f"The recipe is an inpaint run: pass mask= as well as image=.\n{report}")
    return lambda params: lab.inpaint(image, mask, params=params, refiner=refiner)
