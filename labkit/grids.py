"""X/Y/Z comparison grids, as A1111's "X/Y/Z plot" script: vary up to three things, keep everything else.

`grid(lab.txt2img, params, x=("cfg", [2, 7]), y=("sampler", ["Euler", "DPM++ 2M"]))` runs one generation per
cell with the same seed, so only the varied settings change, and returns a `Grid`: a labelled picture (x across
columns, y down rows, z as titled panels side by side) and every cell's Result with its full recipe.

An axis is `(name, values)`; the name is one of
- a `Params` field ("cfg", "steps", "sampler", ...) or A1111's label for it ("CFG Scale", "Denoising", ...);
- "Prompt S/R": the first value is searched in the prompt and negative prompt and replaced by each value;
- "lora:<name>": the weight of a LoRA loaded in the Lab (restored afterwards);
- "model": Labs (or names for `labkit.open`); each cell calls the same method on that Lab.

The layout (`layout`, `compose`) is pure: it places given pictures and labels, no model needed.
"""

import io
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from . import checks
from .errors import BadInput, TooLarge
from .params import Params

AXES = ("x", "y", "z")
FIELDS = tuple(f.name for f in fields(Params))
# A1111's X/Y/Z axis labels (lower case) -> Params field
A1111_AXES = {"cfg scale": "cfg", "steps": "steps", "sampler": "sampler", "seed": "seed",
                "schedule type": "schedule", "denoising": "strength", "clip skip": "clip_skip", "eta": "eta",
                "width": "width", "height": "height", "negative prompt": "negative_prompt"}
PROMPT_SR = "prompt s/r"
MODEL_NAMES = ("model", "checkpoint name")  # "model" varies the Lab itself, not only the recorded name
KIND_ORDER = {"field": 0, "prompt": 1, "lora": 2, "model": 3}  # prompt S/R applies after field changes
MIN_CELL = 128  # auto upscale: small cells are enlarged (integer factor, nearest) to at least this many pixels
CONFIRM_CELLS = 200  # a grid of more cells runs only with confirm=True (the error gives its estimated time)
FN_KEYWORDS = ("image", "mask", "refiner", "refiner_loras", "on_step", "left", "right", "top", "bottom")


