"""MaskCanvas (labkit/ui/mask.py + widgets/mask_canvas.js): strokes in, PIL "L" mask out, no browser."""

import json
import math
import random
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from labkit.errors import BadInput, UnsupportedFile
from labkit.ui.mask import MaskCanvas, rasterize, widget_file

CLASSES = ("labkit-mask-canvas", "labkit-mask-overlay", "labkit-mask-undo", "labkit-mask-clear",
           "labkit-mask-invert", "labkit-mask-eraser", "labkit-mask-brush", "labkit-mask-feather")


def picture(w=64, h=64):
    return Image.new("RGB", (w, h), (40, 90, 160))


def painted(canvas):
    return np.asarray(canvas.mask) == 255  # (H, W) bool


# ---- files and the browser side ------------------------------------------------------------------------
def test_widget_files_are_loaded_from_widgets_folder():
    js, css = widget_file("mask_canvas.js"), widget_file("mask_canvas.css")
    assert js.parent.name == css.parent.name == "widgets" and js.is_file() and css.is_file()
    w = MaskCanvas()
    assert "export default" in w._esm and w._esm == js.read_text()
    assert ".labkit-mask-overlay" in w._css and w._css == css.read_text()
    with pytest.raises(FileNotFoundError, match="pip install -e"):
        widget_file("no_such_widget.js")


def test_js_names_every_element_browser_tests_use():
    source = widget_file("mask_canvas.js").read_text()
    missing = [name for name in CLASSES if f'"{name}"' not in source]
    assert not missing
    for event in ("strokes", "inverted", "image_png", "image_width", "image_height", "feather"):
        assert f"change:{event}" in source


def node_or_skip():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: cannot check the widget's JavaScript")
    return node


