"""lab.loras, labkit.grid, Result.save, labkit.lora.train, labkit.samplers, labkit.tokenizer, labkit.Limits."""

import labkit
from labkit import BadInput, LoraMismatch, Params, TooLarge, UnsupportedFile
from labkit import samplers as sm

from . import refuses
from .env import FAST

LORAS, GRID, SAVE, TRAIN = "lab.loras", "labkit.grid", "Result.save", "labkit.lora.train"
SAMPLERS, TOKENIZER, LIMITS = "labkit.samplers", "labkit.tokenizer", "labkit.Limits"


def loras(method, *args, **kwargs):
    return lambda env: getattr(env.lab.loras, method)(*args, **kwargs)


def grid(*args, **kwargs):
    return lambda env: labkit.grid(env.lab.txt2img, Params(prompt="a red circle", **FAST), *args, **kwargs)


def save(path, **kwargs):
    return lambda env: env.result.save(env.path(path) if isinstance(path, str) else path, **kwargs)


def train(**kwargs):
    def call(env):
        from labkit.lora import train as run

        settings = {"images": [env.picture], "captions": ["a red circle"], "steps": 1,
                    "out": env.path("trained.safetensors"), "progress": False, **kwargs}
        return run(settings.pop("lab", env.lab), **settings)
    return call


def config(env):
    return env.lab.scheduler_config


