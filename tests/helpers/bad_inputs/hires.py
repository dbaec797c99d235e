"""Hires fix (Params and Lab.txt2img) and upscalers (labkit.upscale, labkit.inspect): refused before any work."""

import labkit
from labkit import TooLarge, UnsafeFile, UnsupportedFile

from . import refuses, works
from .env import FAST

T2I, I2I, INP, UP, INSPECT, PARAMS = "Lab.txt2img", "Lab.img2img", "Lab.inpaint", "labkit.upscale", \
    "labkit.inspect", "Params"


def t2i(lab="lab", **kwargs):
    return lambda env: getattr(env, lab).txt2img("a red circle", hires=True, **{**FAST, **kwargs})


def up(name, scale=2.0, **kwargs):
    return lambda env: labkit.upscale(env.picture, env.path(name) if "." in name else name, scale, **kwargs)


def _bigger(r, env):
    assert r.image.size == (128, 128) and r.first_pass[0].size == (64, 64) and r.params.hires


def _cut(r, env):
    assert r.image.size == (128, 96) and r.params.width == 64 and r.params.hires_resize_y == 96


CASES = [
    refuses(PARAMS, "Params(hires=True, hires_scale=1)", lambda env: labkit.Params(hires=True, hires_scale=1),
            "does not make the picture bigger.*hires_scale=2"),
    refuses(PARAMS, "Params(hires_scale=0)", lambda env: labkit.Params(hires_scale=0), "more than 1 and at most 8"),
    refuses(PARAMS, "Params(hires_resize_x=100)", lambda env: labkit.Params(hires_resize_x=100),
            "not a multiple of 8.*use 96"),
    refuses(PARAMS, "Params(hires_steps=-1)", lambda env: labkit.Params(hires_steps=-1), "0 runs as many steps"),
    refuses(PARAMS, "Params(hires=True, strength=0): hires denoise 0", lambda env: labkit.Params(hires=True,
                                                                                                strength=0),
            r"outside \(0, 1\]"),
    refuses(PARAMS, "Params(hires=True, strength=1.5)", lambda env: labkit.Params(hires=True, strength=1.5),
            r"outside \(0, 1\]"),
    refuses(PARAMS, "Params(hr_scale=2): A1111's name", lambda env: labkit.Params(hr_scale=2),
            "equivalent is hires_scale="),
    refuses(T2I, "txt2img(hires=True, hires_resize_x=48): smaller than the first pass", t2i(hires_resize_x=48),
            "smaller than the first pass.*at least the first pass's size"),
    refuses(T2I, "txt2img(hires=True, hires_upscaler='R-ESRGAN 4x+'): not installed",
            t2i(hires_upscaler="R-ESRGAN 4x+"), "Unknown upscaler 'R-ESRGAN 4x\\+'.*Available: Latent.*Lanczos"),
    refuses(T2I, "txt2img(hires=True, hires_upscaler='lanczos')", t2i(hires_upscaler="lanczos"),
            "Did you mean 'Lanczos'"),
    refuses(T2I, "txt2img(hires=True, hires_scale=8): over the memory limit", t2i(hires_scale=8, width=512, height=512),
            "estimated at.*GiB.*labkit.Limits", TooLarge),
    refuses(T2I, "txt2img(hires=True, hires_checkpoint='other') without hires_lab", t2i(hires_checkpoint="other"),
            "pass txt2img\\(..., hires_lab=second\\)"),
    refuses(T2I, "txt2img(hires=True, hires_lab=<an SDXL Lab>) on an SD1 Lab",
            lambda env: env.lab.txt2img("a red circle", hires=True, hires_lab=env.xl, **FAST),
            "cannot continue a toy picture's latents"),
    refuses(T2I, "txt2img(hires_lab=<Lab>) without hires=True",
            lambda env: env.lab.txt2img("a red circle", hires_lab=env.lab, **FAST), "needs hires=True"),
    refuses(T2I, "txt2img(hires=True) on an inpainting model", t2i("inpaint"), "an inpainting model has none"),
    refuses(I2I, "img2img(image, hires=True)", lambda env: env.lab.img2img(env.picture, "a red circle", hires=True,
                                                                           **FAST),
            "img2img has none \\(A1111 ignores its hires fields there\\).*labkit.upscale"),
    refuses(INP, "inpaint(image, mask, hires=True)",
            lambda env: env.lab.inpaint(env.picture, env.mask, "a red circle", hires=True, **FAST),
            "inpaint has none"),
    works(T2I, "txt2img(hires=True): hires_scale 2 from 64 px", t2i(), _bigger,
          "two passes: 64x64, then 128x128; `first_pass` keeps the first"),
    works(T2I, "txt2img(hires=True, hires_resize_x=128, hires_resize_y=96)", t2i(hires_resize_x=128,
                                                                                hires_resize_y=96), _cut,
          "upscaled to cover 128x96 (128x128), its center cut out, as A1111 does"),
    refuses(UP, "labkit.upscale(picture, 'Lanczos', 1)", up("Lanczos", 1), "more than 1 and at most 16"),
    refuses(UP, "labkit.upscale(picture, 'Latent')", up("Latent"), "latent modes upscale latents: hires fix only"),
    refuses(UP, "labkit.upscale(picture, '4x-UltraSharp')", up("4x-UltraSharp"),
            "Unknown upscaler.*Available: None, Lanczos, Nearest"),
    refuses(UP, "labkit.upscale(picture, 'code_upscaler.pth'): a pickle with code", up("code_upscaler.pth"),
            "weights_only=True.*could run code", UnsafeFile),
    refuses(UP, "labkit.upscale(picture, 'mystery_upscaler.safetensors'): an unknown architecture",
            up("mystery_upscaler.safetensors"), "not an upscaler architecture.*ESRGAN", UnsupportedFile),
    refuses(UP, "labkit.upscale(picture, 'Lanczos', 2, tile=64, overlap=40)", up("Lanczos", tile=64, overlap=40),
            "under half the tile"),
    refuses(INSPECT, "labkit.inspect('code_upscaler.pth')", lambda env: labkit.inspect(env.path("code_upscaler.pth")),
            "weights_only=True", UnsafeFile),
    refuses(INSPECT, "labkit.inspect('meta.pth'): a pickle that is not an upscaler",
            lambda env: labkit.inspect(env.path("meta.pth")), "not an upscaler labkit knows", UnsupportedFile),
]