def test_js_parses(tmp_path):
    node = node_or_skip()
    module = tmp_path / "mask_canvas.mjs"
    shutil.copy(widget_file("mask_canvas.js"), module)
    result = subprocess.run([node, "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def random_strokes(rng, w, h, n=12):
    strokes = []
    for _ in range(n):
        points = [[round(rng.uniform(-8, w + 8), 2), round(rng.uniform(-8, h + 8), 2)]
                  for _ in range(rng.choice([1, 2, 5]))]
        strokes.append({"points": points, "size": rng.choice([1, 2, 3, 7, 12]), "erase": rng.random() < 0.3})
    return strokes


def test_js_overlay_rasterizes_exactly_like_python(tmp_path):
    """The overlay the user sees is the mask Python reads: both rules give identical bytes."""
    node = node_or_skip()
    module = tmp_path / "mask_canvas.mjs"
    shutil.copy(widget_file("mask_canvas.js"), module)
    w, h = 37, 29
    cases = [random_strokes(random.Random(seed), w, h) for seed in range(5)]
    cases.append([{"points": [[18.5, 14.5]], "size": 10, "erase": False},  # edge pixels at distance exactly 5
                  {"points": [[2, 3], [30, 3], [30, 25]], "size": 4, "erase": False},
                  {"points": [[18.5, 14.5]], "size": 2, "erase": True}])
    script = (f"import {{ rasterize }} from {json.dumps(module.as_uri())};\n"
              "import { readFileSync } from 'node:fs';\n"
              "const { cases, w, h } = JSON.parse(readFileSync(0, 'utf8'));\n"
              "console.log(JSON.stringify(cases.map((s) => Array.from(rasterize(s, w, h)))));\n")
    result = subprocess.run([node, "--input-type=module", "-e", script], input=json.dumps(
        {"cases": cases, "w": w, "h": h}), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for strokes, js in zip(cases, json.loads(result.stdout)):
        python = rasterize(strokes, w, h)
        assert 0 < (python == 255).sum() < w * h  # the case paints something but not everything
        assert np.array_equal(np.asarray(js, np.uint8).reshape(h, w), python)


# ---- painting ------------------------------------------------------------------------------------------
def test_a_dot_paints_a_disk_of_the_brush_size():
    w = MaskCanvas(picture())
    w.stroke([(32, 32)], size=10)  # center on the corner between pixels 31 and 32
    mask, on = w.mask, painted(w)
    assert mask.mode == "L" and mask.size == (64, 64)
    assert set(np.unique(np.asarray(mask))) == {0, 255}
    assert on[31, 31] and on[32, 32] and on[32, 27] and on[27, 32]  # (row, col): center and edge of the disk
    assert not on[32, 26] and not on[26, 32] and not on[0, 0] and not on[50, 50]
    assert abs(on.sum() - math.pi * 5 ** 2) < 0.1 * math.pi * 5 ** 2
    assert np.array_equal(on, on[::-1, ::-1])  # symmetric about the corner it is centered on


def test_strokes_as_the_browser_sends_them_paint_a_capsule():
    w = MaskCanvas(picture())
    w.strokes = [{"points": [[8.0, 16.0], [30.5, 16.0], [56.0, 16.0]], "size": 6, "erase": False}]
    on = painted(w)
    assert on[14, 30] and on[17, 30] and on[16, 5] and on[16, 58]  # body, and both round caps
    assert not on[12, 30] and not on[19, 30] and not on[16, 4] and not on[16, 59]
    assert not on[13, 5] and not on[13, 58]  # the caps are round, not square
    expected = 48 * 6 + math.pi * 3 ** 2  # rectangle + the two half-disk caps
    assert abs(on.sum() - expected) < 0.05 * expected


def test_strokes_paint_in_order_and_erase():
    w = MaskCanvas(picture())
    w.stroke([(32, 32)], size=30)
    w.stroke([(32, 32)], size=10, erase=True)
    on = painted(w)
    assert not on[32, 32] and on[32, 44] and not on[2, 2]  # a hole in a ring
    w.stroke([(32, 32)], size=4)  # painting again after the erase wins
    assert painted(w)[32, 32]
    w.eraser, w.brush = True, 64
    w.stroke([(32, 32)])  # size and erase default to the toolbar's brush and eraser
    assert w.strokes[-1]["size"] == 64 and w.strokes[-1]["erase"] is True
    assert not painted(w).any()


def test_points_outside_the_picture_are_clipped():
    w = MaskCanvas(picture(16, 16))
    w.stroke([(-4, -4), (2, 2)], size=6)
    w.stroke([(100, 100)], size=6)  # entirely outside: paints nothing, raises nothing
    on = painted(w)
    assert on[0, 0] and on[2, 2] and not on[15, 15] and on.sum() < 40


def test_undo_clear_invert():
    w = MaskCanvas(picture())
    w.stroke([(10, 10)], size=8)
    w.stroke([(50, 50)], size=8)
    w.undo()
    on = painted(w)
    assert len(w.strokes) == 1 and on[10, 10] and not on[50, 50]
    w.invert()
    assert w.inverted and not painted(w)[10, 10] and painted(w)[50, 50]
    assert np.array_equal(painted(w), ~on)
    w.invert()
    w.clear()
    w.undo()  # nothing left to undo: no error
    assert w.strokes == [] and not painted(w).any()


# ---- a picture of another size -------------------------------------------------------------------------
def test_set_image_of_another_size_rescales_the_strokes_and_says_so():
    w = MaskCanvas(picture(64, 32))
    w.stroke([(16, 8), (48, 8)], size=4)
    before = painted(w)
    w.set_image(picture(128, 64))
    assert (w.image_width, w.image_height) == (128, 64) and w.mask.size == (128, 64)
    assert "64x32" in w.note and "128x64" in w.note and "rescaled" in w.note
    assert w.strokes[0]["points"] == [[32.0, 16.0], [96.0, 16.0]] and w.strokes[0]["size"] == 8
    after = painted(w)
    assert after[16, 64] and not after[8, 32]
    assert abs(after.sum() - 4 * before.sum()) < 0.1 * 4 * before.sum()
    w.set_image(picture(128, 64))  # same size: nothing rescaled, the old note goes
    assert w.note == "" and w.strokes[0]["size"] == 8
    assert Image.open(__import__("io").BytesIO(w.image_png)).size == (128, 64)


def test_set_image_from_a_path(tmp_path):
    path = tmp_path / "pic.png"
    picture(20, 10).save(path)
    w = MaskCanvas(str(path))
    assert (w.image_width, w.image_height) == (20, 10) and w.mask.size == (20, 10)
    with pytest.raises(UnsupportedFile, match="missing.png"):
        w.set_image(tmp_path / "missing.png")


# ---- feather -------------------------------------------------------------------------------------------
def test_feather_default_mirrors_params_mask_blur():
    from labkit.params import Params

    assert MaskCanvas().feather == Params().mask_blur


def test_feathered_is_what_the_inpaint_path_blurs():
    from types import SimpleNamespace

    from diffusers.image_processor import VaeImageProcessor

    from labkit.images import blur, check_mask

    image = picture()
    w = MaskCanvas(image, feather=3)
    w.stroke([(32, 32)], size=24)
    soft = np.asarray(w.feathered())
    edge = soft[32, 20:45]
    assert soft[32, 32] == 255 and soft[0, 0] == 0
    assert ((edge > 0) & (edge < 255)).sum() >= 4  # a soft ramp on both edges
    # labkit's inpaint path: images.blur(pipe, check_mask(mask, image), p.mask_blur) with the pipeline's processor
    processor = VaeImageProcessor(vae_scale_factor=8, do_normalize=False, do_binarize=True, do_convert_grayscale=True)
    reference = blur(SimpleNamespace(mask_processor=processor), check_mask(w.mask, image), w.feather)
    assert np.array_equal(soft, np.asarray(reference))
    assert np.array_equal(np.asarray(w.feathered(0)), np.asarray(w.mask))


# ---- bad input -----------------------------------------------------------------------------------------
def test_bad_strokes_raise_bad_input_naming_the_fix():
    w = MaskCanvas(picture())
    with pytest.raises(BadInput, match="size >= 1"):
        w.stroke([(1, 1)], size=0)
    with pytest.raises(BadInput, match="size >= 1"):
        w.strokes = [{"points": [[1, 1]], "size": 0.5, "erase": False}]
    with pytest.raises(BadInput, match="non-empty list"):
        w.stroke([])
    with pytest.raises(BadInput, match="'points'"):
        w.strokes = [{"size": 3}]
    with pytest.raises(BadInput, match="brush >= 1"):
        w.brush = 0
    assert w.strokes == [] and w.brush == 12  # nothing bad was kept


def test_a_picture_of_zero_size_is_bad_input():
    w = MaskCanvas()
    with pytest.raises(BadInput, match="set_image"):
        w.mask
    with pytest.raises(BadInput, match="0x5"):
        w.set_image(Image.new("RGB", (0, 5)))


# ---- headless -----------------------------------------------------------------------------------------
def test_headless_repr_is_a_readable_summary():
    w = MaskCanvas(picture(10, 10))
    w.stroke([(0, 5), (10, 5)], size=2)  # rows 4 and 5: 20 of 100 pixels
    assert repr(w) == "MaskCanvas 10x10, 1 stroke, 20% painted, inverted: no"
    w.invert()
    data, _ = w._repr_mimebundle_()
    assert data["text/plain"] == "MaskCanvas 10x10, 1 stroke, 80% painted, inverted: yes"
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == w.model_id
    assert repr(MaskCanvas()) == "MaskCanvas (no picture), 0 strokes"