CASES = [
    refuses(LORAS, "lab.loras.load(None)", loras("load", None), "give a file path"),
    refuses(LORAS, "lab.loras.load('missing.safetensors')", lambda env: env.lab.loras.load(
            env.path("missing.safetensors")), "No such file", UnsupportedFile),
    refuses(LORAS, "lab.loras.load('inq'): a near miss of a LoRA on the search paths", loras("load", "inq"),
            "Did you mean 'ink'"),
    refuses(LORAS, "lab.loras.load(path, weight=float('nan'))", lambda env: env.lab.loras.load(
            env.path("loras/ink.safetensors"), name="ink2", weight=float("nan")), "not a finite number"),
    refuses(LORAS, "lab.loras.load(path, weight=True)", lambda env: env.lab.loras.load(
            env.path("loras/ink.safetensors"), name="ink2", weight=True), "is a bool; give a number"),
    refuses(LORAS, "lab.loras.load(path, weight='0.8')", lambda env: env.lab.loras.load(
            env.path("loras/ink.safetensors"), name="ink2", weight="0.8"), "is a str; give a number"),
    refuses(LORAS, "lab.loras.load(path, strict='no')", lambda env: env.lab.loras.load(
            env.path("loras/ink.safetensors"), name="ink2", strict="no"), "give True or False"),
    refuses(LORAS, "lab.loras.load(path, name='')", lambda env: env.lab.loras.load(
            env.path("loras/ink.safetensors"), name=""), "name= is empty"),
    refuses(LORAS, "lab.loras.load(path): a name already loaded", lambda env: env.lab.loras.load(
            env.path("loras/ink.safetensors")), "already loaded; pass name="),
    refuses(LORAS, "lab.loras.load('toy.safetensors'): a checkpoint", lambda env: env.lab.loras.load(
            env.path("toy.safetensors")), r"whole model; open it with labkit.open\(path\)", UnsupportedFile),
    refuses(LORAS, "lab.loras.load(<an SD 1.x LoRA>) into a toy model", lambda env: env.lab.loras.load(
            env.path("sd1_lora.safetensors")), "use a LoRA trained for toy", LoraMismatch),
    refuses(LORAS, "lab.loras.set_weight('inc', 0.5): a near miss", loras("set_weight", "inc", 0.5),
            "No LoRA named 'inc' is loaded.*Did you mean 'ink'"),
    refuses(LORAS, "lab.loras.set_weight('ink', float('inf'))", loras("set_weight", "ink", float("inf")),
            "not a finite number"),
    refuses(LORAS, "lab.loras.set_weight('ink', None)", loras("set_weight", "ink", None), "weight is missing"),
    refuses(LORAS, "lab.loras.enable(None)", loras("enable", None), "give text"),
    refuses(LORAS, "lab.loras.disable(3)", loras("disable", 3), "give text"),
    refuses(LORAS, "lab.loras.remove('nope')", loras("remove", "nope"), r"lab.loras.load\(path\) first"),
    refuses(GRID, "labkit.grid('txt2img', ...)", lambda env: labkit.grid("txt2img", x=("cfg", [3, 7])),
            "the function to run first"),
    refuses(GRID, "labkit.grid(lab.txt2img, {'steps': 2}, ...)", lambda env: labkit.grid(
            env.lab.txt2img, {"steps": 2}, x=("cfg", [3, 7])), "takes a labkit.Params"),
    refuses(GRID, "labkit.grid(..., x=('cfg_scale', [3, 7]))", grid(x=("cfg_scale", [3, 7])),
            "Unknown axis 'cfg_scale'.*cfg, sampler.*equivalent is cfg="),
    refuses(GRID, "labkit.grid(..., x=('stepz', [10, 20]))", grid(x=("stepz", [10, 20])), "Did you mean 'steps'"),
    refuses(GRID, "labkit.grid(..., x=('cfg', 7))", grid(x=("cfg", 7)), "values must be a list"),
    refuses(GRID, "labkit.grid(..., x=('steps', '10-x'))", grid(x=("steps", "10-x")),
            "Write int values as A1111 does: '1, 2, 3', '1-5'"),
    refuses(GRID, "labkit.grid(..., x=('steps', '1-5 (+0)'))", grid(x=("steps", "1-5 (+0)")), "step of 0"),
    refuses(GRID, "labkit.grid(..., x=('steps', [0, 10]))", grid(x=("steps", [0, 10])), "at least 1 step"),
    refuses(GRID, "labkit.grid(..., x=('steps', [1.5, 2]))", grid(x=("steps", [1.5, 2])), "whole number"),
    refuses(GRID, "labkit.grid(..., x=('cfg', 15 values), y=('seed', 15 values)): 225 cells",
            grid(x=("cfg", list(range(1, 16))), y=("seed", list(range(15)))),
            "225 cells, estimated at .* per cell.*pass confirm=True", TooLarge),
    refuses(GRID, "labkit.grid(..., cfg_scale=7)", grid(x=("cfg", [3, 7]), cfg_scale=7), "equivalent is cfg="),
    refuses(GRID, "labkit.grid(..., upscale=0)", grid(x=("cfg", [3, 7]), upscale=0), "between 1 and 64"),
    refuses(GRID, "labkit.grid(..., confirm='yes')", grid(x=("cfg", [3, 7]), confirm="yes"), "give True or False"),
    refuses(SAVE, "r.save(None)", save(None), "give a file path"),
    refuses(SAVE, "r.save('out.gif')", save("out.gif"), r"\.gif.*\.png"),
    refuses(SAVE, "r.save('picture.png'): it exists", save("picture.png"), "overwrite=True"),
    refuses(SAVE, "r.save('new.png', overwrite=1)", save("new.png", overwrite=1), "give True or False"),
    refuses(SAVE, "r.save('album.png'): a folder", save("album.png"), "is a folder; give a file name"),
    refuses(TRAIN, "train(None, images, captions)", train(lab=None), "trains on a Lab"),
    refuses(TRAIN, "train(lab, images, captions, rank=0)", train(rank=0), "at least 1"),
    refuses(TRAIN, "train(lab, images, captions, rank=4.0)", train(rank=4.0), "whole number"),
    refuses(TRAIN, "train(lab, images, captions, lr=0)", train(lr=0), "learning rate is above 0"),
    refuses(TRAIN, "train(lab, images, captions, lr=float('nan'))", train(lr=float("nan")), "not a finite number"),
    refuses(TRAIN, "train(lab, images, captions, alpha=-1)", train(alpha=-1), "alpha is above 0"),
    refuses(TRAIN, "train(lab, images, captions, steps=10**9)", train(steps=10**9), "lab.limits", TooLarge),
    refuses(TRAIN, "train(lab, None, captions)", train(images=None), "images= takes a list"),
    refuses(TRAIN, "train(lab, [None], captions)", train(images=[None]), r"images\[0\] is None"),
    refuses(TRAIN, "train(lab, images, [3])", train(captions=[3]), r"captions\[0\]=3 is an int; give text"),
    refuses(TRAIN, "train(lab, [image], ['a', 'b'])", train(captions=["a", "b"]), "one caption per image"),
    refuses(TRAIN, "train(lab, images, captions, out='lora.pt')", train(out="lora.pt"), "end the name with it"),
    refuses(TRAIN, "train(lab, images, captions, targets=['to_q'])", train(targets=["to_q"]), "use one of"),
    refuses(TRAIN, "train(lab, images, captions, size=60)", train(size=60), "multiple of 8"),
    refuses(SAMPLERS, "samplers.resolve('Eulr')", lambda env: sm.resolve("Eulr"), "Did you mean 'Euler'"),
    refuses(SAMPLERS, "samplers.resolve(None)", lambda env: sm.resolve(None), "give text"),
    refuses(SAMPLERS, "samplers.resolve('DPM++ 2M', 'Karas')", lambda env: sm.resolve("DPM++ 2M", "Karas"),
            "Did you mean 'Karras'"),
    refuses(SAMPLERS, "samplers.resolve('DDIM', 'Karras')", lambda env: sm.resolve("DDIM", "Karras"),
            "does not support. Schedule types for DDIM"),
    refuses(SAMPLERS, "samplers.resolve('Restart')", lambda env: sm.resolve("Restart"), "no diffusers equivalent"),
    refuses(SAMPLERS, "samplers.resolve('DPM++ 2M Karras', 'Exponential')", lambda env: sm.resolve(
            "DPM++ 2M Karras", "Exponential"), "already names the schedule"),
    refuses(SAMPLERS, "samplers.resolve('Euler', version=1.9)", lambda env: sm.resolve("Euler", version=1.9),
            "give text"),
    refuses(SAMPLERS, "samplers.make_scheduler('Euler', 'Automatic', None)", lambda env: sm.make_scheduler(
            "Euler", "Automatic", None), r"lab.pipe.scheduler.config"),
    refuses(SAMPLERS, "samplers.make_scheduler('Euler a', None, config, eta=0.5)", lambda env: sm.make_scheduler(
            "Euler a", None, config(env), eta=0.5), "full noise"),
    refuses(SAMPLERS, "samplers.make_scheduler('DDIM', None, config, eta='1')", lambda env: sm.make_scheduler(
            "DDIM", None, config(env), eta="1"), "give a number"),
    refuses(SAMPLERS, "samplers.from_comfy('eulr', 'normal')", lambda env: sm.from_comfy("eulr", "normal"),
            "Did you mean 'euler'"),
    refuses(TOKENIZER, "labkit.tokenizer('sdxl1')", lambda env: labkit.tokenizer("sdxl1"), "Did you mean 'sdxl'",
            UnsupportedFile),
    refuses(TOKENIZER, "labkit.tokenizer(None)", lambda env: labkit.tokenizer(None), "known families",
            UnsupportedFile),
    refuses(LIMITS, "labkit.Limits(max_seconds=-1)", lambda env: labkit.Limits(max_seconds=-1), "at least 0"),
    refuses(LIMITS, "labkit.Limits(max_memory_gb='lots')", lambda env: labkit.Limits(max_memory_gb="lots"),
            "give a number"),
]

assert all(issubclass(c.error, BadInput) or c.error in (UnsupportedFile, LoraMismatch) for c in CASES)