# ---- axes ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One varied thing: `kind` is "field", "prompt" (A1111's Prompt S/R), "lora" or "model"; `key` is the field
    name, the search text, the LoRA name, or "model"; `values` what each cell along it uses."""

    name: str
    kind: str
    key: str
    values: tuple

    @property
    def labels(self) -> list[str]:
        """The label of each value, as the picture shows it ("cfg: 7", "ink: 0.5", the replaced text, a Lab's name)."""
        if self.kind in ("prompt", "model"):
            return [value_text(v) for v in self.values]
        return [f"{self.key}: {value_text(v)}" for v in self.values]

    def index(self, value) -> int:
        """The position of `value` (or of its label text) along this axis."""
        for i, v in enumerate(self.values):
            if v is value or v == value or value_text(v) == value:
                return i
        shown = ", ".join(value_text(v) for v in self.values)
        raise BadInput(f"{value!r} is not a value of the {self.name!r} axis; its values: {shown}.")


def value_text(value) -> str:
    """A value as a label shows it: numbers without trailing zeros, Labs by name."""
    if isinstance(value, float):
        return f"{value:g}"
    from .lab import Lab

    if isinstance(value, Lab):
        return value.name or value.family
    return str(value)


def parse_axis(spec, fn=None) -> Axis:
    """An `Axis` from `(name, values)`; BadInput naming the valid names for an unknown one."""
    if not (isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str)):
        raise BadInput(f"An axis is (name, values), e.g. ('cfg', [3, 7]); got {spec!r}.")
    name, values = spec
    if isinstance(values, str):  # A1111's X/Y/Z plot text: "3-11 (+4)", "Euler, DDIM", "10-30 [3]"
        from .sweep.values import field_kind, parse_values

        lower = name.strip().lower()
        kind = float if lower.startswith("lora:") else field_kind(name if name in FIELDS else A1111_AXES.get(lower))
        values = parse_values(values, kind, name=f"Axis {name!r}")
    if isinstance(values, bytes) or not hasattr(values, "__iter__"):
        raise BadInput(f"Axis {name!r}: values must be a list, e.g. ({name!r}, [a, b]), or A1111's text for them, "
                       f"e.g. ({name!r}, '3-11 (+4)'); got {values!r}.")
    values = tuple(values)
    if not values:
        raise BadInput(f"Axis {name!r} has no values.")
    lower = name.strip().lower()
    if name in FIELDS and name != "model" or lower in A1111_AXES:
        key = name if name in FIELDS else A1111_AXES[lower]
        if key == "seed":
            from .noise import resolve_seed

            values = tuple(resolve_seed(v) for v in values)  # a -1 draws its seed once, so the label shows it
        return Axis(name, "field", key, values)
    if lower == PROMPT_SR:
        return _prompt_axis(name, values)
    if lower.startswith("lora:"):
        return _lora_axis(name, name.split(":", 1)[1].strip(), values, fn)
    if lower in MODEL_NAMES:
        return _model_axis(name, values, fn)
    known = [*FIELDS, *(k.title() for k in A1111_AXES), "Prompt S/R", "model"]
    hint = (f" ({name} is another tool's name: labkit's equivalent is {checks.FOREIGN[name]})"
            if name in checks.FOREIGN else checks.did_you_mean(name, known))
    raise BadInput(f"Unknown axis {name!r}. Use a Params field ({', '.join(f for f in FIELDS if f != 'model')}), "
                   f"an A1111 label ({', '.join(k.title() for k in A1111_AXES)}), 'Prompt S/R', "
                   f"'lora:<name>' or 'model'.{hint}")


def _prompt_axis(name, values) -> Axis:
    if not all(isinstance(v, str) for v in values) or not values[0]:
        raise BadInput("Prompt S/R values are texts; the first (not empty) is searched in the prompt and replaced "
                       "by each value in turn, e.g. ('Prompt S/R', ['red', 'blue', 'green']).")
    return Axis(name, "prompt", values[0], values)


def _lora_axis(name, lora, values, fn) -> Axis:
    lab_of(fn, name)  # whether the LoRA is loaded is checked per cell (a model axis may change the Lab)
    if not lora:
        raise BadInput(f"Axis {name!r}: name the LoRA, e.g. 'lora:outline'.")
    return Axis(name, "lora", lora, values)


def _model_axis(name, values, fn) -> Axis:
    lab_of(fn, name)
    from .lab import Lab

    if any(not isinstance(v, (Lab, str)) for v in values):
        raise BadInput("The 'model' axis takes Labs or model names for labkit.open, e.g. ('model', [lab, 'toy']).")
    if any(isinstance(v, str) for v in values):
        from .loading import open as open_model

        values = tuple(open_model(v) if isinstance(v, str) else v for v in values)
    return Axis(name, "model", "model", values)


def lab_of(fn, axis_name: str = "model"):
    """The Lab a bound Lab method belongs to; BadInput for any other callable."""
    from .lab import Lab

    lab = getattr(fn, "__self__", None)
    if not isinstance(lab, Lab):
        raise BadInput(f"The {axis_name!r} axis needs a Lab method as fn, e.g. grid(lab.txt2img, ...); "
                       f"got {getattr(fn, '__name__', fn)!r}.")
    return lab


def parse_axes(fn, x, y, z) -> dict:
    """{"x": Axis, ...} for the axes given; BadInput when two axes vary the same thing."""
    axes = {n: parse_axis(spec, fn) for n, spec in zip(AXES, (x, y, z)) if spec is not None}
    keys = [(a.kind, a.key) for a in axes.values()]
    if len(set(keys)) < len(keys):
        raise BadInput("Two axes vary the same thing; give each axis its own setting.")
    return axes


