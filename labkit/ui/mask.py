"""MaskCanvas: paint an inpainting mask over a picture in the browser; Python gets it as a PIL "L" image.

Strokes are kept as data (the `strokes` trait) and rasterized by the same rule on both sides, so the mask
Python reads is pixel for pixel the one the browser shows. Coordinates are image pixels as on an HTML
canvas: (0, 0) is the picture's top-left corner, pixel (i, j) covers [i, i+1) x [j, j+1).
"""

import io
import math
from pathlib import Path

import anywidget
import traitlets as t

from ..errors import BadInput, UnsupportedFile

SQRT1_2 = math.sqrt(0.5)  # smallest brush radius: a 1-pixel brush never leaves gaps (JS: Math.SQRT1_2)
PACKAGE = Path(__file__).resolve().parents[1]  # labkit/
PACKAGED_WIDGETS = PACKAGE / "widgets"  # an installed wheel: the copy setup.py's build hook puts there
CHECKOUT_WIDGETS = PACKAGE.parent / "widgets"  # a checkout or editable install: the live files, one copy in git


def widget_file(name: str) -> Path:
    """The browser code `name` of a widget: the wheel's labkit/widgets/ copy if present, else the checkout's
    widgets/ (so an edit there shows without reinstalling). A missing file raises FileNotFoundError saying why."""
    folder = PACKAGED_WIDGETS if PACKAGED_WIDGETS.is_dir() else CHECKOUT_WIDGETS
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"labkit's widget file {path} is missing: the browser side of the widgets lives "
                                f"in the repository's widgets/ folder, which a built wheel carries as "
                                f"labkit/widgets/. Install labkit editable from a checkout (pip install -e .) or "
                                f"from a wheel built from one (pip install .).")
    return path


# ---- pure: strokes -> mask ------------------------------------------------------------------------------
def check_stroke(stroke, index: int = 0) -> None:
    """Raise BadInput naming the fix unless `stroke` is {"points": [[x, y], ...], "size": >= 1, "erase": bool}."""
    if not isinstance(stroke, dict) or "points" not in stroke or "size" not in stroke:
        raise BadInput(f"stroke {index}: expected a dict with 'points' ([[x, y], ...]) and 'size' (brush diameter "
                       f"in pixels), got {stroke!r:.80}.")
    points, size = stroke["points"], stroke["size"]
    if not points or not all(len(p) == 2 and all(_finite(v) for v in p) for p in points):
        raise BadInput(f"stroke {index}: 'points' must be a non-empty list of [x, y] pairs of numbers "
                       f"(image pixels), got {points!r:.80}.")
    if not _finite(size) or size < 1:
        raise BadInput(f"stroke {index}: brush size {size!r} is below 1 pixel; use size >= 1 "
                       f"(the brush diameter in image pixels).")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def rasterize(strokes, width: int, height: int):
    """(height, width) uint8 array: each stroke in order sets 255 (paint) or 0 (erase) on every pixel whose
    center lies within size/2 of its path (a polyline with round caps and joins; one point is a dot)."""
    import numpy as np

    canvas = np.zeros((height, width), np.uint8)  # (H, W)
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke["points"]]
        radius = max(stroke["size"] / 2, SQRT1_2)
        value = 0 if stroke.get("erase") else 255
        for a, b in zip(points, points[1:]) if len(points) > 1 else [(points[0], points[0])]:
            _paint_segment(canvas, a, b, radius, value)
    return canvas


def _paint_segment(canvas, a, b, r, value) -> None:
    """Set `value` on pixels whose center is within r of segment ab (the same arithmetic as the JS)."""
    import numpy as np

    (ax, ay), (bx, by), (h, w) = a, b, canvas.shape
    x0, x1 = max(math.floor(min(ax, bx) - r), 0), min(math.ceil(max(ax, bx) + r), w)
    y0, y1 = max(math.floor(min(ay, by) - r), 0), min(math.ceil(max(ay, by) + r), h)
    if x0 >= x1 or y0 >= y1:
        return
    px = np.arange(x0, x1, dtype=np.float64) + 0.5  # (w',) pixel centers
    py = (np.arange(y0, y1, dtype=np.float64) + 0.5)[:, None]  # (h', 1)
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    u = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1) if length2 > 0 else 0.0  # (h', w')
    ex, ey = ax + u * dx - px, ay + u * dy - py
    canvas[y0:y1, x0:x1][ex * ex + ey * ey <= r * r] = value


def rescale_strokes(strokes, old: tuple[int, int], new: tuple[int, int]) -> list[dict]:
    """Strokes drawn on an `old` (w, h) picture moved onto a `new` one: points scaled per axis, sizes by the
    geometric mean of the two scales (at least 1)."""
    sx, sy = new[0] / old[0], new[1] / old[1]
    return [{**s, "points": [[x * sx, y * sy] for x, y in s["points"]],
             "size": max(1, round(s["size"] * math.sqrt(sx * sy)))} for s in strokes]


