"""A classical judge of prompt adherence for the toy pictures of shapes, written independently of their generator.

`judge(image)` reads a picture the way a person would: the background is the color of the border, the object is
what differs from it, its color is that of its most saturated pixels, its shape comes from a few geometric
features of its filled silhouette (an outline with a gap is closed first, as the eye closes it), and its style
from whether it is hollow or banded. It shares no code with the drawing side, only its own copy of the palette
numbers, so a bug in the drawing code cannot hide in the judge.
numpy (and PIL to read pictures); works at any size and tolerates soft edges, small color shifts and stray pixels.
"""

from dataclasses import asdict, dataclass
from types import MappingProxyType

import numpy as np
from PIL import Image

from ..errors import BadInput

# The palette (RGB), the judge's own copy: a test checks it against the generator's.
COLORS = MappingProxyType({
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
})
BACKGROUNDS = MappingProxyType({
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
})

# The ideal figures' silhouette features (extent, solidity, top width, bottom share), star with inner radius 0.45:
#   extent = area / bounding-box area; solidity = area / convex-hull area;
#   top width = widest row in the top fifth / box width; bottom share = share of the area in the lower half.
SHAPES = MappingProxyType({
    "circle": (np.pi / 4, 1.0, 0.8, 0.5),
    "square": (1.0, 1.0, 1.0, 0.5),
    "triangle": (0.5, 1.0, 0.2, 0.75),
    "star": (0.385, 0.557, 0.158, 0.555),
})
FEATURE_WEIGHTS = (1.0, 1.0, 1.0, 2.0)   # bottom share spans a narrower range but survives blur best
# Area of each ideal figure / the side of the box it is drawn in, squared: two objects are compared by the size
# their area implies for their shape (a star fills a third of its box, a square all of it).
FILL = MappingProxyType({"circle": np.pi / 4, "square": 1.0, "triangle": 0.5, "star": 0.5625 * np.sin(np.pi / 5)})

INK_SHARE = 0.3           # ink: smoothed distance from the background above this share of the faintest color's
OWN_SHARE = 0.35          # the main object: above this share of its own contrast (the p95 of its distances)
MIN_AREA = 0.004          # components smaller than this share of the image are specks, not objects
SATURATED = 0.8           # color pixels: distance from the background at least this share of the object's p95
HOLLOW = 0.45             # outlined: the deep inside of the silhouette has less than 1 - HOLLOW of full ink
STROKE = 6 / 64           # an outline's stroke: no pixel deeper than this share of the side (6 px at 64)
GAP = 5 / 64              # an outline's gaps are closed up to twice this share of the side (10 px at 64)...
BRIDGED_HOLLOW = 0.8      # ...when the outline they close has an inside this empty (1 - ink share)
STRIPE_AMPLITUDE = 0.09   # striped: a row-profile wave at the stripe period at least this strong (top row = 1)
STRIPE_WIDTH = 3 / 64     # the stripe width as a share of the image side (3 px at 64x64)
WORK_SIZE = 128           # larger pictures are box-filtered down to this side first (features are scale-free)


@dataclass(frozen=True)
class Verdict:
    """What the judge sees. Attribute fields are None when the picture has no object; the numbers say why."""

    background: str | None
    color: str | None
    shape: str | None
    style: str | None          # "plain", "outlined" or "striped"
    objects: int               # objects found (components larger than MIN_AREA)
    object_fraction: float     # the main object's filled silhouette / image area
    extent: float = 0.0
    solidity: float = 0.0
    aspect: float = 0.0        # box width / height
    top_width: float = 0.0
    bottom_share: float = 0.0
    hollowness: float = 0.0    # 1 - ink share of the silhouette's deep inside
    stripes: float = 0.0       # row-profile wave amplitude at the stripe period
    color_error: float = 0.0   # RGB distance of the object's color to its palette color's mix line

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def judge(image, close_gaps: bool = True) -> Verdict:
    """Judge a picture (PIL image or (H, W, 3) uint8 array): background, main object's color, shape, style.
    `close_gaps=False` reads an outline with gaps as drawn, an open stroke (the judge before gap closing)."""
    rgb = _as_rgb(image)                                                   # (H, W, 3) float
    bg_rgb = np.median(_border(rgb), axis=0)                               # (3,)
    background = _nearest(bg_rgb, BACKGROUNDS)
    distance = np.linalg.norm(rgb - bg_rgb, axis=2)                        # (H, W) raw: for color and style
    smooth = np.linalg.norm(_smooth(rgb) - bg_rgb, axis=2)                 # (H, W) denoised: for silhouettes
    min_area = MIN_AREA * distance.size
    objects = components(fill_holes(smooth > INK_SHARE * _faintest(bg_rgb)), min_area)
    if not objects:
        return Verdict(background, None, None, None, objects=0, object_fraction=0.0)
    main, _ = _largest(objects)
    # second look at the main object alone, at its own contrast: splits off a neighbour its soft edge touched
    strong = smooth > OWN_SHARE * np.percentile(smooth[main], 95)         # (H, W): ink at the object's contrast
    own = main & strong
    parts = components(fill_holes(own), min_area) or [main]
    main, shape = _largest(parts)
    ink = main & own                                                       # painted pixels (not the holes)
    contrast = max(float(np.percentile(distance[ink], 95)), 1.0)
    color, color_error = _color(rgb[ink], distance[ink], contrast, bg_rgb)
    depths = depth(main)
    hollowness = _hollowness(depths, distance, contrast)
    closed = _closed_outline(strong, main, distance, contrast) if close_gaps and hollowness <= HOLLOW else None
    if closed is not None:  # an outline with gaps has no inside to fill: closed, as the eye closes it
        main, depths, hollowness = closed
        shape = _nearest_shape(shape_features(main))
    stripes = _stripes(depths, distance, rgb.shape[0])
    style = "outlined" if hollowness > HOLLOW else "striped" if stripes > STRIPE_AMPLITUDE else "plain"
    return Verdict(background, color, shape, style, objects=len(objects) + len(parts) - 1,
                   object_fraction=float(main.mean()), hollowness=hollowness, stripes=stripes,
                   color_error=color_error, **shape_features(main))


