"""HiresPanel: A1111's "Hires. fix" settings in the Studio (txt2img), and an "upscale" action on the picture shown.

The panel only edits a `Params` (`apply` / `show`); the upscale action calls `labkit.upscale` on the picture the
Studio shows and hands the bigger picture back (it becomes the Studio's input picture for img2img / inpaint)."""

import html
from time import perf_counter

import ipywidgets as w

from ..params import Params
from .common import image_widget, png, with_summary

SAME = "same as first pass"
STYLE = {"description_width": "110px"}


class HiresPanel(w.VBox):
    """Hires fix: upscale by / resize to, upscaler, steps, denoise, and optionally another sampler, schedule, CFG
    and prompts for the second pass; `upscale` below it makes the shown picture bigger with any upscaler."""

    def __init__(self, params: Params | None = None, picture=None, use_picture=None, upscaler_names=None):
        from .. import samplers
        from ..upscalers import names

        p = params or Params()
        self.picture, self.use_picture = picture or (lambda: None), use_picture or (lambda image: None)
        self.upscaler_names = upscaler_names or names
        self.enabled = w.Checkbox(p.hires, description="hires fix", indent=False)
        self.enabled.add_class("labkit-hires-enabled")
        self.upscaler = w.Dropdown(options=self.upscaler_names(), value=p.hires_upscaler, description="upscaler",
                                   style=STYLE, layout={"width": "360px"})
        self.scale = w.FloatSlider(p.hires_scale, min=1.05, max=4.0, step=0.05, description="upscale by",
                                   style=STYLE, layout={"width": "360px"})
        self.resize_x = w.BoundedIntText(p.hires_resize_x, min=0, max=8192, step=8, description="resize width",
                                         style=STYLE, layout={"width": "200px"}, tooltip="0: use 'upscale by'")
        self.resize_y = w.BoundedIntText(p.hires_resize_y, min=0, max=8192, step=8, description="resize height",
                                         style=STYLE, layout={"width": "200px"}, tooltip="0: follow the aspect")
        self.steps = w.IntSlider(p.hires_steps, min=0, max=150, description="hires steps", style=STYLE,
                                 layout={"width": "360px"}, tooltip="0: as many as the first pass")
        # A1111's hires denoise starts at 0.7 (its img2img strength at 0.75, labkit's Params default)
        self.denoise = w.FloatSlider(p.strength if p.hires else 0.7, min=0.01, max=1.0, step=0.01,
                                     description="denoise", style=STYLE, layout={"width": "360px"})
        self.sampler = w.Dropdown(options=[SAME, *samplers.names()], value=p.hires_sampler or SAME,
                                  description="hires sampler", style=STYLE, layout={"width": "360px"})
        self.schedule = w.Dropdown(options=[SAME, *samplers.schedules()], value=p.hires_schedule or SAME,
                                   description="hires schedule", style=STYLE, layout={"width": "360px"})
        self.cfg = w.FloatText(p.hires_cfg or 0.0, description="hires CFG", style=STYLE, layout={"width": "200px"},
                               tooltip="0: the first pass's CFG")
        self.prompt = w.Textarea(p.hires_prompt, placeholder="hires prompt (empty: the first pass's)", rows=2,
                                 layout={"width": "auto"})
        self.negative = w.Textarea(p.hires_negative_prompt, rows=2, layout={"width": "auto"},
                                   placeholder="hires negative prompt (empty: the first pass's)")
        self.size_note = w.HTML()
        self._upscale_parts()
        for widget, name in ((self.upscaler, "upscaler"), (self.steps, "steps"), (self.denoise, "denoise")):
            widget.add_class(f"labkit-hires-{name}")
        super().__init__([self.enabled, self.upscaler, self.scale, w.HBox([self.resize_x, self.resize_y]),
                          self.size_note, self.steps, self.denoise, self.sampler, self.schedule, self.cfg,
                          self.prompt, self.negative, w.HTML("<hr><b>upscale the picture shown</b>"),
                          w.HBox([self.upscale_with, self.upscale_by]), self.upscale_button, self.upscale_message,
                          self.upscaled])
        self.add_class("labkit-hires")

    def _upscale_parts(self) -> None:
        self.upscale_with = w.Dropdown(options=self.upscaler_names(latent=False), value="Lanczos",
                                       description="upscaler", style={"description_width": "70px"},
                                       layout={"width": "260px"})
        self.upscale_with.add_class("labkit-upscale-with")
        self.upscale_by = w.FloatText(2.0, description="by", style={"description_width": "30px"},
                                      layout={"width": "110px"})
        self.upscale_button = w.Button(description="upscale", tooltip="the picture shown, as the new input picture")
        self.upscale_button.add_class("labkit-upscale")
        self.upscale_message = w.HTML()
        self.upscale_message.add_class("labkit-upscale-message")
        self.upscaled = image_widget(128)
        self.upscaled.add_class("labkit-upscaled")
        self.upscaled.layout.display = "none"
        self.upscale_button.on_click(lambda _: self.upscale())

    @property
    def controls(self) -> list:
        """The value widgets (what a "live" Studio observes)."""
        return [self.enabled, self.upscaler, self.scale, self.resize_x, self.resize_y, self.steps, self.denoise,
                self.sampler, self.schedule, self.cfg, self.prompt, self.negative]

    def rescan(self) -> None:
        """List the upscalers again (model files added to the folders since)."""
        for dropdown, latent in ((self.upscaler, True), (self.upscale_with, False)):
            value = dropdown.value
            dropdown.options = self.upscaler_names(latent=latent)
            dropdown.value = value if value in dropdown.options else dropdown.options[0]

    def apply(self, params: Params) -> Params:
        """`params` with hires fix as set here (off: only `hires=False`; the other fields keep their values)."""
        if not self.enabled.value:
            return params.replace(hires=False)
        return params.replace(
            hires=True, hires_upscaler=self.upscaler.value, hires_scale=round(self.scale.value, 2),
            hires_resize_x=self.resize_x.value, hires_resize_y=self.resize_y.value, hires_steps=self.steps.value,
            strength=round(self.denoise.value, 3),
            hires_sampler="" if self.sampler.value == SAME else self.sampler.value,
            hires_schedule="" if self.schedule.value == SAME else self.schedule.value,
            hires_cfg=round(self.cfg.value, 2) or None, hires_prompt=self.prompt.value,
            hires_negative_prompt=self.negative.value)

    def show(self, params: Params) -> None:
        """Set the controls from `params` (a restored result or recipe)."""
        if params.hires_upscaler not in self.upscaler.options:
            self.upscaler.options = [*self.upscaler.options, params.hires_upscaler]  # run will say it is missing
        self.upscaler.value, self.scale.value = params.hires_upscaler, min(max(params.hires_scale, 1.05), 4.0)
        self.resize_x.value, self.resize_y.value = params.hires_resize_x, params.hires_resize_y
        self.steps.value = params.hires_steps
        self.sampler.value = params.hires_sampler if params.hires_sampler in self.sampler.options else SAME
        self.schedule.value = params.hires_schedule if params.hires_schedule in self.schedule.options else SAME
        self.cfg.value = params.hires_cfg or 0.0
        self.prompt.value, self.negative.value = params.hires_prompt, params.hires_negative_prompt
        if params.hires:
            self.denoise.value = params.strength
        self.enabled.value = params.hires

    def describe(self, width: int, height: int, cell: int = 8) -> None:
        """Say what size the second pass draws for a first pass of width x height."""
        from ..hires import target

        if not self.enabled.value:
            self.size_note.value = ""
            return
        try:
            found = target(width, height, self.apply(Params()), cell)
        except Exception as error:  # noqa: BLE001 - a half-set value: the run reports it properly
            self.size_note.value = f"<small>{html.escape(str(error))}</small>"
            return
        self.size_note.value = (f"<small>{width}x{height} → {found.out_width}x{found.out_height} "
                                f"(second pass)</small>")

    def upscale(self):
        """Upscale the picture shown with the chosen upscaler; it becomes the Studio's input picture."""
        from ..upscalers import upscale

        picture = self.picture()
        if picture is None:
            self.upscale_message.value = "<small>Nothing to upscale yet: generate a picture first.</small>"
            return None
        try:
            t = perf_counter()
            bigger = upscale(picture, self.upscale_with.value, self.upscale_by.value)
        except Exception as error:  # noqa: BLE001 - shown where the user pressed the button
            self.upscale_message.value = f"<span class='labkit-error'>{html.escape(str(error))}</span>"
            return None
        self.upscaled.value = png(bigger)
        self.upscaled.layout.display = None
        self.upscaled.layout.width = f"{min(bigger.width, 512)}px"
        self.upscale_message.value = (f"<small>{picture.width}x{picture.height} → {bigger.width}x{bigger.height} "
                                      f"with {html.escape(self.upscale_with.value)} in {perf_counter() - t:.2f} s: "
                                      f"now the input picture (img2img / inpaint).</small>")
        self.use_picture(bigger)
        return bigger

    def _repr_mimebundle_(self, **kwargs):
        state = (f"on: {self.upscaler.value}, x{self.scale.value:g}, {self.steps.value} steps, denoise "
                 f"{self.denoise.value:g}" if self.enabled.value else "off")
        return with_summary(super()._repr_mimebundle_(**kwargs), [f"HiresPanel: {state}"])
