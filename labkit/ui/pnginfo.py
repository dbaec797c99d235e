"""PngInfo: A1111's "PNG Info" tab. Drop or upload a picture (or paste its infotext) to see its recipe: the tool
that made it, the settings labkit reads from it, what it could not map and its notes; then send it to txt2img,
img2img or inpaint with the settings restored (`on_send(params, mode, picture or None)`)."""

import html
import io

import ipywidgets as w

from .common import image_widget, png, with_summary

MODES = ("txt2img", "img2img", "inpaint")


class PngInfo(w.VBox):
    """Read a recipe from an uploaded picture or pasted text; `send_to(mode)` hands it to the `on_send` callbacks."""

    def __init__(self):
        self.recipe, self.picture, self._send = None, None, []
        from .pictures import DropZone

        self.drop = DropZone(label="drop a PNG here (or click to choose one)")
        self.drop.on_file(lambda name, data: self.read(data))
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="picture")
        self.upload.add_class("labkit-pnginfo-upload")
        self.text = w.Textarea(placeholder="…or paste infotext (A1111's parameters) or a ComfyUI / labkit JSON",
                               rows=3, layout=w.Layout(width="auto"))
        self.read_button = w.Button(description="read text")
        self.image = image_widget(128)
        self.image.layout.display = "none"
        self.view = w.HTML()
        self.view.add_class("labkit-pnginfo")
        self.buttons = {mode: w.Button(description=f"send to {mode}", disabled=True) for mode in MODES}
        self.upload.observe(lambda c: self._uploaded(c["new"]), names="value")
        self.read_button.on_click(lambda _: self.read(self.text.value))
        for mode, button in self.buttons.items():
            button.on_click(lambda _, mode=mode: self.send_to(mode))
        super().__init__([self.drop, w.HBox([self.upload, self.read_button]), self.text,
                          w.HBox([self.image, self.view]),
                          w.HBox(list(self.buttons.values()))])

    def on_send(self, callback) -> None:
        self._send.append(callback)

    def _uploaded(self, files) -> None:
        if files:
            self.read(bytes(files[0]["content"]))

    def read(self, source):
        """Show the recipe of `source` (picture bytes, a path, a PIL image, or infotext / JSON text); the error,
        said in the panel, when there is none."""
        from PIL import Image

        from ..recipes import read_recipe

        try:
            recipe = read_recipe(source)
        except Exception as error:  # a picture without a recipe is an answer, not a crash
            self.recipe = None
            self.view.value = f"<span class='labkit-error'>{html.escape(f'{type(error).__name__}: {error}')}</span>"
            self._enable()
            return None
        picture = None
        if isinstance(source, (bytes, bytearray)):
            picture = Image.open(io.BytesIO(source))
            picture.load()
        elif isinstance(source, Image.Image):
            picture = source
        self.recipe, self.picture = recipe, picture
        self.image.value, self.image.layout.display = (png(picture), None) if picture else (b"", "none")
        self.view.value = recipe_html(recipe)
        self._enable()
        return recipe

    def _enable(self) -> None:
        for mode, button in self.buttons.items():
            needs_picture = mode != "txt2img" and self.picture is None
            button.disabled = self.recipe is None or needs_picture
            button.tooltip = "needs the picture: upload it" if needs_picture else ""

    def send_to(self, mode: str) -> None:
        """Hand the recipe's settings (and the picture, for img2img / inpaint) to the `on_send` callbacks."""
        if self.recipe is None:
            return
        picture = self.picture if mode != "txt2img" else None
        for callback in self._send:
            callback(self.recipe.params, mode, picture)

    def _repr_mimebundle_(self, **kwargs):
        what = f"{self.recipe.tool}: {self.recipe.params.prompt[:60]!r}" if self.recipe else "nothing read"
        return with_summary(super()._repr_mimebundle_(**kwargs), [f"PngInfo: {what}"])


def recipe_html(recipe) -> str:
    """The recipe as a small table: tool, every setting, what labkit could not map, notes."""
    from dataclasses import fields

    p = recipe.params
    rows = [("tool", f"{recipe.tool} {recipe.version or ''}".strip()), ("mode", recipe.mode)]
    rows += [(f.name, getattr(p, f.name)) for f in fields(p) if getattr(p, f.name) not in ("", None)]
    rows += [("model", recipe.model.get("name") or recipe.model.get("hash"))] if recipe.model else []
    rows += [("LoRA", f"{lora.get('name')} {lora.get('weight', '')}") for lora in recipe.loras]
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    unmapped = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in recipe.unmapped.items())
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in recipe.notes)
    return (f"<table class='labkit-recipe'>{cells}</table>"
            + (f"<p>not mapped by labkit:</p><ul class='labkit-unmapped'>{unmapped}</ul>" if unmapped else "")
            + (f"<p>notes:</p><ul class='labkit-recipe-notes'>{notes}</ul>" if notes else ""))