# ---- cells -----------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """What one cell runs: the function, its Params, and the LoRA weights {name: weight} to set on its Lab."""

    fn: object
    params: Params
    loras: dict = field(default_factory=dict)


def plan_cell(fn, base: Params, choices) -> Cell:
    """The Cell for `choices`, [(Axis, value)]: fields first, then prompt S/R, LoRA weights and the model."""
    cell = Cell(fn, base)
    for axis, value in sorted(choices, key=lambda c: KIND_ORDER[c[0].kind]):
        p = cell.params
        if axis.kind == "field":
            cell.params = p.replace(**{axis.key: value})
        elif axis.kind == "prompt":
            cell.params = p.replace(prompt=p.prompt.replace(axis.key, value),
                                    negative_prompt=p.negative_prompt.replace(axis.key, value))
        elif axis.kind == "lora":
            cell.loras[axis.key] = value
        else:  # model: the same method of another Lab, which records its own name
            cell.fn = getattr(value, fn.__name__)
            cell.params = p.replace(model="")
    return cell


def indices(axes: dict):
    """Every cell index (xi, yi, zi) in reading order (panel, row, column); 0 along an absent axis."""
    n = [len(axes[a].values) if a in axes else 1 for a in AXES]
    return [(xi, yi, zi) for zi in range(n[2]) for yi in range(n[1]) for xi in range(n[0])]


def check_plan(cells: dict, axes: dict, base: Params) -> None:
    """Fail before the first generation: invalid settings, unknown samplers, a Prompt S/R text not found, a LoRA
    missing from a model's Lab."""
    from .samplers import resolve

    for cell in cells.values():
        cell.params.validate()
    for sampler, schedule in {(c.params.sampler, c.params.schedule) for c in cells.values()}:
        resolve(sampler, schedule)
    for axis in axes.values():
        if axis.kind == "prompt" and axis.key not in base.prompt + "\n" + base.negative_prompt:
            raise BadInput(f"Prompt S/R: {axis.key!r} is not in the prompt or the negative prompt, so nothing "
                           f"would change; put it in the prompt, or list the text to replace first.")
    for cell in cells.values():
        for name in cell.loras:
            lab_of(cell.fn, f"lora:{name}").loras.info(name)  # BadInput listing the loaded LoRAs


