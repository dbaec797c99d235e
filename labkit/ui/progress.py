"""StepPreview: a progress bar, a cheap preview of the latents at every step, and an Interrupt button."""

import threading
from time import perf_counter

import ipywidgets as w

from .common import image_widget, png, with_summary


class StepPreview(w.VBox):
    """Pass `preview.on_step` as a Lab call's `on_step`: it shows step i/n and the picture so far, and returns
    False (stop after this step) once Interrupt was pressed. `start(total)` before, `finish()` after a run.

    A preview is drawn at a step once `interval` seconds passed since the last one: every step of a real
    model's run (steps take longer than that), a few per run on the toy model, whose whole run takes a quarter
    second and whose previews would otherwise cost more than the steps. `interval=0` previews every step."""

    def __init__(self, lab=None, mode: str = "auto", interval: float = 0.1, width: int = 192):
        self.lab, self.interval = lab, interval
        self._previewer = None
        self._mode = mode
        self._stop = threading.Event()
        self.bar = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width=f"{width}px"))
        self.status = w.Label("idle")
        self.status.add_class("labkit-step-status")
        self.image = image_widget(width)
        self.image.add_class("labkit-step-preview")
        self.image.layout.display = "none"  # only while a run goes: the finished picture is shown once, above
        self.interrupt_button = w.Button(description="Interrupt", disabled=True, tooltip="stop after this step")
        self.interrupt_button.add_class("labkit-interrupt")
        self.interrupt_button.on_click(lambda _: self.interrupt())
        self.steps_done = 0
        self.interrupted = False
        self._t0 = perf_counter()  # finish() may come before any start() (an error before a run)
        super().__init__([w.HBox([self.bar, self.interrupt_button]), self.status, self.image])

    def set_lab(self, lab) -> None:
        """Preview another model's latents (the Studio switched models)."""
        self.lab, self._previewer = lab, None

    @property
    def previewer(self):
        if self._previewer is None and self.lab is not None:
            from ..preview import Previewer

            self._previewer = Previewer(self.lab, self._mode)
        return self._previewer

    def start(self, total: int | None = None) -> None:
        self._stop.clear()
        self.interrupted, self.steps_done, self._t0 = False, 0, perf_counter()
        self._last_preview = self._t0
        self.previews = 0
        self.bar.max, self.bar.value = max(1, total or 1), 0
        self.status.value = "starting"
        self.interrupt_button.disabled, self.interrupt_button.button_style = False, "warning"
        self.image.layout.display = None

    def interrupt(self) -> None:
        """Ask the running generation to stop after its current step."""
        self._stop.set()
        self.status.value = "interrupting after this step"

    def on_step(self, step: int, total: int, latents) -> bool:
        """The Lab's per-step callback: update the bar and preview; False once Interrupt was pressed."""
        self.steps_done = step + 1
        self.bar.max, self.bar.value = max(1, total), step + 1
        elapsed = perf_counter() - self._t0
        left = elapsed / (step + 1) * (total - step - 1)
        self.status.value = f"step {step + 1}/{total}, {elapsed:.1f} s, about {left:.1f} s left (preview below)"
        now = perf_counter()
        if self.previewer is not None and now - self._last_preview >= self.interval and step + 1 < total:
            self.image.value = png(self.previewer(latents))
            self._last_preview, self.previews = perf_counter(), self.previews + 1
        if self._stop.is_set():
            self.interrupted = True
            return False
        return True

    def finish(self, note: str = "") -> None:
        self.interrupt_button.disabled, self.interrupt_button.button_style = True, ""  # idle looks idle
        self.image.layout.display = "none"
        done = f"interrupted after step {self.steps_done}" if self.interrupted else "done"
        self.status.value = f"{done}, {perf_counter() - self._t0:.2f} s" + (f" — {note}" if note else "")

    def _repr_mimebundle_(self, **kwargs):
        return with_summary(super()._repr_mimebundle_(**kwargs),
                            [f"StepPreview: {self.status.value} ({self.bar.value}/{self.bar.max})"])
