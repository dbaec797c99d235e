"""ControlNetPanel: A1111's ControlNet units in the Studio. Each unit takes a picture (upload, the current result,
or a scribble drawn on a blank canvas), shows its preprocessor's map, and has the extension's settings: model,
preprocessor and its sliders, weight, start / end, control mode, resize mode, pixel perfect. The panel only
builds `labkit.ControlUnit`s; the Studio puts them in the Params it runs."""

import html
import io

import ipywidgets as w

from .common import image_widget, png, with_summary

UNITS = 3  # A1111's default number of unit tabs
BLANK = (255, 255, 255)  # a scribble canvas: white, strokes painted white on black come out as the map
MODE_TIPS = ("the control on both halves of the guidance, every skip at the weight",
             "soft injection: shallow skips at a tenth of the weight, on both halves",
             "soft injection, and no control on the negative prompt's half: guidance pushes toward the control")


class UnitPanel(w.VBox):
    """One unit: its picture, its map preview and its settings; `unit()` is the ControlUnit (None when off)."""

    def __init__(self, index: int, names, current_picture, size):
        from ..controlnet.preprocess import PREPROCESSORS
        from ..controlnet.units import CONTROL_MODES, RESIZE_MODES

        self.index, self.names, self.current_picture, self.size = index, names, current_picture, size
        self.picture = None
        style = {"description_width": "110px"}
        self.enabled = w.Checkbox(False, description="enable", indent=False)
        self.model = w.Dropdown(options=names(), description="model", style=style, layout={"width": "360px"})
        self.module = w.Dropdown(options=list(PREPROCESSORS), value="none", description="preprocessor", style=style,
                                 layout={"width": "360px"})
        self.weight = w.FloatSlider(1.0, min=0.0, max=2.0, step=0.05, description="weight", style=style)
        self.span = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.01, description="start / end",
                                       style=style)
        self.control_mode = w.ToggleButtons(options=CONTROL_MODES, value="Balanced", style={"button_width": "250px"},
                                            layout={"flex_flow": "row wrap"}, tooltips=list(MODE_TIPS))
        self.resize_mode = w.Dropdown(options=RESIZE_MODES, value="Crop and Resize", description="resize mode",
                                      style=style, layout={"width": "360px"})
        self.pixel_perfect = w.Checkbox(True, description="pixel perfect", indent=False)
        self.processor_res = w.IntSlider(512, min=64, max=2048, step=8, description="resolution", style=style)
        self.threshold_a = w.FloatSlider(100, min=0, max=255, description="threshold A", style=style)
        self.threshold_b = w.FloatSlider(200, min=0, max=255, description="threshold B", style=style)
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="picture")
        self.use_current = w.Button(description="use current picture", tooltip="the Studio's picture shown now")
        self.draw = w.Button(description="draw a scribble", tooltip="a blank canvas: paint strokes, module none")
        self.canvas = None  # a scribble canvas, made when "draw a scribble" is first pressed
        self.source, self.map = image_widget(128), image_widget(128)
        for image, name in ((self.source, "source"), (self.map, "map")):
            image.add_class(f"labkit-control-{name}")
            image.layout.display = "none"
        self.message = w.HTML()
        for widget, name in ((self.upload, "upload"), (self.module, "module"), (self.model, "model"),
                             (self.draw, "draw"), (self.use_current, "use-current"), (self.enabled, "enabled")):
            widget.add_class(f"labkit-control-{name}")
        self._wire()
        self.canvas_box = w.Box()
        super().__init__([self.enabled, w.HBox([self.upload, self.use_current, self.draw]), self.canvas_box,
                          w.HBox([self.source, self.map]), self.message, self.model, self.module, self.threshold_a,
                          self.threshold_b, self.processor_res, self.pixel_perfect, self.weight, self.span,
                          self.control_mode, self.resize_mode])
        self.add_class("labkit-control-unit")
        self._sliders()

    def _wire(self) -> None:
        self.upload.observe(lambda c: self._uploaded(c["new"]), names="value")
        self.use_current.on_click(lambda _: self.set_picture(self.current_picture()))
        self.draw.on_click(lambda _: self.start_scribble())
        self.module.observe(lambda _: (self._sliders(), self.refresh()), names="value")
        for control in (self.threshold_a, self.threshold_b, self.processor_res, self.pixel_perfect, self.resize_mode):
            control.observe(lambda _: self.refresh(), names="value")

    def _sliders(self) -> None:
        """Show the module's sliders under their names, with its defaults; hide the others."""
        from ..controlnet.preprocess import PREPROCESSORS

        module = PREPROCESSORS[self.module.value]
        for slider, spec in ((self.threshold_a, module.a), (self.threshold_b, module.b)):
            slider.layout.display = None if spec else "none"
            if spec:
                slider.description, slider.value = spec[0], spec[1]

    def _uploaded(self, files) -> None:
        from PIL import Image

        if files:
            self.set_picture(Image.open(io.BytesIO(bytes(files[0]["content"]))))

    def set_picture(self, picture) -> None:
        """The unit's picture (None: nothing to use, said in the panel); the unit is enabled with it."""
        from ..images import to_rgb

        if picture is None:
            self.message.value = "<i>no picture yet: generate one, upload one or draw a scribble</i>"
            return
        self.picture = to_rgb(picture)
        self.source.value, self.source.layout.display = png(self.picture), None
        self.enabled.value = True
        self.refresh()

    def start_scribble(self) -> None:
        """A blank canvas at the generation size: strokes painted on it are the map (module none)."""
        from PIL import Image

        from .mask import MaskCanvas

        if self.canvas is None:
            self.canvas = MaskCanvas()
            self.canvas.observe(lambda _: self._scribbled(), names="strokes")
            self.canvas_box.children = (self.canvas,)
        width, height = self.size()
        self.canvas.set_image(Image.new("RGB", (width, height), BLANK))
        self.canvas.brush = max(2, width // 24)  # a pen's line, not the mask brush
        self.module.value = "none"

    def _scribbled(self) -> None:
        if self.canvas is not None and self.canvas.strokes:
            self.set_picture(self.canvas.mask.convert("RGB"))  # white strokes on black

    def unit(self):
        """The ControlUnit these controls describe, or None when the unit is off or has no picture."""
        from ..controlnet.units import ControlUnit

        if not self.enabled.value or self.picture is None or not self.model.value:
            return None
        start, end = self.span.value
        sliders = {name: getattr(self, name).value if getattr(self, name).layout.display != "none" else None
                   for name in ("threshold_a", "threshold_b")}
        return ControlUnit(self.model.value, image=self.picture, module=self.module.value, weight=self.weight.value,
                           guidance_start=round(start, 3), guidance_end=round(end, 3),
                           control_mode=self.control_mode.value, resize_mode=self.resize_mode.value,
                           pixel_perfect=self.pixel_perfect.value, processor_res=self.processor_res.value, **sliders)

    def refresh(self) -> None:
        """Redraw the preprocessor's map at the generation size (or say why it cannot be made)."""
        from ..controlnet.prepare import control_map
        from ..controlnet.units import ControlUnit

        if self.picture is None:
            return
        try:
            unit = self.unit() or ControlUnit("preview", module=self.module.value)
            cmap, notes = control_map(unit, self.picture, *self.size())
        except Exception as error:  # said in the panel: a flat picture or a bad slider value is not a crash
            self.message.value = f"<span class='labkit-error'>{html.escape(str(error))}</span>"
            return
        self.map.value, self.map.layout.display = png(cmap), None
        self.message.value = html.escape("; ".join(notes))

    def show(self, unit) -> None:
        """Set the controls from a recorded unit (its picture stays: recipes do not carry it)."""
        names = self.names()
        self.model.options = names
        model = unit.model.split(" [")[0]
        if model in names:
            self.model.value = model
        self.module.value, self.weight.value = unit.module, unit.weight
        self.span.value = (unit.guidance_start, unit.guidance_end)
        self.control_mode.value, self.resize_mode.value = unit.control_mode, unit.resize_mode
        self.pixel_perfect.value, self.processor_res.value = unit.pixel_perfect, unit.processor_res


class ControlNetPanel(w.VBox):
    """Three unit tabs and a "refresh models" button; `units()` gives the enabled units with pictures."""

    def __init__(self, names, current_picture, size):
        self.names = names
        self.unit_panels = [UnitPanel(i, names, current_picture, size) for i in range(UNITS)]
        self.tabs = w.Tab(self.unit_panels, titles=[f"unit {i}" for i in range(UNITS)])
        self.refresh_models = w.Button(description="refresh models", tooltip="list the ControlNets on the search "
                                                                                "paths again")
        self.refresh_models.on_click(lambda _: self.rescan())
        super().__init__([self.refresh_models, self.tabs])
        self.add_class("labkit-controlnet")

    def rescan(self) -> None:
        names = self.names()
        for panel in self.unit_panels:
            kept = panel.model.value
            panel.model.options = names
            panel.model.value = kept if kept in names else (names[0] if names else None)

    def units(self) -> tuple:
        return tuple(u for u in (p.unit() for p in self.unit_panels) if u is not None)

    def show(self, units) -> None:
        for panel, unit in zip(self.unit_panels, units):
            panel.show(unit)

    def _repr_mimebundle_(self, **kwargs):
        return with_summary(super()._repr_mimebundle_(**kwargs), [f"ControlNetPanel: {len(self.units())} units on"])
