"""Lab.txt2img / img2img / inpaint / outpaint / reproduce / save_single_file / load_embedding / encode_prompt."""

import numpy as np
import torch
from PIL import Image

from labkit import BadInput, LoraMismatch, Params, TooLarge, UnsupportedFile

from . import refuses, works
from .env import FAST

T2I, I2I, INP, OUT = "Lab.txt2img", "Lab.img2img", "Lab.inpaint", "Lab.outpaint"
REPRO, SAVE, EMB, ENC = "Lab.reproduce", "Lab.save_single_file", "Lab.load_embedding", "Lab.encode_prompt"


def t2i(*args, **kwargs):
    return lambda env: env.lab.txt2img(*args, **{**FAST, **kwargs})


def i2i(image, **kwargs):
    return lambda env: env.lab.img2img(image(env) if callable(image) else image, "a red circle", **{**FAST, **kwargs})


def inp(mask, **kwargs):
    return lambda env: env.lab.inpaint(env.picture, mask(env) if callable(mask) else mask, "a star", **{**FAST,
                                                                                                     **kwargs})


def out(**kwargs):
    return lambda env: env.lab.outpaint(env.picture, "a red circle", **{**FAST, **kwargs})


def gray16(env):
    return Image.fromarray(np.tile(np.array([0, 257, 32896, 65535], np.uint16), (64, 16)))  # 64x64, mode "I;16"


def _cfg_note(r, env):
    assert r.params.cfg == 0.5 and any("below 1" in n and "A1111 and ComfyUI" in n for n in r.notes)


def _numpy_steps(r, env):
    assert r.params.steps == 2 and type(r.params.steps) is int


def _sixteen_bit(r, env):
    from labkit.images import normalize

    assert normalize(gray16(env)).getpixel((0, 0)) == (0, 0, 0)
    assert [normalize(gray16(env)).getpixel((x, 0))[0] for x in range(4)] == [0, 1, 128, 255]
    assert gray16(env).mode == "I;16" and r.image.size == (64, 64)


def _rgba_note(r, env):
    assert any("composited over white" in n for n in r.notes)


def _float_array(r, env):
    assert r.image.size == (64, 64)


def _sixteen_bit_mask(r, env):
    from labkit.images import normalize_mask

    mask = np.full((64, 64), 0, dtype=np.uint16)
    mask[16:48, 16:48] = 65535
    assert normalize_mask(Image.fromarray(mask)).getextrema() == (0, 255)
    assert r.image.size == (64, 64)


def _alpha_mask(r, env):
    from labkit.images import normalize_mask

    la = Image.new("LA", (2, 1), (255, 0))
    la.putpixel((1, 0), (255, 255))
    assert np.asarray(normalize_mask(la)).tolist() == [[0, 255]]


def _bool_mask(r, env):
    assert r.image.size == (64, 64)


def mask16(env):
    mask = np.zeros((64, 64), dtype=np.uint16)
    mask[16:48, 16:48] = 65535
    return Image.fromarray(mask)


def bool_mask(env):
    mask = np.zeros((64, 64), dtype=bool)
    mask[16:48, 16:48] = True
    return mask


def rgba(env):
    image = Image.new("RGBA", (64, 64), (200, 40, 40, 255))
    image.paste((0, 0, 0, 0), (0, 0, 32, 64))
    return image


