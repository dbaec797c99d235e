"""PictureGrid (a batch's pictures; click one to pick it) and DropZone (drop or choose a picture file): two small
anywidgets for what ipywidgets' Image and FileUpload cannot do (clicks on a picture, drops on an area)."""

import base64

import anywidget
import traitlets as t

from .common import png
from .mask import widget_file


def data_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


class PictureGrid(anywidget.AnyWidget):
    """Pictures side by side; clicking one sets `selected` (observe it). `show(images, captions)` replaces them."""

    _esm = widget_file("pictures.js")
    _css = widget_file("pictures.css")
    kind = t.Unicode("grid").tag(sync=True)
    pictures = t.List(t.Unicode()).tag(sync=True)  # PNG data URLs
    captions = t.List(t.Unicode()).tag(sync=True)  # hover text
    selected = t.Int(0).tag(sync=True)
    size = t.Int(64).tag(sync=True)  # display width of each picture, pixels

    def show(self, images, captions=(), size: int | None = None) -> None:
        """Show `images` (PIL), the first picked."""
        with self.hold_sync():
            self.selected = 0
            self.size = size or self.size
            self.captions = [str(c) for c in captions] or [""] * len(images)
            self.pictures = [data_url(image) for image in images]


class DropZone(anywidget.AnyWidget):
    """An area to drop a picture file on (or click to choose one); `on_file(callback)` gets (name, bytes)."""

    _esm = widget_file("pictures.js")
    _css = widget_file("pictures.css")
    kind = t.Unicode("drop").tag(sync=True)
    label = t.Unicode("drop a picture here, or click to choose one").tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._callbacks = []
        self.on_msg(self._message)

    def on_file(self, callback) -> None:
        self._callbacks.append(callback)

    def _message(self, widget, content, buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "file" and buffers:
            data = bytes(buffers[0])
            for callback in self._callbacks:
                callback(content.get("name", ""), data)