def silhouette(image) -> np.ndarray:
    """(H, W) bool: every object's filled silhouette, at half its contrast: a pixel is inside when its color is at
    least halfway from the border's color to the object's (the 50 % coverage that also defines a drawn shape's
    mask), holes filled, specks left out; for comparing where a picture's objects are (IoU with a mask)."""
    rgb = _as_rgb(image)
    bg_rgb = np.median(_border(rgb), axis=0)
    distance = np.linalg.norm(rgb - bg_rgb, axis=2)                        # (H, W)
    smooth = np.linalg.norm(_smooth(rgb) - bg_rgb, axis=2)
    ink = components(fill_holes(smooth > INK_SHARE * _faintest(bg_rgb)), MIN_AREA * smooth.size)
    if not ink:
        return np.zeros(distance.shape, bool)
    contrast = float(np.percentile(distance[np.logical_or.reduce(ink)], 95))
    inside = components(fill_holes(distance >= 0.5 * contrast), MIN_AREA * distance.size)
    return np.logical_or.reduce(inside) if inside else np.zeros(distance.shape, bool)


def score(image, wanted: dict) -> dict[str, bool]:
    """{attribute: right?} for each of shape / color / background / style that `wanted` asks for (not None).

    `image` may also be a Verdict already made. A wanted style of "plain" asks for no style.
    """
    verdict = image if isinstance(image, Verdict) else judge(image)
    return compare(verdict, wanted)


def compare(verdict: Verdict, wanted: dict) -> dict[str, bool]:
    """{attribute: verdict matches} for the attributes `wanted` names with a non-None value."""
    keys = ("shape", "color", "background", "style")
    return {k: getattr(verdict, k) == wanted[k] for k in keys if wanted.get(k) is not None}


# ---- pixels ------------------------------------------------------------------------------------------------

def _as_rgb(image) -> np.ndarray:
    """The picture as a float (H, W, 3) array, box-filtered down to WORK_SIZE if it is larger."""
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3:
            raise BadInput(f"judge() wants an RGB picture, got an array of shape {array.shape}; pass a PIL image "
                           f"or an (H, W, 3) uint8 array.")
        image = Image.fromarray(array.astype(np.uint8), "RGB")
    image = image.convert("RGB")
    scale = WORK_SIZE / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BOX)
    return np.asarray(image, dtype=np.float64)


def _border(rgb) -> np.ndarray:
    """The outermost ring of pixels, (N, 3)."""
    return np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])


def _smooth(rgb) -> np.ndarray:
    """A [1, 2, 1] x [1, 2, 1] / 16 blur (edges repeated): cuts pixel noise to a third, keeps shapes."""
    p = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) / 4


def _nearest(rgb, palette) -> str:
    names = list(palette)
    return names[int(np.argmin([np.linalg.norm(rgb - palette[n]) for n in names]))]


def _faintest(bg_rgb) -> float:
    """Distance from the background to the palette color closest to it (purple on gray: 93)."""
    return float(min(np.linalg.norm(np.subtract(c, bg_rgb)) for c in COLORS.values()))


