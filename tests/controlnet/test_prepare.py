"""Control maps as A1111's extension makes them: preprocessors, pixel perfect, the three resize modes (each
against a hand-written reference of scripts/controlnet.py detectmap_proc and external_code.py)."""

import cv2
import numpy as np
import pytest
from PIL import Image

import labkit
from labkit.controlnet.prepare import control_map, fit, pixel_perfect_resolution
from labkit.controlnet.preprocess import PREPROCESSORS


def picture(w=96, h=64):
    rgb = np.full((h, w, 3), 245, np.uint8)
    cv2.circle(rgb, (w // 2, h // 2), min(w, h) // 3, (220, 40, 40), -1)
    return rgb


def test_canny_is_opencvs_with_a1111s_defaults():
    rgb = picture()
    assert np.array_equal(PREPROCESSORS["canny"](rgb)[:, :, 0], cv2.Canny(rgb, 100, 200))
    assert np.array_equal(PREPROCESSORS["canny"](rgb, 50, 60)[:, :, 0], cv2.Canny(rgb, 50, 60))


def test_invert_lineart_blur_tile_and_scribble():
    rgb = picture()
    assert np.array_equal(PREPROCESSORS["invert"](rgb), 255 - rgb)
    line = PREPROCESSORS["lineart_standard"](rgb)
    assert line.shape == rgb.shape and line[32, 48].max() == 0 and line.max() > 100  # lines at the edge only
    assert np.array_equal(PREPROCESSORS["blur_gaussian"](rgb, 3.0), cv2.GaussianBlur(rgb, (0, 0), 3.0))
    assert PREPROCESSORS["tile_resample"](rgb, 2.0).shape == (32, 48, 3)
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[30:34, 10:50] = 0  # a dark stroke on a white canvas
    strokes = PREPROCESSORS["scribble"](sketch)
    assert strokes[32, 20].tolist() == [255] * 3 and strokes[5, 5].max() == 0


def a1111_pixel_perfect(raw_h, raw_w, target_h, target_w, resize_mode):
    k0, k1 = float(target_h) / float(raw_h), float(target_w) / float(raw_w)
    if resize_mode == "Resize and Fill":
        estimation = min(k0, k1) * float(min(raw_h, raw_w))
    else:
        estimation = max(k0, k1) * float(min(raw_h, raw_w))
    return int(np.round(estimation))


@pytest.mark.parametrize("mode", ["Just Resize", "Crop and Resize", "Resize and Fill"])
@pytest.mark.parametrize("raw, target", [((64, 96), (64, 64)), ((512, 512), (64, 128)), ((300, 200), (768, 512))])
def test_pixel_perfect_resolution(mode, raw, target):
    assert pixel_perfect_resolution(*raw, *target, mode) == a1111_pixel_perfect(*raw, *target, mode)


def test_crop_and_resize_covers_and_crops_the_centre():
    rgb = np.zeros((64, 128, 3), np.uint8)
    rgb[:, 32:96] = 200  # the centre half is light
    out = fit(rgb, 64, 64, "Crop and Resize")
    assert out.shape == (64, 64, 3) and out.min() == 200  # only the centre is left


def test_resize_and_fill_pads_with_the_border_median():
    rgb = np.full((32, 64, 3), 10, np.uint8)
    rgb[8:24, 16:48] = 250
    out = fit(rgb, 64, 64, "Resize and Fill")
    assert out.shape == (64, 64, 3)
    assert out[0, 0].tolist() == [10, 10, 10] and out[63, 63].tolist() == [10, 10, 10]  # the border's median
    assert out[32, 32].tolist() == [250, 250, 250]


def test_just_resize_stretches():
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[:, 32:] = 255
    out = fit(rgb, 64, 64, "Just Resize")
    assert out.shape == (64, 64, 3) and out[:, :30].max() == 0 and out[:, 34:].min() == 255


def test_a_binary_map_stays_binary_when_resized():
    edges = cv2.Canny(picture(192, 192), 100, 200)
    out = fit(np.repeat(edges[:, :, None], 3, 2), 64, 64, "Just Resize")
    assert set(np.unique(out)) <= {0, 255}


def test_control_map_at_the_processor_resolution_then_fitted():
    unit = labkit.ControlUnit("x", module="canny", processor_res=256)
    cmap, notes = control_map(unit, Image.fromarray(picture()), 64, 64)
    assert cmap.size == (64, 64) and "fitted to 64x64 (Crop and Resize)" in notes[0]
    perfect, notes = control_map(unit.replace(pixel_perfect=True), Image.fromarray(picture(128, 128)), 64, 64)
    assert perfect.size == (64, 64) and notes == []  # pixel perfect: computed at the generation's own pixels


def test_empty_or_flat_control_pictures_are_refused():
    with pytest.raises(labkit.BadInput, match="one flat color"):
        control_map(labkit.ControlUnit("x"), Image.new("RGB", (64, 64), "white"), 64, 64)
    with pytest.raises(labkit.BadInput, match="control image.*not a picture"):
        control_map(labkit.ControlUnit("x"), np.zeros((0, 5, 3), np.uint8), 64, 64)
