"""PromptPanel and SamplingControls: widgets that edit a `Params`, nothing more."""

import ipywidgets as w

from ..params import Params
from ..prompts.chunks import CHUNK
from .common import with_summary

SIZE_STEP = 8  # the VAE works in 8-pixel cells


def count_text(counts: list[int]) -> str:
    """A1111's token counter: "12/75", or "80/150" once a prompt spills into a second chunk."""
    return f"{sum(counts)}/{CHUNK * max(1, len(counts))}"


class PromptPanel(w.VBox):
    """Prompt and negative prompt, each with a live token count per 75-token chunk (tags removed)."""

    def __init__(self, tokenizer=None, prompt: str = "", negative_prompt: str = "", steps: int = 20):
        self.tokenizer, self.steps = tokenizer, steps
        # width "auto", not "100%": a widget's 2 px margins would then stick out of the column (a sideways scrollbar)
        self.prompt = w.Textarea(value=prompt, placeholder="prompt", rows=3, layout=w.Layout(width="auto"))
        self.negative = w.Textarea(value=negative_prompt, placeholder="negative prompt", rows=2,
                                   layout=w.Layout(width="auto"))
        self.prompt.add_class("labkit-prompt")
        self.negative.add_class("labkit-negative")
        self.prompt_count, self.negative_count = w.Label(), w.Label()
        self.prompt_count.add_class("labkit-token-count")
        super().__init__([self.prompt, self.prompt_count, self.negative, self.negative_count],
                         layout=w.Layout(width="auto"))
        self.prompt.observe(self._recount, names="value")
        self.negative.observe(self._recount, names="value")
        self._recount()

    def counts(self, text: str) -> list[int]:
        """Tokens per chunk of `text` ([] without a tokenizer)."""
        if self.tokenizer is None:
            return []
        from ..prompts import token_counts

        try:
            return token_counts(self.tokenizer, text, self.steps)
        except Exception:  # half-typed syntax must not break typing; the run itself reports real errors
            return []

    def _recount(self, change=None) -> None:
        for text, label in ((self.prompt, self.prompt_count), (self.negative, self.negative_count)):
            counts = self.counts(text.value)
            label.value = f"tokens {count_text(counts)}" + (f" ({len(counts)} chunks)" if len(counts) > 1 else "")

    def apply(self, params: Params) -> Params:
        """`params` with this panel's prompts."""
        return params.replace(prompt=self.prompt.value, negative_prompt=self.negative.value)

    def show(self, params: Params) -> None:
        """Set the text boxes from `params`."""
        self.prompt.value, self.negative.value = params.prompt, params.negative_prompt

    def _repr_mimebundle_(self, **kwargs):
        return with_summary(super()._repr_mimebundle_(**kwargs), [
            f"PromptPanel: prompt {self.prompt.value!r} ({self.prompt_count.value})",
            f"negative {self.negative.value!r} ({self.negative_count.value})"])


def snap(value: int) -> int:
    """The nearest multiple of 8, at least 8."""
    return max(SIZE_STEP, int(value / SIZE_STEP + 0.5) * SIZE_STEP)  # halves round up: 100 -> 104


STEPS_SLIDER_MAX, STEPS_MAX = 150, 1000  # the slider covers A1111's range; the box beside it takes more