def _color(pixels, distance, contrast, bg_rgb):
    """(palette color, error) of the object's most saturated pixels (stripes' half-tones and soft edges excluded).

    Each palette color is compared through its mix line with the background (from half to a bit past full
    strength), so a faded or slightly overdone color still reads as itself.
    """
    strong = pixels[distance >= SATURATED * contrast]
    median = np.median(strong, axis=0)
    errors = {}
    for name, rgb in COLORS.items():
        direction = np.asarray(rgb, float) - bg_rgb
        t = np.clip((median - bg_rgb) @ direction / (direction @ direction), 0.5, 1.3)
        errors[name] = float(np.linalg.norm(median - bg_rgb - t * direction))
    best = min(errors, key=errors.get)
    return best, errors[best]


# ---- regions -----------------------------------------------------------------------------------------------

def label(mask) -> np.ndarray:
    """Connected components (4-neighbours) of a boolean mask: each pixel gets its component's smallest flat
    index; pixels outside the mask get -1. Min-propagation with pointer jumping, all vectorised."""
    h, w = mask.shape
    outside = h * w
    grid = np.full((h + 2, w + 2), outside)                  # a frame of `outside` around the labels
    labels = grid[1:-1, 1:-1]                                 # a view: writing it updates the grid
    labels[mask] = np.flatnonzero(mask)
    while True:
        spread = np.minimum(np.minimum(labels, grid[:-2, 1:-1]), np.minimum(grid[2:, 1:-1], grid[1:-1, :-2]))
        spread = np.where(mask, np.minimum(spread, grid[1:-1, 2:]), outside).ravel()
        for _ in range(4):  # pointer jumping: adopt the label of one's label
            inside = spread < outside
            spread[inside] = spread[spread[inside]]
        spread = spread.reshape(h, w)
        if np.array_equal(spread, labels):
            return np.where(mask, labels, -1)
        labels[:] = spread


def fill_holes(mask) -> np.ndarray:
    """The mask with every enclosed gap filled (background that cannot reach the mask's bounding box's edge)."""
    filled = mask.copy()
    if mask.any():
        box = _crop(mask)
        gaps = label(~np.pad(mask[box], 1))  # the padding joins all open background into the component of pixel 0
        filled[box] |= (gaps > 0)[1:-1, 1:-1]
    return filled


def _largest(objects):
    """(mask, shape) of the largest object, by the size its area implies for its shape."""
    shapes = [_nearest_shape(shape_features(m)) for m in objects]
    sizes = [m.sum() / FILL[shape] for m, shape in zip(objects, shapes)]
    best = int(np.argmax(sizes))
    return objects[best], shapes[best]


def components(mask, min_area) -> list:
    """Boolean masks of the mask's connected components of at least `min_area` pixels."""
    if not mask.any():
        return []
    box = _crop(mask)
    labels = label(mask[box])
    ids, areas = np.unique(labels[labels >= 0], return_counts=True)
    found = []
    for i in ids[areas >= min_area]:
        part = np.zeros_like(mask)
        part[box] = labels == i
        found.append(part)
    return found


def _crop(mask, pad=0):
    ys, xs = np.nonzero(mask)
    return slice(max(ys.min() - pad, 0), ys.max() + 1 + pad), slice(max(xs.min() - pad, 0), xs.max() + 1 + pad)


