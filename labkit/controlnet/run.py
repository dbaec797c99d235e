"""One generation's ControlNet units, ready: each unit's control map (made once, at the generation size), the
UNet hook attached for the denoising loop, and what the Result records (the units without their pictures, their
models as A1111's "name [hash]", the maps, and notes saying which steps each unit acted in)."""

from contextlib import contextmanager

from ..errors import BadInput
from .hook import ControlHook, Prepared
from .preprocess import PREPROCESSORS
from .units import active


class ControlRun:
    """Made by `prepare`; `attached(pipe, total)` hooks the pipeline's UNet while the loop runs."""

    def __init__(self, prepared: list, maps: list, recorded: tuple, notes: list, cfg: bool):
        self.prepared, self.maps, self.recorded, self.notes, self.cfg = prepared, maps, recorded, notes, cfg
        self.hook = None

    @contextmanager
    def attached(self, pipe, total):
        """The hook on `pipe.unet` for the loop; `total`: the sampling steps the rule counts (an int, or None for
        the steps the pipeline runs, which img2img's strength shortens, as A1111 counts them)."""
        order = getattr(pipe.scheduler, "order", 1)
        self.hook = ControlHook(self.prepared, total if total else lambda: steps_run(pipe, order), self.cfg, order)
        handle = self.hook.attach(pipe.unet)
        try:
            yield self.hook
        finally:
            handle.remove()

    def step_notes(self) -> list[str]:
        """Which sampling steps each unit acted in, by A1111's rule (said in the Result's notes)."""
        if self.hook is None or not self.hook.total_steps:
            return []
        total, out = self.hook.total_steps, []
        for k, unit in enumerate(self.prepared):  # step i's first model call counts as A1111's step max(i - 1, 0)
            steps = [i for i in range(total) if active(max(i - 1, 0), total, unit.start, unit.end)]
            span = f"steps {steps[0]}-{steps[-1]} of {total}" if steps else f"no step of {total}"
            out.append(f"ControlNet {k} ({unit.title}): weight {unit.weight:g}, {unit.mode}, acted in {span} "
                       f"(A1111's rule: start <= step / steps <= end)")
        return out


def steps_run(pipe, order: int) -> int:
    """The sampling steps a pipeline's loop runs (its model calls, counted per step for second-order samplers)."""
    calls = pipe.num_timesteps
    return (calls + 1) // 2 if order == 2 else calls


def filled(unit, title: str):
    """The unit as a recipe records it: no picture, its model's "name [hash]", the module's slider values."""
    module = PREPROCESSORS[unit.module]
    values = {}
    for name, slider in (("threshold_a", module.a), ("threshold_b", module.b)):
        given = getattr(unit, name)
        values[name] = None if slider is None else float(given if given is not None else slider[1])
    return unit.settings().replace(model=title, **values)


def for_lab(lab, p, mode: str, image) -> ControlRun | None:
    """The ControlRun of a Lab's call with Params `p` (None when no unit is enabled); `image` the init picture."""
    units = [u for u in p.control if u.enabled]
    if not units:
        return None
    return prepare(lab.controlnets, units, p.width, p.height, init_image=image if mode != "txt2img" else None,
                   cfg=p.cfg > 1, xl=lab.layout == "xl")


def record(run: ControlRun | None, p, notes: list, refiner) -> tuple:
    """(Params with the units as recorded, the control maps) after a run; notes say how the units acted."""
    if run is None:
        return p, []
    notes += run.notes + run.step_notes()
    if refiner is not None:
        notes.append("ControlNet acted on the base model's steps only; once the refiner takes over the units stop, "
                     "as in A1111 (its ControlNet hook stays on the base UNet)")
    return p.replace(control=run.recorded), run.maps


def prepare(controlnets, units, width: int, height: int, *, init_image=None, cfg: bool, xl: bool) -> ControlRun:
    """A ControlRun for the enabled `units` at width x height. A unit without a picture takes the init picture in
    img2img and inpaint, as A1111's extension does; in txt2img it is an error naming the fix."""
    import numpy as np
    import torch

    from .prepare import control_map

    prepared, maps, recorded, notes = [], [], [], []
    for k, unit in enumerate(u for u in units if u.enabled):
        picture = unit.image if unit.image is not None else init_image
        if picture is None:
            raise BadInput(f"ControlNet unit {k} ({unit.model}) has no picture: give ControlUnit(image=...) (an edge "
                           f"map, a sketch, or a picture its module preprocesses; in img2img and inpaint the input "
                           f"picture is used when a unit has none, as A1111 does).")
        model, info = controlnets.get(unit.model)
        control, unit_notes = control_map(unit, picture, width, height)
        tensor = torch.from_numpy(np.array(control)).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W) in [0, 1]
        prepared.append(Prepared(model, tensor, unit.weight, unit.guidance_start, unit.guidance_end,
                                 unit.control_mode, xl, info.title))
        maps.append(control)
        recorded.append(filled(unit, info.title))
        notes += [f"ControlNet {k}: {note}" for note in unit_notes]
    return ControlRun(prepared, maps, tuple(recorded), notes, cfg)
