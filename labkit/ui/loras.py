"""LoraToggles: one row per loaded LoRA (on/off, weight, family badge, coverage), and adding LoRAs."""

from pathlib import Path

import ipywidgets as w

from .common import guarded, with_summary

WARN_WEIGHT = 2.0  # beyond +-2 a LoRA usually breaks the picture: allowed, but the row says so


def weight_warning(weight: float) -> str:
    return f"weight {weight:+.2f} is beyond ±{WARN_WEIGHT:g}: expect a broken picture" if abs(weight) > WARN_WEIGHT \
        else ""


class LoraRow(w.HBox):
    """The controls of one loaded LoRA."""

    def __init__(self, info, on_toggle, on_weight, on_remove):
        self.name = info.name
        self.enabled = w.Checkbox(info.enabled, description=info.name, indent=False, layout=w.Layout(width="180px"))
        self.weight = w.FloatSlider(info.weights[1], min=-3.0, max=3.0, step=0.05, description="weight",
                                    layout=w.Layout(width="280px"), style={"description_width": "50px"})
        self.badge = w.HTML(f"<span class='labkit-badge'>{info.family or 'unknown family'}</span>")
        self.coverage = w.Label(f"coverage {info.coverage:.0%}")
        self.warning = w.Label(weight_warning(info.weights[1]))
        self.remove = w.Button(description="✕", tooltip=f"remove {info.name}", layout=w.Layout(width="36px"))
        self.enabled.observe(lambda c: on_toggle(self.name, c["new"]), names="value")
        self.weight.observe(lambda c: on_weight(self.name, c["new"]), names="value")
        self.remove.on_click(lambda _: on_remove(self.name))
        super().__init__([self.enabled, self.weight, self.badge, self.coverage, self.remove, self.warning])
        self.add_class("labkit-lora-row")


class LoraToggles(w.VBox):
    """The LoRAs of `lab.loras`: toggles and weights act on the Lab at once (the next generation uses them);
    add one by path or from the search paths. `on_change(callback)` is told after every change."""

    def __init__(self, lab):
        self.lab = lab
        self.rows = {}
        self._callbacks = []
        self.output = w.Output()
        self.path = w.Text(placeholder="path/to/lora.safetensors or a name on the search paths",
                           layout=w.Layout(width="360px"))
        # a list box, not a dropdown: the LoRAs found on the search paths are in sight from the start
        self.choices = w.Select(options=[], rows=4, description="found", layout=w.Layout(width="300px"))
        self.choices.add_class("labkit-lora-found")
        self.add = w.Button(description="Add LoRA")
        self.add.add_class("labkit-lora-add")
        self.message = w.Label()
        self.list = w.VBox()
        self.add.on_click(guarded(self.output, lambda _: self.load_from_inputs()))
        self.refresh_choices()
        super().__init__([self.list, w.HBox([self.choices, w.VBox([self.path, self.add])]), self.message,
                          self.output])
        self.refresh()

    def on_change(self, callback) -> None:
        self._callbacks.append(callback)

    def _changed(self) -> None:
        for callback in self._callbacks:
            callback()

    def refresh_choices(self) -> None:
        loaded = set(self.lab.loras.loaded)
        self.choices.options = [n for n in self.lab.loras.files.names() if n not in loaded]
        self.choices.value = None  # listed, none picked until clicked

    def refresh(self) -> None:
        """Rebuild the rows from `lab.loras.loaded`."""
        loaded = self.lab.loras.loaded
        self.rows = {name: LoraRow(info, self.toggle, self.set_weight, self.remove) for name, info in loaded.items()}
        self.list.children = list(self.rows.values()) or [w.Label("no LoRA loaded")]

    def load(self, path_or_name, **kwargs):
        """Load a LoRA (a path, or a name found on the search paths) and add its row; returns its LoraInfo."""
        source = Path(path_or_name)
        if not source.suffix:  # a bare name: look it up where <lora:name> tags are looked up
            source = self.lab.loras.find(str(path_or_name))
        info = self.lab.loras.load(source, **kwargs)
        self.message.value = (f"loaded {info.name}: {info.family or 'unknown family'}, {info.format}, rank "
                              f"{info.rank}, coverage {info.coverage:.0%}")
        self.refresh()
        self.refresh_choices()
        self._changed()
        return info

    def load_from_inputs(self):
        target = self.path.value.strip() or self.choices.value
        if not target:
            self.message.value = "type a path or click a LoRA in the 'found' list"
            return None
        self.output.clear_output()
        try:
            return self.load(target)
        except Exception as error:
            self.message.value = f"{type(error).__name__}: {error}"
            raise

    def toggle(self, name, enabled: bool) -> None:
        (self.lab.loras.enable if enabled else self.lab.loras.disable)(name)
        self._changed()

    def set_weight(self, name, weight: float) -> None:
        self.lab.loras.set_weight(name, weight)
        self.rows[name].warning.value = weight_warning(weight)
        self._changed()

    def remove(self, name) -> None:
        self.lab.loras.remove(name)
        self.refresh()
        self.refresh_choices()
        self._changed()

    def _repr_mimebundle_(self, **kwargs):
        loaded = self.lab.loras.loaded
        lines = [f"LoraToggles: {len(loaded)} LoRA(s) loaded"] + [
            f"  {'on ' if i.enabled else 'off'} {n} weight {i.weights[1]:g} ({i.family}, coverage {i.coverage:.0%})"
            for n, i in loaded.items()]
        return with_summary(super()._repr_mimebundle_(**kwargs), lines)
