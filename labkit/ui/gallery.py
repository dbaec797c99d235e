"""Gallery (history of results: restore their settings, save with metadata) and Compare (two pictures side by
side or with a split slider)."""

from pathlib import Path

import ipywidgets as w

from .common import guarded, image_widget, png, with_summary


def caption(result) -> str:
    p = result.params
    return f"seed {result.seed} · {p.sampler} · {p.steps} steps · CFG {p.cfg:g}"


def free_path(folder, stem: str, suffix: str = ".png") -> Path:
    """`folder/stem.png`, or `stem-2.png`, `stem-3.png`... : the first name not taken (never overwrite)."""
    folder = Path(folder)
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


class Gallery(w.VBox):
    """The results of a session, newest first. "restore" hands a result's Params to the `on_restore`
    callbacks (a Studio sets its controls from them); "save" writes the PNG with its recipe into `out_dir`."""

    def __init__(self, out_dir="outputs", thumb: int = 96, limit: int = 48):
        self.out_dir, self.thumb, self.limit = Path(out_dir), thumb, limit
        self.results = []
        self._restore = []
        self.output = w.Output()
        self.message = w.Label()
        self.grid = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        super().__init__([self.grid, self.message, self.output])

    def on_restore(self, callback) -> None:
        self._restore.append(callback)

    def add(self, result) -> None:
        self.results.insert(0, result)
        del self.results[self.limit:]
        self._redraw()

    def restore(self, index: int):
        """Hand result `index`'s Params (with its actual seed) to the restore callbacks; returns them."""
        result = self.results[index]
        params = result.params.replace(seed=result.seed)
        for callback in self._restore:
            callback(params)
        self.message.value = f"restored: {caption(result)}"
        return params

    def save(self, index: int, path=None) -> Path:
        """Write result `index` with its metadata to `path` (default: a free name in out_dir); never overwrites."""
        result = self.results[index]
        if path is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = free_path(self.out_dir, f"labkit-{result.seed}")
        saved = result.save(path)
        self.message.value = f"saved {saved}"
        return saved

    def _tile(self, index: int, result):
        image = image_widget(self.thumb)
        image.value = png(result.image)
        restore = w.Button(description="restore", layout=w.Layout(width=f"{self.thumb}px"))
        save = w.Button(description="save", layout=w.Layout(width=f"{self.thumb}px"))
        restore.on_click(guarded(self.output, lambda _: self.restore(index)))
        save.on_click(guarded(self.output, lambda _: self.save(index)))
        label = w.HTML(f"<small>{caption(result)}</small>", layout=w.Layout(width=f"{self.thumb}px"))
        tile = w.VBox([image, label, restore, save])
        tile.add_class("labkit-gallery-tile")
        return tile

    def _redraw(self) -> None:
        self.grid.children = [self._tile(i, r) for i, r in enumerate(self.results)]

    def _repr_mimebundle_(self, **kwargs):
        lines = [f"Gallery: {len(self.results)} result(s)"] + [f"  {caption(r)}: {r.params.prompt[:60]!r}"
                                                               for r in self.results[:10]]
        return with_summary(super()._repr_mimebundle_(**kwargs), lines)


def split_view(a, b, position: float):
    """One picture: `a` left of `position` (0..1 of the width), `b` right of it; `b` resized to `a`'s size."""
    from PIL import Image

    a = a.convert("RGB")
    b = b.convert("RGB").resize(a.size, Image.BILINEAR) if b.size != a.size else b.convert("RGB")
    cut = round(min(max(position, 0.0), 1.0) * a.width)
    out = b.copy()
    out.paste(a.crop((0, 0, cut, a.height)), (0, 0))
    return out


def _picture(item):
    return getattr(item, "image", item)  # a Result or a PIL image


class Compare(w.VBox):
    """Two results (or PIL images) side by side, or one picture split by a slider."""

    def __init__(self, a=None, b=None, width: int = 256):
        self.a, self.b = None, None
        self.mode = w.ToggleButtons(options=["side by side", "slider"], value="side by side")
        self.position = w.FloatSlider(0.5, min=0.0, max=1.0, step=0.01, description="split")
        self.left, self.right, self.split = image_widget(width), image_widget(width), image_widget(width)
        self.labels = w.HBox([w.Label(), w.Label()])
        self.view = w.HBox()
        self.mode.observe(lambda _: self._redraw(), names="value")
        self.position.observe(lambda _: self._redraw(), names="value")
        super().__init__([self.mode, self.view, self.labels])
        if a is not None or b is not None:
            self.set(a, b)

    def set(self, a, b) -> None:
        self.a, self.b = a, b
        self.labels.children[0].value = caption(a) if hasattr(a, "params") else ""
        self.labels.children[1].value = caption(b) if hasattr(b, "params") else ""
        self._redraw()

    def _redraw(self) -> None:
        if self.a is None or self.b is None:
            self.view.children = [w.Label("pick two results to compare")]
            return
        if self.mode.value == "slider":
            self.split.value = png(split_view(_picture(self.a), _picture(self.b), self.position.value))
            self.view.children = [w.VBox([self.split, self.position])]
        else:
            self.left.value, self.right.value = png(_picture(self.a)), png(_picture(self.b))
            self.view.children = [self.left, self.right]

    def _repr_mimebundle_(self, **kwargs):
        names = [caption(x) if hasattr(x, "params") else ("a picture" if x is not None else "nothing")
                 for x in (self.a, self.b)]
        return with_summary(super()._repr_mimebundle_(**kwargs), [f"Compare ({self.mode.value}): {names[0]} | "
                                                                  f"{names[1]}"])