class LoraWeights:
    """Context manager: set each cell's LoRA weights (enabled) and give every touched LoRA back its weights and
    on/off state on exit, errors included."""

    def __init__(self):
        self.saved = {}  # (id(lab), name) -> (lab, name, LoraInfo)

    def set(self, lab, weights: dict) -> None:
        for name, weight in weights.items():
            self.saved.setdefault((id(lab), name), (lab, name, lab.loras.info(name)))
            lab.loras.set_weight(name, weight)
            lab.loras.enable(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        labs = {}
        for lab, name, info in self.saved.values():
            te, unet = info.weights
            lab.loras.set_weight(name, unet, te_weight=te)
            (lab.loras.enable if info.enabled else lab.loras.disable)(name)
            labs[id(lab)] = lab
        for lab in labs.values():
            lab.loras.apply()  # the weights match the restored toggles again
        return False


def run_cell(cell: Cell, loras: LoraWeights, image, mask, extra: dict):
    """Generate one cell: its LoRA weights set, `fn(params=..., image=..., mask=..., **extra)`."""
    if cell.loras:
        loras.set(lab_of(cell.fn, "lora"), cell.loras)
    kwargs = dict(extra)
    if image is not None:
        kwargs["image"] = image
    if mask is not None:
        kwargs["mask"] = mask
    return cell.fn(params=cell.params, **kwargs)


# ---- the grid --------------------------------------------------------------------------------------------------
@dataclass
class Grid:
    """A finished comparison: `image` (the labelled picture), `results` {(xi, yi, zi): Result}, `axes`
    {"x": Axis, ...} (only those given) and `base` (the shared recipe, seed resolved)."""

    image: object
    results: dict
    axes: dict
    base: Params
    upscale: int = 1

    def cells(self):
        """((x value, y value, z value), Result) for each cell in reading order; None for an absent axis."""
        for index, result in self.results.items():
            values = tuple(self.axes[a].values[i] if a in self.axes else None for a, i in zip(AXES, index))
            yield values, result

    def result(self, x=None, y=None, z=None):
        """The Result of the cell with these axis values (a value or its label text; omit an absent axis)."""
        wanted = dict(zip(AXES, (x, y, z)))
        index = []
        for a in AXES:
            axis = self.axes.get(a)
            if axis is None or (wanted[a] is None and len(axis.values) == 1):
                index.append(0)
            elif wanted[a] is None:
                raise BadInput(f"Say which {a} value: one of {', '.join(axis.labels)}.")
            else:
                index.append(axis.index(wanted[a]))
        return self.results[tuple(index)]

    def description(self) -> dict:
        """The axes (name and value labels) and the base recipe, as the saved PNG records them."""
        return {"axes": {a: {"name": ax.name, "values": [value_text(v) for v in ax.values]}
                         for a, ax in self.axes.items()},
                "base": self.base.to_dict()}

    def save(self, path) -> Path:
        """Write the grid as PNG; never replaces an existing file. Chunks: "labkit.grid" (axes + base recipe) and
        the first cell's recipe ("parameters", "labkit"), so `labkit.read_params` on it gives that cell's Params,
        as A1111's grids do."""
        from .recipes import save_image

        path = Path(path)
        if path.suffix.lower() != ".png":
            raise BadInput(f"{path.name}: a grid is saved as PNG; use a .png name.")
        if path.exists():
            raise BadInput(f"{path} already exists; a grid never replaces a file: pick another name.")
        first = next(iter(self.results.values()))
        return save_image(self.image, path, first.params, first.model, first.mode,
                          chunks={"labkit.grid": json.dumps(self.description())})

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, format="PNG")
        return buf.getvalue()

    def __repr__(self) -> str:
        shape = " x ".join(f"{a}={ax.name}({len(ax.values)})" for a, ax in self.axes.items()) or "1 cell"
        return f"<Grid {shape}, {self.image.width}x{self.image.height}>"


def grid(fn, params: Params | None = None, x=None, y=None, z=None, *, image=None, mask=None, upscale=None,
         label_size=None, progress: bool = True, confirm: bool = False, **overrides) -> Grid:
    """Run `fn` once per cell of up to three axes and lay the pictures out with labels, A1111's X/Y/Z plot.

    `fn`: `lab.txt2img`, `lab.img2img`, `lab.inpaint` or any `fn(params=..., **kw) -> Result`; `image`/`mask` are
    passed on. `params` (default Params()) with `overrides` (Params fields) is the base recipe; other keyword
    arguments go to `fn` (e.g. `refiner=`). A base seed of -1 is drawn once, so every cell shares it.
    `upscale`: integer display enlargement of the cells (default: enough for ~128 px); results keep the originals.
    A grid of more than CONFIRM_CELLS (200) cells runs only with `confirm=True`: the error says how many cells and
    how long they are estimated to take.
    """
    from .noise import resolve_seed

    settings, extra = check_grid_args(fn, params, overrides, upscale, label_size, progress, confirm)
    base = (params or Params()).replace(**settings)
    base = base.replace(seed=resolve_seed(base.seed))
    axes = parse_axes(fn, x, y, z)
    cells = {i: plan_cell(fn, base, [(axes[a], axes[a].values[n]) for a, n in zip(AXES, i) if a in axes])
             for i in indices(axes)}
    check_plan(cells, axes, base)
    if len(cells) > CONFIRM_CELLS and not confirm:
        raise TooLarge(f"This grid has {len(cells)} cells{estimated_time(cells, image)}; a grid over "
                       f"{CONFIRM_CELLS} cells runs only when asked: pass confirm=True, or give the axes fewer values.")
    results = run_cells(cells, image, mask, extra, progress)
    pictures = {i: r.image for i, r in results.items()}
    factor = upscale or auto_upscale([im.size for im in pictures.values()])
    labels = [axes[a].labels if a in axes else [] for a in AXES]
    picture = compose(pictures, *labels, upscale=factor, label_size=label_size)
    return Grid(picture, results, axes, base, factor)


