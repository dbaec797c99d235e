"""Gallery (history of results: restore their settings, save with metadata) and Compare (two pictures side by
side or with a split slider)."""

from pathlib import Path

import ipywidgets as w

from .common import close_tree, guarded, image_widget, png, with_summary


def caption(result, index: int = 0) -> str:
    """What tells two gallery pictures apart: prompt (shortened), mode, LoRAs, sampler, steps, CFG and seed."""
    p = result.params
    prompt = p.prompt if len(p.prompt) <= 40 else p.prompt[:39] + "…"
    loras = ", ".join(f"{lora.name} {lora.weight:g}" for lora in getattr(result.model, "loras", ()) or ())
    seed = result.seeds[index] if index < len(result.seeds) else result.seed
    return " · ".join(part for part in (f"“{prompt}”", result.mode, loras and f"LoRA {loras}", p.sampler,
                                        f"{p.steps} steps", f"CFG {p.cfg:g}", f"seed {seed}") if part)


def picture_params(result, index: int):
    """The Params that remake picture `index` of a result (its own seed)."""
    return result.params.replace(seed=result.seeds[index] if index < len(result.seeds) else result.seed)


def infotext_of(result, index: int = 0) -> str:
    """A1111's infotext of picture `index`: the gallery's hover text."""
    from ..recipes import infotext

    return infotext(picture_params(result, index), result.model, result.mode)


def free_path(folder, stem: str, suffix: str = ".png") -> Path:
    """`folder/stem.png`, or `stem-2.png`, `stem-3.png`... : the first name not taken (never overwrite)."""
    folder = Path(folder)
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


