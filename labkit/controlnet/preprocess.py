"""Model-free preprocessors, as AUTOMATIC1111's ControlNet extension names and computes them: each takes an RGB
uint8 array (H, W, 3) at the processor resolution and returns the control map (H, W, 3) uint8."""

from types import MappingProxyType

import numpy as np


def hwc3(array) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 -> (H, W, 3): gray repeated, alpha composited on white."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        rgb, alpha = array[:, :, :3].astype(np.float32), array[:, :, 3:].astype(np.float32) / 255.0
        return (rgb * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).round().astype(np.uint8)
    return array[:, :, :3]


def canny(rgb, low: float = 100, high: float = 200) -> np.ndarray:
    """OpenCV's Canny edges (white on black), A1111's thresholds 100 / 200 by default."""
    import cv2

    return hwc3(cv2.Canny(hwc3(rgb), int(low), int(high)))


def none(rgb) -> np.ndarray:
    """The picture itself is the control map."""
    return hwc3(rgb)


def invert(rgb) -> np.ndarray:
    """A1111's "invert (from white bg & black line)": 255 - pixel, so black lines on white become white on black."""
    return 255 - hwc3(rgb)


def lineart(rgb) -> np.ndarray:
    """A1111's "lineart_standard (from white bg & black line)": where a Gaussian blur (sigma 6) is brighter than
    the picture, normalised by the median of that difference (OpenCV's blur, numpy)."""
    import cv2

    x = hwc3(rgb).astype(np.float32)
    blurred = cv2.GaussianBlur(x, (0, 0), 6.0)
    intensity = np.min(blurred - x, axis=2).clip(0, 255)  # (H, W)
    strong = intensity[intensity > 8]
    intensity /= max(16.0, float(np.median(strong)) if strong.size else 16.0)
    return hwc3((intensity * 127).clip(0, 255).astype(np.uint8))


def tile_resample(rgb, down: float = 1.0) -> np.ndarray:
    """A1111's "tile_resample": the picture scaled down by `down` (1 to 8) with area averaging (OpenCV)."""
    import cv2

    image = hwc3(rgb)
    if down <= 1.0:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, int(w / down)), max(1, int(h / down))), interpolation=cv2.INTER_AREA)


def blur_gaussian(rgb, sigma: float = 9.0) -> np.ndarray:
    """A1111's "blur_gaussian": OpenCV's Gaussian blur with `sigma`."""
    import cv2

    return cv2.GaussianBlur(hwc3(rgb), (0, 0), float(sigma))


def scribble(rgb, threshold: float = 127) -> np.ndarray:
    """A scribble painted dark on a light canvas -> white strokes on black, the map scribble ControlNets expect:
    inverted, then every pixel darker than `threshold` on the canvas is a stroke (numpy)."""
    gray = hwc3(rgb).astype(np.float32).mean(axis=2)
    return hwc3(np.where(gray < threshold, 255, 0).astype(np.uint8))


class Preprocessor:
    """A named preprocessor: its function and its two sliders' names and defaults (None: no slider)."""

    def __init__(self, run, a=None, b=None, library="numpy"):
        self.run, self.a, self.b, self.library = run, a, b, library

    def __call__(self, rgb, threshold_a=None, threshold_b=None) -> np.ndarray:
        args = [v if v is not None else default[1] for v, default in ((threshold_a, self.a), (threshold_b, self.b))
                if default is not None]
        return self.run(rgb, *args)


# name -> Preprocessor: the model-free preprocessors of A1111's ControlNet extension, by the names it uses
PREPROCESSORS = MappingProxyType({
    "none": Preprocessor(none),
    "canny": Preprocessor(canny, ("low threshold", 100), ("high threshold", 200), library="OpenCV"),
    "invert": Preprocessor(invert),
    "lineart_standard": Preprocessor(lineart, library="OpenCV"),
    "tile_resample": Preprocessor(tile_resample, ("down sampling rate", 1.0), library="OpenCV"),
    "blur_gaussian": Preprocessor(blur_gaussian, ("sigma", 9.0), library="OpenCV"),
    "scribble": Preprocessor(scribble, ("threshold", 127)),
})