def check_grid_args(fn, params, overrides: dict, upscale, label_size, progress, confirm) -> tuple[dict, dict]:
    """(Params settings, keywords for fn) from grid()'s keywords, once every argument is usable."""
    if not callable(fn):
        raise BadInput(f"grid() takes the function to run first, e.g. grid(lab.txt2img, ...), not "
                       f"{checks.kind(fn)}.")
    if params is not None and not isinstance(params, Params):
        raise BadInput(f"params= takes a labkit.Params (or None), not {checks.kind(params)}; pass settings as "
                       f"keywords.")
    for name, value in (("upscale", upscale), ("label_size", label_size)):
        if value is not None:
            checks.whole(name, value, low=1, high=64 if name == "upscale" else 512, example=2)
    checks.flag("progress", progress)
    checks.flag("confirm", confirm)
    from .lab import Lab

    foreign = [k for k in overrides if k not in FIELDS and k not in FN_KEYWORDS]
    if foreign and (isinstance(getattr(fn, "__self__", None), Lab) or any(k in checks.FOREIGN for k in foreign)):
        checks.unknown_keywords(foreign, FIELDS + FN_KEYWORDS, "grid")  # a Lab method would refuse them per cell
    return ({k: v for k, v in overrides.items() if k in FIELDS},
            {k: v for k, v in overrides.items() if k not in FIELDS})


def estimated_time(cells: dict, image) -> str:
    """", estimated at 2.3 h (8 s per cell)" from the first cell's Lab estimate, or "" without a Lab."""
    from .lab import Lab
    from .limits import duration, estimate

    first = next(iter(cells.values()))
    lab = getattr(first.fn, "__self__", None)
    if not isinstance(lab, Lab):
        return ""
    p, picture = first.params, getattr(image, "size", None)
    width, height = (p.width or (picture[0] if picture else lab.native_size),
                     p.height or (picture[1] if picture else lab.native_size))
    mode = "txt2img" if first.fn.__name__ == "txt2img" else "img2img"
    snapped = {"width": max(8, width - width % 8), "height": max(8, height - height % 8)}
    seconds = estimate(lab, p.replace(**snapped), mode).seconds
    return f", estimated at {duration(seconds * len(cells))} ({duration(seconds)} per cell on {lab.device})"


def run_cells(cells: dict, image, mask, extra: dict, progress: bool) -> dict:
    """{index: Result}, one generation per cell, LoRA weights restored afterwards."""
    from tqdm.auto import tqdm

    results = {}
    with LoraWeights() as loras:
        for index in tqdm(cells, desc="grid", disable=not progress, leave=False):
            results[index] = run_cell(cells[index], loras, image, mask, extra)
    return results


# ---- layout (pure) ---------------------------------------------------------------------------------------------
def auto_upscale(sizes, target: int = MIN_CELL) -> int:
    """The smallest integer factor that makes the largest cell's shorter side at least `target` pixels."""
    side = min(max(w for w, _ in sizes), max(h for _, h in sizes))
    return max(1, math.ceil(target / side))