# ---- the widget -----------------------------------------------------------------------------------------
class MaskCanvas(anywidget.AnyWidget):
    """Paint a mask over a picture: brush, eraser, undo, clear, invert and a feather preview.

    `mask` is a PIL "L" image at the picture's size (white = repaint); `feathered()` is that mask blurred as
    labkit's inpaint path blurs it. Scripts and tests paint with `stroke(points, size)`.
    """

    _esm = widget_file("mask_canvas.js")
    _css = widget_file("mask_canvas.css")

    image_png = t.Bytes(b"", help="the picture painted over, PNG-encoded (may be empty)").tag(sync=True)
    image_width = t.Int(0, help="picture width in pixels; the mask has this width").tag(sync=True)
    image_height = t.Int(0, help="picture height in pixels; the mask has this height").tag(sync=True)
    strokes = t.List(t.Dict(), help='[{"points": [[x, y], ...], "size": int, "erase": bool}]').tag(sync=True)
    brush = t.Int(12, help="brush diameter in image pixels").tag(sync=True)
    eraser = t.Bool(False, help="new strokes erase").tag(sync=True)
    inverted = t.Bool(False, help="repaint what is not painted").tag(sync=True)
    feather = t.Int(4, help="blur radius in pixels (labkit's Params.mask_blur)").tag(sync=True)
    display_width = t.Int(384, help="width on screen, CSS pixels").tag(sync=True)
    note = t.Unicode("", help="last notice for the user").tag(sync=True)

    def __init__(self, image=None, **traits):
        super().__init__(**traits)
        if image is not None:
            self.set_image(image)

    @t.validate("strokes")
    def _check_strokes(self, proposal):
        for i, stroke in enumerate(proposal.value):
            check_stroke(stroke, i)
        return proposal.value

    @t.validate("brush", "feather")
    def _check_sizes(self, proposal):
        name, value, low = proposal.trait.name, proposal.value, 1 if proposal.trait.name == "brush" else 0
        if value < low:
            raise BadInput(f"{name}={value}: use {name} >= {low} (pixels).")
        return value

    # ---- reading the mask -------------------------------------------------------------------------------
    @property
    def mask(self):
        """The mask as PIL "L" at (image_width, image_height): 255 where painted (or not, if inverted)."""
        from PIL import Image

        if self.image_width < 1 or self.image_height < 1:
            raise BadInput(f"The mask canvas has no picture yet ({self.image_width}x{self.image_height}): press "
                           f"'→ inpaint' under a result, or upload a picture (in code: set_image(image)).")
        pixels = rasterize(self.strokes, self.image_width, self.image_height)  # (H, W)
        return Image.fromarray(255 - pixels if self.inverted else pixels)  # uint8 (H, W) -> "L"

    def feathered(self, radius=None):
        """The mask blurred by a Gaussian of `radius` (default `feather`) pixels, exactly as labkit's inpaint
        path does (`images.blur` -> diffusers' `VaeImageProcessor.blur`, a PIL GaussianBlur); 0 leaves it sharp."""
        from PIL import ImageFilter

        radius = self.feather if radius is None else radius
        mask = self.mask
        return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else mask

    # ---- editing ----------------------------------------------------------------------------------------
    def set_image(self, image) -> None:
        """Paint over `image` (PIL image, array or path). Strokes drawn on a picture of another size are
        rescaled to this one, and `note` says so."""
        from ..images import to_rgb

        image = to_rgb(_open(image))
        if image.width < 1 or image.height < 1:
            raise BadInput(f"The picture is {image.width}x{image.height}; give MaskCanvas a picture of at least 1x1.")
        old, new = (self.image_width, self.image_height), image.size
        rescale = bool(self.strokes) and old != new and min(old) > 0
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        with self.hold_sync():  # one message to the browser
            if rescale:
                self.strokes = rescale_strokes(self.strokes, old, new)
            self.image_width, self.image_height = new
            self.image_png = buffer.getvalue()
            self.note = (f"The mask was drawn on a {old[0]}x{old[1]} picture and was rescaled to {new[0]}x{new[1]}."
                         if rescale else "")

    def stroke(self, points, size=None, erase=None) -> None:
        """Append one stroke through `points` ([(x, y), ...], image pixels); size/erase default to the
        toolbar's `brush`/`eraser`."""
        stroke = {"points": [[float(x), float(y)] for x, y in points],
                  "size": self.brush if size is None else size,
                  "erase": self.eraser if erase is None else bool(erase)}
        check_stroke(stroke, len(self.strokes))
        self.strokes = [*self.strokes, stroke]

    def undo(self) -> None:
        """Drop the last stroke (nothing happens when there is none)."""
        self.strokes = self.strokes[:-1]

    def clear(self) -> None:
        """Drop every stroke."""
        self.strokes = []

    def invert(self) -> None:
        """Toggle `inverted`: repaint what is not painted."""
        self.inverted = not self.inverted

    # ---- headless display -------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line: "MaskCanvas 64x64, 3 strokes, 12% painted, inverted: no"."""
        n = len(self.strokes)
        strokes = f"{n} stroke{'' if n == 1 else 's'}"
        if self.image_width < 1 or self.image_height < 1:
            return f"MaskCanvas (no picture), {strokes}"
        share = (rasterize(self.strokes, self.image_width, self.image_height) > 0).mean()
        share = 1 - share if self.inverted else share
        painted = "<1%" if 0 < share < 0.01 else f"{share:.0%}"
        return (f"MaskCanvas {self.image_width}x{self.image_height}, {strokes}, {painted} painted, "
                f"inverted: {'yes' if self.inverted else 'no'}")

    def __repr__(self) -> str:
        """The summary (ipywidgets' mime bundle uses it as text/plain next to the widget view); never raises."""
        try:
            return self.summary()
        except Exception as exc:  # a repr must not raise, even on bad traits
            return f"MaskCanvas (cannot summarize: {exc})"


def _open(image):
    """A PIL image from a path, or `image` unchanged."""
    if not isinstance(image, (str, Path)):
        return image
    from PIL import Image

    try:
        opened = Image.open(image)
        opened.load()
        return opened
    except (OSError, ValueError) as exc:
        raise UnsupportedFile(f"Cannot open the picture {image}: {exc}. "
                              f"Give a PIL image or a path to a PNG/JPEG.") from exc