class SamplingControls(w.VBox):
    """Steps (slider with a box that takes any count up to 1000), CFG, sampler and schedule, width/height (snapped
    to multiples of 8), seed as A1111 has it (-1: random; a typed number is used as typed; dice: random,
    recycle: the last seed used), batch size, strength (img2img / inpaint) and switch_at (refiner)."""

    def __init__(self, params: Params | None = None, native_size: int = 512, rng=None):
        import random

        from .. import samplers

        p = params or Params()
        self.rng = rng or random.Random()
        self.last_seed = None  # the seed the last run used (the recycle button's)
        style = {"description_width": "90px"}
        wide = {"width": "300px"}  # a dict: each widget gets its own Layout (a shared one hides all at once)
        self.steps_slider = w.IntSlider(min(p.steps, STEPS_SLIDER_MAX), min=1, max=STEPS_SLIDER_MAX,
                                        description="steps", style=style, readout=False, layout=wide)
        self.steps = w.BoundedIntText(p.steps, min=1, max=STEPS_MAX, layout=w.Layout(width="70px"))
        self.steps.add_class("labkit-steps")
        # step 0.05: a restored recipe's CFG 7.25 (ComfyUI's are often so) must not snap to 7.0 in the browser
        self.cfg = w.FloatSlider(p.cfg, min=1.0, max=30.0, step=0.05, description="CFG scale", style=style,
                                 layout={"width": "370px"})
        self.sampler = w.Dropdown(options=samplers.names(), value=p.sampler, description="sampler", style=style,
                                  layout={"width": "230px"})
        self.schedule = w.Dropdown(options=samplers.schedules(), value=p.schedule, description="schedule",
                                   style={"description_width": "60px"}, layout={"width": "180px"})
        self.width = w.BoundedIntText(p.width or native_size, min=8, max=4096, step=SIZE_STEP, description="width",
                                      style=style, layout=w.Layout(width="180px"))
        self.height = w.BoundedIntText(p.height or native_size, min=8, max=4096, step=SIZE_STEP,
                                       description="height", style=style, layout=w.Layout(width="180px"))
        self.seed = w.IntText(p.seed, description="seed", style=style, layout=w.Layout(width="220px"),
                              tooltip="-1: a new random seed every run")
        self.seed.add_class("labkit-seed")
        self.dice = w.Button(icon="random", tooltip="random seed (-1)", layout=w.Layout(width="40px"))
        self.recycle = w.Button(icon="recycle", tooltip="reuse the last seed used", layout=w.Layout(width="40px"))
        self.dice.add_class("labkit-dice")
        self.recycle.add_class("labkit-recycle")
        self.used = w.Label()
        self.used.add_class("labkit-seed-used")
        self.batch = w.IntSlider(p.batch_size, min=1, max=16, description="batch size", style=style,
                                 layout={"width": "370px"})
        self.strength = w.FloatSlider(p.strength, min=0.01, max=1.0, step=0.01, description="strength",
                                      style=style, layout={"width": "370px"})
        self.switch_at = w.FloatSlider(p.switch_at, min=0.05, max=0.95, step=0.05, description="switch at",
                                       style=style, layout={"width": "370px"})
        self.note = w.Label()
        self.dice.on_click(lambda _: self.random_seed())
        self.recycle.on_click(lambda _: self.reuse_seed())
        self.steps_slider.observe(self._slid, names="value")
        self.steps.observe(self._typed, names="value")
        for box in (self.width, self.height):
            box.observe(self._snap, names="value")
        super().__init__([w.HBox([self.steps_slider, self.steps]), self.cfg, w.HBox([self.sampler, self.schedule]),
                          w.HBox([self.width, self.height]), w.HBox([self.seed, self.dice, self.recycle, self.used]),
                          self.batch, self.strength, self.switch_at, self.note])

    def _slid(self, change) -> None:
        if change["new"] != min(self.steps.value, STEPS_SLIDER_MAX):  # not an echo of a typed count
            self.steps.value = change["new"]

    def _typed(self, change) -> None:
        self.steps_slider.value = min(change["new"], STEPS_SLIDER_MAX)

    @property
    def controls(self) -> list:
        """The value widgets (what a "live" Studio observes)."""
        return [self.steps, self.cfg, self.sampler, self.schedule, self.width, self.height, self.seed,
                self.batch, self.strength, self.switch_at]

    def random_seed(self) -> None:
        """The dice: -1, a new random seed every run (A1111's convention)."""
        self.seed.value = -1

    def reuse_seed(self) -> None:
        """The recycle button: the seed the last run used (nothing before a first run)."""
        if self.last_seed is not None:
            self.seed.value = self.last_seed

    def show_used(self, seed: int) -> None:
        """Show the seed a run used (and keep it for the recycle button)."""
        self.last_seed = seed
        self.used.value = f"used {seed}"

    def clear_note(self) -> None:
        self.note.value = ""

    def _snap(self, change) -> None:
        value = change["new"]
        if getattr(self, "_snapping", False):
            return  # the snapped value itself: the note stays
        if not value % SIZE_STEP and self.note.value.startswith(change["owner"].description):
            self.note.value = ""  # a multiple of 8 typed since: the cause is gone
        if value % SIZE_STEP:
            near = snap(value)
            self.note.value = f"{change['owner'].description} {value} is not a multiple of 8: snapped to {near}."
            self._snapping = True
            try:
                change["owner"].value = near
            finally:
                self._snapping = False

    def apply(self, params: Params) -> Params:
        """`params` with these controls' values (the seed as typed: -1 draws a new one each run). A browser's
        slider sends 3.4999999999999996 for 3.5: the fractions are rounded to their slider's precision."""
        return params.replace(steps=self.steps.value, cfg=round(self.cfg.value, 2), sampler=self.sampler.value,
                              schedule=self.schedule.value, width=snap(self.width.value),
                              height=snap(self.height.value), seed=self.seed.value,
                              batch_size=self.batch.value, strength=round(self.strength.value, 3),
                              switch_at=round(self.switch_at.value, 3))

    def show(self, params: Params) -> None:
        """Set the controls from `params` (a restored result: its own seed)."""
        self.steps.value, self.cfg.value = params.steps, params.cfg
        self.sampler.value, self.schedule.value = params.sampler, params.schedule
        if params.width:
            self.width.value = params.width
        if params.height:
            self.height.value = params.height
        self.seed.value = params.seed
        self.batch.value, self.strength.value = params.batch_size, params.strength
        self.switch_at.value = params.switch_at

    def _repr_mimebundle_(self, **kwargs):
        seed = "random" if self.seed.value == -1 else self.seed.value
        return with_summary(super()._repr_mimebundle_(**kwargs), [
            f"SamplingControls: {self.sampler.value} / {self.schedule.value}, {self.steps.value} steps, "
            f"CFG {self.cfg.value}, {self.width.value}x{self.height.value}, seed {seed}, batch {self.batch.value}"])