def font_for(cell_w: int, cell_h: int, size: int | None = None):
    """Pillow's default (scalable) font, sized to the cells unless `size` is given."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size or min(48, max(12, (cell_w + cell_h) // 25)))


def wrap(text: str, font, width: int) -> list[str]:
    """`text` split into lines no wider than `width` pixels where spaces allow."""
    lines = []
    for word in text.split(" "):
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


@dataclass
class GridLayout:
    """Where everything goes: the canvas `size`, each cell's box {(xi, yi, zi): (left, top, right, bottom)} and
    each label as (lines, box) to be centred in that box."""

    size: tuple
    boxes: dict
    labels: list
    font: object


def layout(sizes: dict, x_labels=(), y_labels=(), z_labels=(), *, upscale: int = 1,
           label_size: int | None = None) -> GridLayout:
    """Place cells of the given (w, h) sizes {(xi, yi, zi): (w, h)}, scaled by `upscale`, with x labels above the
    columns, y labels left of the rows and z labels as titles over side-by-side panels. An empty label list
    draws no band for that axis."""
    cw = max(w for w, _ in sizes.values()) * upscale
    ch = max(h for _, h in sizes.values()) * upscale
    font = font_for(cw, ch, label_size)
    pad = max(2, round(getattr(font, "size", 11) / 3))  # a bitmap font (Pillow without FreeType) has no size
    line = font.getbbox("Ag")[3] + pad // 2
    counts = (1 + max(index[n] for index in sizes) for n in range(3))
    nx, ny, nz = (max(n, len(labels)) for n, labels in zip(counts, (x_labels, y_labels, z_labels)))

    x_lines = [wrap(t, font, cw - 2 * pad) for t in x_labels]
    y_lines = [wrap(t, font, cw) for t in y_labels]
    top = max((len(ls) for ls in x_lines), default=0) * line + (2 * pad if x_labels else 0)
    left = max((font.getlength(s) for ls in y_lines for s in ls), default=0)
    left = math.ceil(left) + 2 * pad if y_labels else 0
    panel_w, gap = left + nx * cw, (3 * pad if nz > 1 else 0)
    z_lines = [wrap(t, font, panel_w - 2 * pad) for t in z_labels]
    title = max((len(ls) for ls in z_lines), default=0) * line + (2 * pad if z_labels else 0)

    boxes, labels = {}, []
    for zi in range(nz):
        ox = zi * (panel_w + gap)
        if z_labels:
            labels.append((z_lines[zi], (ox, 0, ox + panel_w, title)))
        for xi in range(nx):
            x0 = ox + left + xi * cw
            if x_labels:
                labels.append((x_lines[xi], (x0, title, x0 + cw, title + top)))
            for yi in range(ny):
                y0 = title + top + yi * ch
                if y_labels and xi == 0:
                    labels.append((y_lines[yi], (ox, y0, ox + left, y0 + ch)))
                if (xi, yi, zi) in sizes:
                    w, h = (s * upscale for s in sizes[(xi, yi, zi)])
                    cx, cy = x0 + (cw - w) // 2, y0 + (ch - h) // 2
                    boxes[(xi, yi, zi)] = (cx, cy, cx + w, cy + h)
    size = (nz * panel_w + (nz - 1) * gap, title + top + ny * ch)
    return GridLayout(size, boxes, labels, font)


def compose(images: dict, x_labels=(), y_labels=(), z_labels=(), *, upscale: int = 1,
            label_size: int | None = None, background=(255, 255, 255), color=(0, 0, 0)):
    """The labelled grid picture (PIL RGB) of `images` {(xi, yi, zi): PIL image}; see `layout`."""
    from PIL import Image, ImageDraw

    plan = layout({i: im.size for i, im in images.items()}, x_labels, y_labels, z_labels, upscale=upscale,
                  label_size=label_size)
    canvas = Image.new("RGB", plan.size, background)
    for index, (l, t, r, b) in plan.boxes.items():
        picture = images[index].convert("RGB")
        if picture.size != (r - l, b - t):
            picture = picture.resize((r - l, b - t), Image.Resampling.NEAREST)
        canvas.paste(picture, (l, t))
    draw = ImageDraw.Draw(canvas)
    for lines, box in plan.labels:
        draw.multiline_text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), "\n".join(lines), fill=color,
                            font=plan.font, anchor="mm", align="center")
    return canvas
