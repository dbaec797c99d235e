"""From a unit's picture to the control tensor, as A1111's ControlNet extension does it: the preprocessor at its
resolution (the short side; pixel perfect computes it), then the map fitted to the generation size by the resize
mode, with the extension's choice of interpolation. OpenCV does the resizing."""

import numpy as np

from ..errors import BadInput
from .preprocess import PREPROCESSORS, hwc3

# modules that work at the processor resolution (the picture resized so its short side is that, edge-padded to
# a multiple of 64 while the module runs); the others take the picture as it is
AT_RESOLUTION = ("canny", "lineart_standard", "blur_gaussian")


def pixel_perfect_resolution(raw_h: int, raw_w: int, target_h: int, target_w: int, resize_mode: str) -> int:
    """The processor resolution that makes the map's pixels the generation's pixels (the extension's formula)."""
    k0, k1 = target_h / raw_h, target_w / raw_w
    k = min(k0, k1) if resize_mode == "Resize and Fill" else max(k0, k1)
    return int(np.round(k * min(raw_h, raw_w)))


def resize_with_pad(image: np.ndarray, resolution: int):
    """(the picture with its short side `resolution` (cubic up, area down), edge-padded to multiples of 64,
    a function that crops a map of it back to the unpadded size)."""
    import cv2

    h, w = image.shape[:2]
    k = resolution / min(h, w)
    new_h, new_w = int(np.round(h * k)), int(np.round(w * k))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    pad_h, pad_w = -new_h % 64, -new_w % 64
    padded = np.pad(resized, [[0, pad_h], [0, pad_w], [0, 0]], mode="edge")
    return padded, lambda out: out[:new_h, :new_w]


def run_module(image: np.ndarray, module: str, resolution: int, threshold_a=None, threshold_b=None) -> np.ndarray:
    """The preprocessor's map (H', W', 3) uint8 of an RGB picture."""
    if module not in AT_RESOLUTION:
        return hwc3(PREPROCESSORS[module](image, threshold_a, threshold_b))
    padded, unpad = resize_with_pad(hwc3(image), resolution)
    return hwc3(unpad(PREPROCESSORS[module](padded, threshold_a, threshold_b)))


def quality_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The extension's `high_quality_resize`: nearest for maps of few colors (segmentation-like), area when
    shrinking, cubic when enlarging; a black-and-white map stays black and white (Otsu's threshold after)."""
    import cv2

    if image.shape[:2] == (height, width):
        return image
    colors = len(np.unique(image.reshape(-1, image.shape[2]), axis=0))
    binary = colors == 2 and image.min() < 16 and image.max() > 240
    smaller = width * height < image.shape[0] * image.shape[1]
    if 2 < colors < 200:
        interpolation = cv2.INTER_NEAREST
    else:
        interpolation = cv2.INTER_AREA if smaller else cv2.INTER_CUBIC
    out = cv2.resize(image, (width, height), interpolation=interpolation)
    if binary:
        gray = out.astype(np.float32).mean(axis=2).clip(0, 255).astype(np.uint8)
        _, gray = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        out = hwc3(gray)
    return out


def fit(image: np.ndarray, width: int, height: int, resize_mode: str) -> np.ndarray:
    """The map fitted to width x height: "Just Resize" stretches; "Crop and Resize" covers and centre-crops;
    "Resize and Fill" fits inside and fills the rest with the median color of the map's border."""
    if resize_mode == "Just Resize":
        return quality_resize(image, width, height)
    old_h, old_w = image.shape[:2]
    k0, k1 = height / old_h, width / old_w
    if resize_mode == "Crop and Resize":
        k = max(k0, k1)
        out = quality_resize(image, int(np.round(old_w * k)), int(np.round(old_h * k)))
        top, left = (out.shape[0] - height) // 2, (out.shape[1] - width) // 2
        return out[top:top + height, left:left + width]
    k = min(k0, k1)
    out = quality_resize(image, int(np.round(old_w * k)), int(np.round(old_h * k)))
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]], axis=0)  # (n, 3)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = np.median(border, axis=0).astype(np.uint8)
    top, left = (height - out.shape[0]) // 2, (width - out.shape[1]) // 2
    canvas[top:top + out.shape[0], left:left + out.shape[1]] = out
    return canvas


def control_map(unit, picture, width: int, height: int):
    """(the control map as a PIL image of width x height, notes) of `unit` on `picture` (any image input)."""
    from PIL import Image

    from ..images import to_rgb

    rgb = np.asarray(to_rgb(picture, "the control image"), np.uint8)  # BadInput for None, paths, empty pictures
    if rgb.max() == rgb.min():
        raise BadInput(f"The control picture is one flat color ({rgb.flat[0]}): it holds nothing to follow. Give an "
                       f"edge map, a sketch or a picture to preprocess (module='canny' makes edges from a photo).")
    notes = []
    resolution = unit.processor_res
    if unit.pixel_perfect:
        resolution = pixel_perfect_resolution(*rgb.shape[:2], height, width, unit.resize_mode)
    mapped = run_module(rgb, unit.module, resolution, unit.threshold_a, unit.threshold_b)
    if mapped.shape[:2] != (height, width):
        notes.append(f"control map {mapped.shape[1]}x{mapped.shape[0]} fitted to {width}x{height} "
                     f"({unit.resize_mode})")
    return Image.fromarray(fit(mapped, width, height, unit.resize_mode)), notes