CASES = [
    refuses(T2I, "lab.txt2img(123)", t2i(123), r"prompt=123 is an int; give text"),
    refuses(T2I, "lab.txt2img(b'a cat')", t2i(b"a cat"), r"decode\('utf-8'\)"),
    refuses(T2I, "lab.txt2img('a cat', 'ugly'): a negative prompt where params go", t2i("a cat", "ugly"),
            "negative_prompt='...'"),
    refuses(T2I, "lab.txt2img('a cat', params={'steps': 20})", t2i("a cat", {"steps": 20}), r"not a dict.*Params\(\*\*d\)"),
    refuses(T2I, "lab.txt2img('a cat', cfg_scale=7)", t2i("a cat", cfg_scale=7), "equivalent is cfg="),
    refuses(T2I, "lab.txt2img('a cat', guidance_scale=7)", t2i("a cat", guidance_scale=7), "equivalent is cfg="),
    refuses(T2I, "lab.txt2img('a cat', num_inference_steps=30)", t2i("a cat", num_inference_steps=30), "steps="),
    refuses(T2I, "lab.txt2img('a cat', sampler_name='euler')", t2i("a cat", sampler_name="euler"), "sampler="),
    refuses(T2I, "lab.txt2img('a cat', scheduler='karras')", t2i("a cat", scheduler="karras"),
            "sampler= and schedule="),
    refuses(T2I, "lab.txt2img('a cat', denoise=0.5)", t2i("a cat", denoise=0.5), "strength="),
    refuses(T2I, "lab.txt2img('a cat', negative='ugly')", t2i("a cat", negative="ugly"), "negative_prompt="),
    refuses(T2I, "lab.txt2img('a cat', num_images_per_prompt=4)", t2i("a cat", num_images_per_prompt=4),
            "batch_size="),
    refuses(T2I, "lab.txt2img('a cat', generator=torch.Generator())", t2i("a cat", generator=torch.Generator()),
            "seed= .*labkit makes its own seeded generators"),
    refuses(T2I, "lab.txt2img('a cat', latents=torch.zeros(1, 4, 8, 8))", t2i("a cat", latents=torch.zeros(1, 4, 8, 8)),
            r"lab.pipe\(...\) directly"),
    refuses(T2I, "lab.txt2img('a cat', width=512, heigth=512)", t2i("a cat", heigth=512), "Did you mean 'height'"),
    refuses(T2I, "lab.txt2img('a cat', sampler='Eulr')", t2i("a cat", sampler="Eulr"), "Did you mean 'Euler'"),
    refuses(T2I, "lab.txt2img('a cat', schedule='Karas')", t2i("a cat", schedule="Karas"), "Did you mean 'Karras'"),
    refuses(T2I, "lab.txt2img('a cat', sampler='DPM fast')", t2i("a cat", sampler="DPM fast"),
            "no diffusers equivalent.*Choose one of"),
    refuses(T2I, "lab.txt2img('a cat', sampler='Euler a', eta=0.5)", t2i("a cat", sampler="Euler a", eta=0.5),
            "full noise"),
    refuses(T2I, "lab.txt2img('a cat', cfg=float('nan'))", t2i("a cat", cfg=float("nan")), "not a finite number"),
    refuses(T2I, "lab.txt2img('a cat', cfg=-3)", t2i("a cat", cfg=-3), "CFG scale is 0 or more"),
    refuses(T2I, "lab.txt2img('a cat', steps=10**7)", t2i("a cat", steps=10**7),
            r"estimated at .* lab.limits = labkit.Limits\(max_seconds=", TooLarge),
    refuses(T2I, "lab.txt2img('a cat', width=100000, height=100000)", t2i("a cat", width=100000, height=100000),
            "memory limit 16 GiB.*lab.limits = None turns the check off", TooLarge),
    refuses(T2I, "lab.txt2img('a cat', batch_size=10**6)", t2i("a cat", batch_size=10**6), "over the", TooLarge),
    refuses(T2I, "lab.txt2img('a cat', clip_skip=5): the toy text encoder has 2 layers", t2i("a cat", clip_skip=5),
            "has 2 layers. Use 1 or 2"),
    refuses(T2I, "lab.txt2img('a cat', seed=1.5)", t2i("a cat", seed=1.5), "whole number"),
    refuses(T2I, "lab.txt2img('a cat', on_step=5)", t2i("a cat", on_step=5), "not callable"),
    refuses(T2I, "xl.txt2img('a cat', refiner='toy-xl-refiner'): a name", lambda env: env.xl.txt2img(
            "a cat", refiner="toy-xl-refiner", **FAST), r"refiner=labkit.open\('toy-xl-refiner'\)"),
    refuses(T2I, "lab.txt2img('a cat', refiner=<an SDXL refiner Lab>) on an SD1-layout base",
            lambda env: env.lab.txt2img("a cat", refiner=env.refiner, **FAST), "does not fit"),
    refuses(T2I, "lab.txt2img('a cat', refiner_loras=['x.safetensors']) without refiner=",
            t2i("a cat", refiner_loras=["x.safetensors"]), "needs refiner="),
    refuses(T2I, "xl.txt2img('a cat', refiner=r, refiner_loras='x.safetensors'): not a list",
            lambda env: env.xl.txt2img("a cat", refiner=env.refiner, refiner_loras="x.safetensors", **FAST),
            "takes a list"),
    refuses(T2I, "xl.txt2img('a cat', refiner=r, refiner_loras=[<an SDXL base LoRA>])", lambda env: env.xl.txt2img(
            "a cat", refiner=env.refiner, refiner_loras=[env.path("sd1_lora.safetensors")], **FAST),
            "LoRAs apply to the SDXL base|Load it into", LoraMismatch),
    refuses(T2I, "refiner.txt2img('a cat'): a refiner alone", lambda env: env.refiner.txt2img("a cat", **FAST),
            "refiner refines"),
    works(T2I, "lab.txt2img('a cat', cfg=0.5)", t2i("a cat", cfg=0.5), _cfg_note,
          "runs as CFG 1 (diffusers turns guidance off at CFG <= 1); the Result's notes say what A1111 and ComfyUI "
          "would do instead, and the recipe keeps 0.5"),
    works(T2I, "lab.txt2img('a cat', steps=np.int64(2))", t2i("a cat", steps=np.int64(2)), _numpy_steps,
          "NumPy integers are taken"),
    refuses(I2I, "lab.img2img(None, 'a cat')", i2i(None), "image is None: give a PIL image"),
    refuses(I2I, "lab.img2img('photo.png', 'a cat'): a path", i2i("photo.png"), r"PIL.Image.open\(path\)"),
    refuses(I2I, "lab.img2img(torch.rand(3, 64, 64), 'a cat')", i2i(torch.rand(3, 64, 64)), "torch tensor"),
    refuses(I2I, "lab.img2img(np.zeros((64, 64, 3), dtype=np.int64), 'a cat')",
            i2i(np.zeros((64, 64, 3), dtype=np.int64)), r"ambiguous; give uint8 \(array.astype"),
    refuses(I2I, "lab.img2img(<float array 0..255>, 'a cat')", i2i(np.full((64, 64, 3), 200.0)),
            r"read as 0..1 .*pixels / 255"),
    refuses(I2I, "lab.img2img(<float array with NaN>, 'a cat')", i2i(np.full((64, 64, 3), np.nan)), "NaN"),
    refuses(I2I, "lab.img2img(np.zeros((3, 64, 64), np.uint8), 'a cat'): channels first",
            i2i(np.zeros((3, 64, 64), np.uint8)), r"transpose\(1, 2, 0\)"),
    refuses(I2I, "lab.img2img(np.zeros((0, 64, 3), np.uint8), 'a cat'): empty", i2i(np.zeros((0, 64, 3), np.uint8)),
            "not a picture"),
    refuses(I2I, "lab.img2img([[0, 1], [2, 3]], 'a cat'): a list", i2i([[0, 1], [2, 3]]), "give a PIL image"),
    refuses(I2I, "lab.img2img(image, 'a cat', strength=0)", lambda env: i2i(env.picture, strength=0)(env),
            r"outside \(0, 1\]"),
    refuses(I2I, "lab.img2img(image, 'a cat', width=8192, height=8192)",
            lambda env: i2i(env.picture, width=8192, height=8192)(env), "over the", TooLarge),
    refuses(I2I, "lab.img2img(image, 'a cat', refiner='toy-xl-refiner')",
            lambda env: i2i(env.picture, refiner="toy-xl-refiner")(env), "refiner=labkit.open"),
    works(I2I, "lab.img2img(<16-bit 'I;16' picture>, 'a cat')", i2i(gray16), _sixteen_bit,
          "16-bit pictures are scaled to 8 bits (65535 -> 255, 257 -> 1), never clipped"),
    works(I2I, "lab.img2img(<RGBA picture, half transparent>, 'a cat')", i2i(rgba), _rgba_note,
          "transparent pixels are composited over white (A1111's img2img background), and the Result says so"),
    works(I2I, "lab.img2img(<palette 'P' picture>, 'a cat')", i2i(lambda env: env.picture.convert("P")),
          _float_array, "palette pictures are expanded to RGB"),
    works(I2I, "lab.img2img(np.random.rand(64, 64, 3).astype(np.float32), 'a cat')",
          i2i(np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)), _float_array,
          "float arrays are read as 0..1"),
    works(I2I, "lab.img2img(<uint16 array>, 'a cat')", i2i(np.full((64, 64, 3), 65535, np.uint16)), _float_array,
          "uint16 arrays are scaled to 8 bits"),
    refuses(INP, "lab.inpaint(image, None, 'a star')", inp(None), "inpainting needs a mask"),
    refuses(INP, "lab.inpaint(image, <a 32x32 mask>, 'a star')", inp(Image.new("L", (32, 32), 255)),
            r"resize the mask to the image \(mask.resize\(image.size\)\)"),
    refuses(INP, "lab.inpaint(image, 'mask.png', 'a star'): a path", inp("mask.png"), "open the file first"),
    refuses(INP, "lab.inpaint(image, <int64 array mask>, 'a star')", inp(np.zeros((64, 64), np.int64)),
            "ambiguous; give uint8"),
    refuses(INP, "lab.inpaint(image, <all-black mask>, 'a star', only_masked=True)",
            inp(Image.new("L", (64, 64), 0), only_masked=True), "paint the area to redraw in white"),
    refuses(INP, "lab.inpaint(image, mask, 'a star', mask_blur=-1)", lambda env: inp(env.mask, mask_blur=-1)(env),
            r"0 \(sharp\) or more"),
    refuses(INP, "lab.inpaint(None, mask, 'a star')", lambda env: env.lab.inpaint(None, env.mask, "a star", **FAST),
            "image is None"),
    works(INP, "lab.inpaint(image, <bool array mask>, 'a star')", inp(bool_mask), _bool_mask,
          "a bool array mask is taken as white where True"),
    works(INP, "lab.inpaint(image, <16-bit 'I;16' mask>, 'a star')", inp(mask16), _sixteen_bit_mask,
          "16-bit masks are scaled to 8 bits"),
    works(INP, "lab.inpaint(image, <'LA' mask: white, partly transparent>, 'a star')",
          inp(lambda env: Image.merge("LA", (Image.new("L", (64, 64), 255), env.mask))), _alpha_mask,
          "a mask with transparency is its luminance times its alpha: a transparent pixel is not painted"),
    refuses(OUT, "lab.outpaint(image, 'a cat', left=10)", out(left=10), "non-negative multiples of 8"),
    refuses(OUT, "lab.outpaint(image, 'a cat', left=-8)", out(left=-8), "non-negative multiples of 8"),
    refuses(OUT, "lab.outpaint(image, 'a cat', left=8.0)", out(left=8.0), "whole number"),
    refuses(OUT, "lab.outpaint(image, 'a cat')", out(), "at least one margin"),
    refuses(OUT, "lab.outpaint(image, 'a cat', left=1_000_000): checked before the canvas is made",
            out(left=1_000_000), "over the", TooLarge),
    refuses(OUT, "lab.outpaint(None, 'a cat', left=8)", lambda env: env.lab.outpaint(None, "a cat", left=8, **FAST),
            "image is None"),
    refuses(REPRO, "lab.reproduce(None)", lambda env: env.lab.reproduce(None), "takes a path, PIL image, bytes"),
    refuses(REPRO, "lab.reproduce('missing.png')", lambda env: env.lab.reproduce(env.path("missing.png")),
            "no such file", UnsupportedFile),
    refuses(REPRO, "lab.reproduce(png, cfg_scale=7)", lambda env: env.lab.reproduce(env.path("picture.png"),
            cfg_scale=7), "equivalent is cfg="),
    refuses(REPRO, "lab.reproduce(png, refiner='toy-xl-refiner')", lambda env: env.lab.reproduce(
            env.path("picture.png"), refiner="toy-xl-refiner"), "refiner=labkit.open"),
    refuses(REPRO, "lab.reproduce(<an img2img recipe>) without image=", lambda env: env.lab.reproduce(
            env.path("img2img.png")), "Pass image="),
    refuses(SAVE, "lab.save_single_file(None)", lambda env: env.lab.save_single_file(None), "give a file path"),
    refuses(SAVE, "lab.save_single_file('model.ckpt')", lambda env: env.lab.save_single_file(env.path("model.ckpt")),
            "end the name with it"),
    refuses(SAVE, "lab.save_single_file('toy.safetensors'): it exists", lambda env: env.lab.save_single_file(
            env.path("toy.safetensors")), "overwrite=True"),
    refuses(SAVE, "lab.save_single_file('new.safetensors', overwrite='yes')", lambda env: env.lab.save_single_file(
            env.path("new.safetensors"), overwrite="yes"), "give True or False"),
    refuses(EMB, "lab.load_embedding(None, '<x>')", lambda env: env.lab.load_embedding(None, "<x>"), "file path"),
    refuses(EMB, "lab.load_embedding('emb.safetensors', None)", lambda env: env.lab.load_embedding(
            env.path("emb.safetensors"), None), "give text"),
    refuses(EMB, "lab.load_embedding('emb.safetensors', 'my style')", lambda env: env.lab.load_embedding(
            env.path("emb.safetensors"), "my style"), "without spaces"),
    refuses(EMB, "lab.load_embedding('emb.safetensors', '<|endoftext|>'): a word the tokenizer has",
            lambda env: env.lab.load_embedding(env.path("emb.safetensors"), "<|endoftext|>"), "choose another token"),
    refuses(EMB, "lab.load_embedding('ink.safetensors', '<x>'): a LoRA", lambda env: env.lab.load_embedding(
            env.path("loras/ink.safetensors"), "<x>"), "not a textual-inversion embedding", UnsupportedFile),
    refuses(EMB, "lab.load_embedding('xl_emb.safetensors', '<x>') on an SD1-layout model",
            lambda env: env.lab.load_embedding(env.path("xl_emb.safetensors"), "<x>"), "does not fit"),
    refuses(ENC, "lab.encode_prompt('a cat')", lambda env: env.lab.encode_prompt("a cat"),
            r"encode_prompt\(Params\(prompt=...\)\)"),
    refuses(ENC, "lab.encode_prompt(Params(), batch_size=0)", lambda env: env.lab.encode_prompt(Params(),
            batch_size=0), "at least 1"),
    refuses(ENC, "lab.encode_prompt(Params(), batch_size=1.5)", lambda env: env.lab.encode_prompt(Params(),
            batch_size=1.5), "whole number"),
]

assert all(issubclass(c.error, BadInput) or c.error in (UnsupportedFile, LoraMismatch) for c in CASES)
