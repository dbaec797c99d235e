"""labkit.open and labkit.inspect: sources, devices, dtypes, predictions, VAEs, diffusers folders, pickles."""

import torch

import labkit
from labkit import BadInput, TooLarge, UnsafeFile, UnsupportedFile

from . import refuses, works

OPEN, INSPECT = "labkit.open", "labkit.inspect"


def open_file(name, **kwargs):
    return lambda env: labkit.open(env.path(name), **kwargs)


def _is_toy(lab, env):
    assert lab.family == "toy" and lab.dtype == "float32"


CASES = [
    refuses(OPEN, "labkit.open(None)", lambda env: labkit.open(None), "needs a model: an embedded model name"),
    refuses(OPEN, "labkit.open(3)", lambda env: labkit.open(3), r"give a file path \(a str or pathlib.Path\)"),
    refuses(OPEN, "labkit.open(b'toy')", lambda env: labkit.open(b"toy"), "give a path as text"),
    refuses(OPEN, "labkit.open('')", lambda env: labkit.open(""), "is empty; give a file path"),
    refuses(OPEN, "labkit.open(lab): already open", lambda env: labkit.open(env.lab), "already an open Lab"),
    refuses(OPEN, "labkit.open('toyxl'): a near miss", lambda env: labkit.open("toyxl"), "Did you mean 'toy-xl'",
            UnsupportedFile),
    refuses(OPEN, "labkit.open('missing.safetensors')", lambda env: labkit.open(env.path("missing.safetensors")),
            "no such file", UnsupportedFile),
    refuses(OPEN, "labkit.open('toy', device='gpu')", lambda env: labkit.open("toy", device="gpu"),
            "Valid devices here: cpu", cpu_only=True),
    refuses(OPEN, "labkit.open('toy', device='cuda') without CUDA", lambda env: labkit.open("toy", device="cuda"),
            "no CUDA .*Valid devices here", cpu_only=True),
    refuses(OPEN, "labkit.open('toy', device='cuda:7')", lambda env: labkit.open("toy", device="cuda:7"),
            "Valid devices here", cpu_only=True),
    refuses(OPEN, "labkit.open('toy', device='mps') without an Apple GPU",
            lambda env: labkit.open("toy", device="mps"), "no Apple GPU .*Valid devices here",
            cpu_only=True),
    refuses(OPEN, "labkit.open('toy', device='CPU')", lambda env: labkit.open("toy", device="CPU"), "write 'cpu'"),
    refuses(OPEN, "labkit.open('toy', device=0)", lambda env: labkit.open("toy", device=0), r"give text \(a str\)"),
    refuses(OPEN, "labkit.open('toy', dtype='fp16')", lambda env: labkit.open("toy", dtype="fp16"),
            "Did you mean 'float16'"),
    refuses(OPEN, "labkit.open('toy', dtype='float64')", lambda env: labkit.open("toy", dtype="float64"),
            r"use one of \('float32', 'float16', 'bfloat16'\)"),
    refuses(OPEN, "labkit.open('toy', dtype=torch.float64)", lambda env: labkit.open("toy", dtype=torch.float64),
            "use one of"),
    refuses(OPEN, "labkit.open('toy', prediction='v')", lambda env: labkit.open("toy", prediction="v"),
            "use one of 'epsilon', 'v_prediction'"),
    refuses(OPEN, "labkit.open('toy', offload='model') on a CPU", lambda env: labkit.open("toy", offload="model"),
            "nothing to offload. Leave offload=None"),
    refuses(OPEN, "labkit.open('toy', offload='gpu')", lambda env: labkit.open("toy", offload="gpu"),
            "use 'model' .* or 'sequential'"),
    refuses(OPEN, "labkit.open('toy', limits=24)", lambda env: labkit.open("toy", limits=24),
            r"takes a labkit.Limits\(...\) or None"),
    refuses(OPEN, "labkit.open(file) needing more memory than the limit",
            lambda env: labkit.open(env.path("toy.safetensors"), limits=labkit.Limits(max_memory_gb=1e-4)),
            "cannot be opened as asked: loading needs about .*Options: dtype='bfloat16'", TooLarge),
    refuses(OPEN, "labkit.open('toy', allow_pickle='yes')", lambda env: labkit.open("toy", allow_pickle="yes"),
            "give True or False"),
    refuses(OPEN, "labkit.open('toy', vae=123)", lambda env: labkit.open("toy", vae=123), "give a file path"),
    refuses(OPEN, "labkit.open('toy', vae='missing_vae.safetensors')",
            lambda env: labkit.open("toy", vae=env.path("missing_vae.safetensors")), "no such file", UnsupportedFile),
    refuses(OPEN, "labkit.open('toy', vae=<a 16-channel VAE folder>)",
            lambda env: labkit.open("toy", vae=env.path("vae16")), "16 latent channels.*Use a VAE made for",
            UnsupportedFile),
    refuses(OPEN, "labkit.open('toy', vae='vae16.safetensors'): a 16-channel VAE file",
            lambda env: labkit.open("toy", vae=env.path("vae16.safetensors")), "16 latent channels", UnsupportedFile),
    refuses(OPEN, "labkit.open('toy', vae=<a whole pipeline folder>)",
            lambda env: labkit.open("toy", vae=env.path("good")), "give its vae/ subfolder", UnsupportedFile),
    refuses(OPEN, "labkit.open('toy', vae='ink.safetensors'): a LoRA as VAE",
            lambda env: labkit.open("toy", vae=env.path("loras/ink.safetensors")), "not a VAE", UnsupportedFile),
    refuses(OPEN, "labkit.open(<a folder of .safetensors files>)", open_file("plain_folder"),
            "without model_index.json.*open one of those files", UnsupportedFile),
    refuses(OPEN, "labkit.open(<a diffusers folder without unet/>)", open_file("no_unet"),
            r"missing unet/ \(the folder\)", UnsupportedFile),
    refuses(OPEN, "labkit.open(<a diffusers folder whose vae/ has no weights>)", open_file("no_weights"),
            r"missing vae/ weights", UnsupportedFile),
    refuses(OPEN, "labkit.open(<a folder whose model_index.json is not JSON>)", open_file("bad_index"),
            "does not parse as JSON", UnsupportedFile),
    refuses(OPEN, "labkit.open(<a FluxPipeline folder>)", open_file("flux"), "FluxPipeline.*with diffusers directly",
            UnsupportedFile),
    refuses(OPEN, "labkit.open(<a folder of pickled .bin weights>)", open_file("pickled"), "allow_pickle=True",
            UnsafeFile),
    refuses(OPEN, "labkit.open('list.ckpt')", open_file("list.ckpt"), "allow_pickle=True", UnsafeFile),
    refuses(OPEN, "labkit.open('list.ckpt', allow_pickle=True): a pickled list", open_file("list.ckpt",
            allow_pickle=True), "holds a list, not a state dict", UnsupportedFile),
    refuses(OPEN, "labkit.open('meta.ckpt', allow_pickle=True): a dict without tensors",
            open_file("meta.ckpt", allow_pickle=True), "without tensors .*not a state dict", UnsupportedFile),
    refuses(OPEN, "labkit.open('ink.safetensors'): a LoRA", open_file("loras/ink.safetensors"),
            r"lab.loras.load\(path\)", UnsupportedFile),
    refuses(OPEN, "labkit.open('emb.safetensors'): an embedding", open_file("emb.safetensors"),
            "load_embedding", UnsupportedFile),
    refuses(OPEN, "labkit.open('junk.safetensors')", open_file("junk.safetensors"), "not a .safetensors file",
            UnsupportedFile),
    works(OPEN, "labkit.open('toy.safetensors', dtype=torch.float32)", open_file("toy.safetensors",
          dtype=torch.float32), _is_toy, "a torch dtype is taken for its name"),
    refuses(INSPECT, "labkit.inspect(None)", lambda env: labkit.inspect(None), "give a file path"),
    refuses(INSPECT, "labkit.inspect(42)", lambda env: labkit.inspect(42), "give a file path"),
    refuses(INSPECT, "labkit.inspect('missing.safetensors')", lambda env: labkit.inspect(env.path("missing.safetensors")),
            "No such file", UnsupportedFile),
    refuses(INSPECT, "labkit.inspect(<a folder>)", lambda env: labkit.inspect(env.path("good")), "is a folder",
            UnsupportedFile),
    refuses(INSPECT, "labkit.inspect('list.ckpt')", lambda env: labkit.inspect(env.path("list.ckpt")),
            "allow_pickle=True", UnsafeFile),
    refuses(INSPECT, "labkit.inspect('junk.safetensors')", lambda env: labkit.inspect(env.path("junk.safetensors")),
            "not a .safetensors file", UnsupportedFile),
]

assert all(issubclass(c.error, (BadInput, UnsupportedFile, UnsafeFile)) for c in CASES)