class Gallery(w.VBox):
    """The pictures of a session, newest first (every picture of a batch). "restore" hands a picture's Params to
    the `on_restore` callbacks (a Studio sets its controls from them); "save" writes the PNG with its recipe into
    `out_dir`. `pictures` holds (result, index in its batch); `on_change` callbacks hear of every new one."""

    def __init__(self, out_dir="outputs", thumb: int = 96, limit: int = 48):
        self.out_dir, self.thumb, self.limit = Path(out_dir), thumb, limit
        self.pictures = []
        self._restore, self._change = [], []
        self.output = w.Output()
        self.message = w.Label()  # above the tiles: in sight whatever the number of tiles
        self.message.add_class("labkit-gallery-message")
        self.grid = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.viewer = image_widget(256)  # one picture at full size, enlarged by `zoom` (pixels kept sharp)
        self.viewer.layout.display = "none"
        self.viewer.add_class("labkit-viewer")
        self.zoom = w.ToggleButtons(options=[("1x", 1), ("2x", 2), ("4x", 4), ("8x", 8)], value=2,
                                    layout=w.Layout(display="none"), style={"button_width": "40px"})
        self.close_view = w.Button(description="close", layout=w.Layout(display="none", width="70px"))
        self.viewing = None
        self._tiles = {}  # (id of a result, index in its batch) -> its tile, made once
        self.zoom.observe(lambda _: self._show_view(), names="value")
        self.close_view.on_click(lambda _: self.view(None))
        frame = w.Box([self.viewer], layout=w.Layout(overflow="auto", max_width="100%", max_height="80vh"))
        super().__init__([self.message, self.output, w.HBox([self.zoom, self.close_view]), frame, self.grid])

    @property
    def results(self) -> list:
        """The results, newest first (each once, whatever its batch size)."""
        seen = []
        for result, _ in self.pictures:
            if not any(result is r for r in seen):
                seen.append(result)
        return seen

    def on_restore(self, callback) -> None:
        self._restore.append(callback)

    def on_change(self, callback) -> None:
        self._change.append(callback)

    def add(self, result) -> None:
        self.pictures[:0] = [(result, i) for i in range(len(result.images))]
        for result_gone, i in self.pictures[self.limit:]:  # closed: ipywidgets would keep them (and the pictures)
            close_tree(self._tiles.pop((id(result_gone), i)))
        del self.pictures[self.limit:]
        self._redraw()
        for callback in self._change:
            callback()

    def restore(self, index: int):
        """Hand picture `index`'s Params (with its own seed) to the restore callbacks; returns them."""
        result, i = self.pictures[index]
        params = picture_params(result, i)
        for callback in self._restore:
            callback(params)
        self.message.value = f"restored: {caption(result, i)}"
        return params

    def view(self, index: int | None) -> None:
        """Show picture `index` at full size above the tiles (None closes it); `zoom` enlarges it."""
        self.viewing = index
        shown = None if index is None else ""
        self.viewer.layout.display = self.zoom.layout.display = self.close_view.layout.display = \
            "none" if index is None else shown
        self._show_view()

    def _show_view(self) -> None:
        if self.viewing is None:
            return
        result, i = self.pictures[self.viewing]
        self.viewer.value = png(result.images[i])
        self.viewer.layout.width = f"{result.images[i].width * self.zoom.value}px"
        self.message.value = f"viewing: {caption(result, i)}"

    def save(self, index: int, path=None) -> Path:
        """Write picture `index` with its recipe to `path` (default: a free name in out_dir); never overwrites."""
        from ..recipes import save_image

        result, i = self.pictures[index]
        params = picture_params(result, i)
        if path is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = free_path(self.out_dir, f"labkit-{params.seed}")
        saved = save_image(result.images[i], path, params, model=result.model, mode=result.mode)
        self.message.value = f"saved {saved}"
        return saved

    def position(self, result, i: int) -> int:
        """Where a picture is in the gallery now (newer pictures push it along)."""
        return next(n for n, (r, j) in enumerate(self.pictures) if r is result and j == i)

    def _tile(self, result, i: int):
        """A picture's tile: thumbnail and caption (the infotext on hover), view / restore / save."""
        import base64
        import html

        data, hover = base64.b64encode(png(result.images[i])).decode(), html.escape(infotext_of(result, i))
        image = w.HTML(f'<img src="data:image/png;base64,{data}" width="{self.thumb}" title="{hover}" '
                       f'style="image-rendering: pixelated">')
        restore = w.Button(description="restore", layout=w.Layout(width=f"{self.thumb}px"))
        save = w.Button(description="save", layout=w.Layout(width=f"{self.thumb}px"))
        view = w.Button(description="view", layout=w.Layout(width=f"{self.thumb}px"))
        for button, act in ((restore, self.restore), (view, self.view), (save, self.save)):
            button.on_click(guarded(self.output, lambda _, act=act: act(self.position(result, i))))
        label = w.HTML(f'<small title="{hover}">{html.escape(caption(result, i))}</small>',
                       layout=w.Layout(width=f"{self.thumb + 40}px"))
        tile = w.VBox([image, label, view, restore, save], layout=w.Layout(width=f"{self.thumb + 48}px"))
        tile.add_class("labkit-gallery-tile")
        return tile

    def _redraw(self) -> None:
        for result, i in self.pictures:
            if (id(result), i) not in self._tiles:
                self._tiles[(id(result), i)] = self._tile(result, i)
        self.grid.children = [self._tiles[(id(result), i)] for result, i in self.pictures]

    def _repr_mimebundle_(self, **kwargs):
        lines = [f"Gallery: {len(self.pictures)} picture(s)"] + [f"  {caption(r, i)}" for r, i in self.pictures[:10]]
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
    """Two results (or PIL images) side by side, or one picture split by a slider. Given a Gallery, two pickers
    choose any two of its pictures (the newest two by default)."""

    def __init__(self, a=None, b=None, width: int = 256, gallery=None):
        self.a, self.b, self.gallery = None, None, gallery
        self.mode = w.ToggleButtons(options=["side by side", "slider"], value="side by side")
        self.position = w.FloatSlider(0.5, min=0.0, max=1.0, step=0.01, description="split")
        self.left, self.right, self.split = image_widget(width), image_widget(width), image_widget(width)
        self.pick_a = w.Dropdown(description="A", layout=w.Layout(width="420px"))
        self.pick_b = w.Dropdown(description="B", layout=w.Layout(width="420px"))
        self.labels = [w.HTML(layout=w.Layout(width=f"{width}px")), w.HTML(layout=w.Layout(width=f"{width}px"))]
        self.view = w.HBox()
        self.mode.observe(lambda _: self._redraw(), names="value")
        self.position.observe(lambda _: self._redraw(), names="value")
        for pick in (self.pick_a, self.pick_b):
            pick.observe(lambda _: self._picked(), names="value")
        pickers = [self.pick_a, self.pick_b] if gallery is not None else []
        super().__init__([*pickers, self.mode, self.view])
        if gallery is not None:
            gallery.on_change(self.refresh)
        if a is not None or b is not None:
            self.set(a, b)

    def refresh(self) -> None:
        """Offer the gallery's pictures in both pickers; A the second newest, B the newest."""
        options = [(f"{n + 1}: {caption(result, i)}", n) for n, (result, i) in enumerate(self.gallery.pictures)]
        self._picking = True
        self.pick_a.options, self.pick_b.options = options, options
        if len(options) >= 2:
            self.pick_a.value, self.pick_b.value = 1, 0
        self._picking = False
        self._picked()

    def _picked(self) -> None:
        if getattr(self, "_picking", False) or self.gallery is None or self.pick_a.value is None \
                or self.pick_b.value is None:
            return
        (a, i), (b, j) = self.gallery.pictures[self.pick_a.value], self.gallery.pictures[self.pick_b.value]
        self.set(a.images[i], b.images[j], caption(a, i), caption(b, j))

    def set(self, a, b, label_a: str | None = None, label_b: str | None = None) -> None:
        """Compare `a` and `b` (Results or pictures), each captioned under its own picture."""
        import html

        self.a, self.b = a, b
        for label, item, text in ((self.labels[0], a, label_a), (self.labels[1], b, label_b)):
            text = text if text is not None else caption(item) if hasattr(item, "params") else ""
            label.value = f"<small>{html.escape(text)}</small>"
        self._redraw()

    def _redraw(self) -> None:
        if self.a is None or self.b is None:
            self.view.children = [w.Label("pick two results to compare")]
            return
        if self.mode.value == "slider":
            self.split.value = png(split_view(_picture(self.a), _picture(self.b), self.position.value))
            self.view.children = [w.VBox([self.split, self.position, w.HBox(self.labels)])]
        else:
            self.left.value, self.right.value = png(_picture(self.a)), png(_picture(self.b))
            self.view.children = [w.VBox([self.left, self.labels[0]]), w.VBox([self.right, self.labels[1]])]

    def _repr_mimebundle_(self, **kwargs):
        names = [caption(x) if hasattr(x, "params") else ("a picture" if x is not None else "nothing")
                 for x in (self.a, self.b)]
        return with_summary(super()._repr_mimebundle_(**kwargs), [f"Compare ({self.mode.value}): {names[0]} | "
                                                                  f"{names[1]}"])