def depth(mask) -> np.ndarray:
    """Euclidean distance of each mask pixel to the nearest pixel outside it (0 outside)."""
    out = np.zeros(mask.shape)
    box = _crop(mask, pad=1)
    m = np.pad(mask[box], 1)
    p = np.pad(m, 1)
    edge = ~m & (p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:])  # outside pixels touching the mask
    inside, border = np.argwhere(m), np.argwhere(edge)                       # (N, 2), (M, 2)
    d2 = ((inside[:, None, :] - border[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    local = np.zeros(m.shape)
    local[m] = np.sqrt(d2)
    out[box] = local[1:-1, 1:-1]
    return out


def _closed_outline(strong, main, distance, contrast):
    """(silhouette, depths, hollowness) of the main object as an outline with its gaps closed, or None.

    Only thin strokes can be such an outline: the picture's ink components no deeper than STROKE of the side
    (the arcs of a ring broken in several places), when the main object's own ink is among them; a filled
    neighbour is left out. They are closed by the smallest disk radius up to GAP of the side whose closing leaves
    the main object an inside emptier than BRIDGED_HOLLOW; filled and striped objects have no such inside.
    """
    strokes = _thin_parts(strong, STROKE * strong.shape[0])
    if not (strokes & main).any():
        return None
    for radius in range(1, max(1, round(GAP * strong.shape[0])) + 1):
        labels = label(close(strokes, radius))
        ids, counts = np.unique(labels[main & strokes], return_counts=True)  # closing keeps every stroke pixel
        silhouette = labels == ids[np.argmax(counts)]
        depths = depth(silhouette)
        hollowness = _hollowness(depths, distance, contrast)
        if hollowness > BRIDGED_HOLLOW:
            return silhouette, depths, hollowness
    return None


def _thin_parts(mask, deepest) -> np.ndarray:
    """The mask's connected components whose pixels are all within `deepest` of the outside."""
    thin = np.zeros_like(mask)
    for part in components(mask, 0):
        if depth(part).max() <= deepest:
            thin |= part
    return thin


def close(mask, radius) -> np.ndarray:
    """Morphological closing with the insides filled: grown by a disk of `radius`, enclosed gaps filled, shrunk back
    by the same disk. Worked on a canvas padded by the radius, so that ink near the border is not glued to it."""
    grown = fill_holes(within(np.pad(mask, radius), radius))
    closed = grown & ~within(~grown, radius)
    return closed[radius:-radius, radius:-radius]


def within(mask, radius) -> np.ndarray:
    """Pixels no farther than `radius` (Euclidean) from a pixel of the mask (a dilation by a disk)."""
    h, w = mask.shape
    p = np.pad(mask, radius)
    near = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                near |= p[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
    return near


# ---- shape -------------------------------------------------------------------------------------------------

def shape_features(silhouette) -> dict:
    """extent, solidity, aspect, top_width and bottom_share of a filled silhouette."""
    box = silhouette[_crop(silhouette)]
    h, w = box.shape
    area = box.sum()
    widths = box.sum(axis=1)
    return {
        "extent": float(area / (h * w)),
        "solidity": float(area / hull_area(box)),
        "aspect": float(w / h),
        "top_width": float(widths[: max(1, round(h / 5))].max() / w),
        "bottom_share": float(widths @ np.clip(np.arange(h) + 1 - h / 2, 0, 1) / area),  # row i's share below h/2
    }


def hull_area(mask) -> float:
    """Area of the convex hull of a mask's pixel squares (monotone chain over each row's end corners)."""
    ys = np.nonzero(mask.any(axis=1))[0]
    first = mask[ys].argmax(axis=1)
    last = mask.shape[1] - mask[ys, ::-1].argmax(axis=1)
    xs, ys = np.concatenate([first, first, last, last]), np.concatenate([ys, ys + 1, ys, ys + 1])
    points = sorted(set(zip(xs.tolist(), ys.tolist())))

    def half(pts):
        chain = []
        for p in pts:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    hull = np.array(half(points) + half(points[::-1]), float)
    x, y = hull[:, 0], hull[:, 1]
    return float(abs(x @ np.roll(y, -1) - y @ np.roll(x, -1)) / 2)


def _cross(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _nearest_shape(features) -> str:
    """The shape whose prototype (extent, solidity, top width, bottom share) is nearest."""
    v = np.array([features[k] for k in ("extent", "solidity", "top_width", "bottom_share")])
    return min(SHAPES, key=lambda s: float(np.linalg.norm((v - SHAPES[s]) * FEATURE_WEIGHTS)))


# ---- style -------------------------------------------------------------------------------------------------

def _hollowness(depths, distance, contrast) -> float:
    """1 - the ink of the silhouette's deep inside (pixels deeper than 60% of the deepest), where the object's
    own color counts 1 and the background 0. `depths`: the silhouette's depth map (0 outside)."""
    deep = depths >= max(1.5, 0.6 * depths.max())
    if not deep.any():  # too thin to have an inside
        return 0.0
    return float(1 - np.clip(distance[deep] / contrast, 0, 1).mean())


def _stripes(depths, distance, side) -> float:
    """Amplitude of the inner rows' ink profile at the stripe period (strongest row = 1), best over nearby periods.
    `depths`: the silhouette's depth map (0 outside); only pixels 1.5 px or more inside count."""
    inner = depths >= 1.5
    counts = inner.sum(axis=1)
    rows = np.nonzero(counts >= 2)[0]
    if len(rows) < 8:
        return 0.0
    profile = (distance * inner).sum(axis=1)[rows] / counts[rows]        # mean ink of each row
    profile = (profile - profile.mean()) / max(profile.max(), 1e-9)
    periods = 2 * max(1, round(STRIPE_WIDTH * side)) * np.linspace(0.8, 1.25, 10)
    waves = np.exp(2j * np.pi * rows[None, :] / periods[:, None])         # (10, rows)
    return float(2 * np.abs(waves @ profile).max() / len(rows))
