"""ModelPicker: checkpoint, VAE and refiner dropdowns over a models folder laid out as A1111's
(`models/Stable-diffusion`, `models/VAE`, `models/Lora`), plus the embedded models; each choice shows its family
read from the file's header alone (nothing loads until "load"). `on_load(lab, refiner)` hears the new models;
the Studio then drops the old ones, which frees them."""

import html
from pathlib import Path

import ipywidgets as w

from .common import with_summary

FOLDERS = {"checkpoint": "Stable-diffusion", "vae": "VAE", "lora": "Lora"}  # A1111's names under models/
SUFFIXES = (".safetensors",)
AUTOMATIC, NONE = "automatic (the checkpoint's own)", "none"


def kind_folder(root, kind: str) -> Path | None:
    """A1111's folder for `kind` under `root` (its models/ folder, or the folder above it), None when absent."""
    root = Path(root).expanduser()
    return next((f for f in (root / FOLDERS[kind], root / "models" / FOLDERS[kind]) if f.is_dir()), None)


def model_files(root, kind: str) -> list[Path]:
    """The .safetensors files of `kind` under `root`, sorted."""
    folder = kind_folder(root, kind)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES) if folder else []


def badge(source) -> str:
    """"SDXL", "SD 1.x inpaint", "labkit toy (SD1 layout)"...: the family from the header alone, or why not."""
    from ..families import FAMILIES

    if source in (None, "", AUTOMATIC, NONE):
        return ""
    path = Path(str(source))
    if not path.suffix:  # an embedded model
        from ..toy.registry import entry

        return FAMILIES[entry(str(source))["family"]].display
    try:
        from ..detect import inspect

        info = inspect(path)
    except Exception as error:  # a broken file is said on its badge, never raised into the panel
        return f"unreadable: {type(error).__name__}"
    family = FAMILIES[info.family].display if info.family in FAMILIES else info.family or "unknown family"
    return f"{family}{' ' + info.variant if info.variant else ''} · {info.kind}"


class ModelPicker(w.VBox):
    """The models folder (a Text), checkpoint / VAE / refiner dropdowns with family badges, and "load"."""

    def __init__(self, folder="models", current: str = "toy"):
        from ..loading import models

        self._load = []
        self.embedded = list(models())
        self.folder = w.Text(str(folder), description="models", layout=w.Layout(width="420px"),
                             tooltip="A1111's models/ folder: Stable-diffusion, VAE and Lora inside")
        self.checkpoint = w.Dropdown(description="checkpoint", layout=w.Layout(width="420px"))
        self.vae = w.Dropdown(description="VAE", layout=w.Layout(width="420px"))
        self.refiner = w.Dropdown(description="refiner", layout=w.Layout(width="420px"))
        self.badges = {name: w.HTML() for name in ("checkpoint", "vae", "refiner")}
        self.load_button = w.Button(description="load", button_style="primary")
        self.load_button.add_class("labkit-model-load")
        self.message = w.HTML()
        self.message.add_class("labkit-model-message")
        self.folder.observe(lambda _: self.scan(), names="value")
        for name in ("checkpoint", "vae", "refiner"):
            getattr(self, name).add_class(f"labkit-model-{name}")
            self.badges[name].add_class(f"labkit-badge-{name}")
            getattr(self, name).observe(lambda _, name=name: self._badge(name), names="value")
        self.load_button.on_click(lambda _: self.load())
        super().__init__([self.folder, *(w.HBox([getattr(self, n), self.badges[n]]) for n in self.badges),
                          self.load_button, self.message])
        self.scan(current)

    def on_load(self, callback) -> None:
        self._load.append(callback)

    def scan(self, current: str | None = None) -> None:
        """List what the folder holds now (and the embedded models)."""
        files = [(p.name, str(p)) for p in model_files(self.folder.value, "checkpoint")]
        kept = current if current is not None else self.checkpoint.value
        self.checkpoint.options = [(n, n) for n in self.embedded] + files
        values = [v for _, v in self.checkpoint.options]
        self.checkpoint.value = kept if kept in values else values[0] if values else None
        for dropdown, first, more in ((self.vae, AUTOMATIC, [(p.name, str(p)) for p in model_files(
                self.folder.value, "vae")]), (self.refiner, NONE, list(self.checkpoint.options))):
            kept = dropdown.value
            dropdown.options = [(first, first)] + more
            dropdown.value = kept if kept in [v for _, v in dropdown.options] else first
        for name in self.badges:
            self._badge(name)

    def _badge(self, name: str) -> None:
        self.badges[name].value = f"<small>{html.escape(badge(getattr(self, name).value))}</small>"

    @property
    def lora_folder(self) -> Path | None:
        """The folder's Lora/ (A1111's layout), added to a loaded model's LoRA search paths."""
        return kind_folder(self.folder.value, "lora")

    def load(self):
        """Open the chosen checkpoint (with the VAE) and refiner; hand them to the `on_load` callbacks."""
        from ..loading import open as open_lab

        try:
            vae = None if self.vae.value == AUTOMATIC else self.vae.value
            lab = open_lab(self.checkpoint.value, vae=vae)
            refiner = None if self.refiner.value == NONE else open_lab(self.refiner.value)
        except Exception as error:  # said in the panel; the models in use stay
            self.message.value = f"<span class='labkit-error'>{html.escape(f'{type(error).__name__}: {error}')}</span>"
            return None
        if self.lora_folder is not None:
            lab.loras.search_paths = [self.lora_folder, *lab.loras.search_paths]
        self.message.value = f"loaded {html.escape(lab.name or lab.family)}"
        for callback in self._load:
            callback(lab, refiner)
        return lab

    def _repr_mimebundle_(self, **kwargs):
        return with_summary(super()._repr_mimebundle_(**kwargs), [f"ModelPicker: {self.checkpoint.value}"])
