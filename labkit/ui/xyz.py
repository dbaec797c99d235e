"""XyzPlot: A1111's "X/Y/Z plot" script as a panel over `labkit.grid`. Each axis is a dropdown (a Params field,
"Prompt S/R", the weight of a loaded LoRA, or "model") and a text of values in A1111's syntax ("1-5",
"1-10 (+2)", "10-20 [5]", "Euler, DPM++ 2M"); "run grid" draws the labelled grid into the panel, off the
kernel's thread. `run(axes, confirm)` is the owner's (a Studio runs it on its Lab, mode and settings)."""

import threading

import ipywidgets as w

from .common import image_widget, png, with_summary

FIELDS = ("cfg", "steps", "sampler", "schedule", "seed", "strength", "width", "height", "clip_skip", "eta",
          "negative_prompt", "switch_at")
NONE = "nothing"


class XyzPlot(w.VBox):
    """Three axes and a "run grid" button; `run(axes: {"x": (name, text), ...}, confirm) -> Grid` does the work."""

    def __init__(self, run, lora_names=lambda: []):
        self.run, self.lora_names, self.grid = run, lora_names, None
        self.axes = {}
        rows = []
        for axis in ("x", "y", "z"):
            name = w.Dropdown(options=self.choices(), value=NONE, description=f"{axis} axis",
                              layout=w.Layout(width="240px"))
            values = w.Text(placeholder="values: 1-5, 1-10 (+2), 10-20 [5], Euler, DPM++ 2M",
                            layout=w.Layout(width="360px"))
            name.add_class(f"labkit-xyz-{axis}")
            values.add_class(f"labkit-xyz-{axis}-values")
            name.observe(lambda _: self.refresh_choices(), names="value")
            self.axes[axis] = (name, values)
            rows.append(w.HBox([name, values]))
        self.confirm = w.Checkbox(False, description="run grids over 200 cells", indent=False)
        self.button = w.Button(description="run grid", button_style="primary")
        self.status = w.HTML()
        self.status.add_class("labkit-xyz-status")
        self.image = image_widget(512)
        self.image.layout.display = "none"
        self.image.add_class("labkit-xyz-grid")
        self.thread = None
        self.button.on_click(lambda _: self.start())
        super().__init__([*rows, w.HBox([self.button, self.confirm]), self.status, self.image])

    def choices(self) -> list[str]:
        return [NONE, *FIELDS, "Prompt S/R", *(f"lora:{n}" for n in self.lora_names()), "model"]

    def refresh_choices(self) -> None:
        """Offer the LoRAs loaded now (a dropdown keeps its value when it is still offered)."""
        options = self.choices()
        for name, _ in self.axes.values():
            if list(name.options) != options:
                current = name.value
                name.options = options
                name.value = current if current in options else NONE

    def chosen(self) -> dict:
        """{"x": (name, values text), ...} of the axes set (an axis with a name and no values is refused)."""
        from ..errors import BadInput

        found = {}
        for axis, (name, values) in self.axes.items():
            if name.value == NONE:
                continue
            if not values.value.strip():
                raise BadInput(f"The {axis} axis ({name.value}) has no values: write them as A1111 does, e.g. "
                               f"'2, 4, 7' or '1-10 (+3)'.")
            found[axis] = (name.value, values.value)
        if not found:
            raise BadInput("Pick at least one axis and write its values.")
        return found

    def start(self) -> bool:
        """Run the grid on a worker thread (one at a time); False while one runs."""
        if self.thread is not None and self.thread.is_alive():
            return False
        self.thread = threading.Thread(target=self.draw, name="labkit-xyz", daemon=True)
        self.thread.start()
        return True

    def draw(self):
        """Run the grid now and show it (or the error, in the panel); returns the Grid or None."""
        import html

        try:
            axes = self.chosen()
            self.status.value = "running the grid…"
            self.grid = self.run(axes, self.confirm.value)
        except Exception as error:  # said in the panel: a typo in the values must not need a traceback
            self.status.value = f"<span class='labkit-error'>{html.escape(f'{type(error).__name__}: {error}')}</span>"
            return None
        self.image.value, self.image.layout.display = png(self.grid.image), None
        self.image.layout.width = f"{min(self.grid.image.width, 960)}px"
        self.status.value = f"{len(self.grid.results)} cells: {html.escape(repr(self.grid))}"
        return self.grid

    def wait(self, timeout: float = 120) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _repr_mimebundle_(self, **kwargs):
        return with_summary(super()._repr_mimebundle_(**kwargs), [f"XyzPlot: {self.grid!r}"])
