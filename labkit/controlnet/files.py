"""Where ControlNet files are found and how one is read: labkit's shipped ControlNets, A1111's
./models/ControlNet and $LABKIT_CONTROLNET_PATH, by name (the file's stem, as A1111's infotext names a model)
or by hash; single files in the original layout (`control_model.*`, or without that prefix as some hosts ship
them) or diffusers', and diffusers folders. Formats that are not plain ControlNets are recognised and explained."""

import os
from pathlib import Path

from ..checks import did_you_mean
from ..errors import BadInput, UnsupportedFile

ENV_PATH = "LABKIT_CONTROLNET_PATH"  # extra ControlNet folders, separated by os.pathsep
PACKAGE_CONTROLNETS = Path(__file__).parents[1] / "toy" / "weights"
SUFFIXES = (".safetensors",)
ORIGINAL_PREFIX = "control_model."
# key markers of formats that look like ControlNets but are not plain ones: (marker test, what it is, the advice)
OTHER_FORMATS = (
    (lambda keys: "lora_controlnet" in keys or any(k.endswith((".up", ".down")) for k in keys),
     "a Control-LoRA (Stability AI's low-rank ControlNet, applied on top of the base UNet's own weights)",
     "labkit runs full ControlNets only; use the full ControlNet of the same control (e.g. a canny SDXL ControlNet "
     "in the diffusers layout), or ComfyUI, which reads Control-LoRAs."),
    (lambda keys: any(k.startswith(("task_embedding", "control_add_embedding", "transformer_layes",
                                    "spatial_ch_projs")) for k in keys),
     "a ControlNet union model (one network for many controls, told which by a control-type embedding)",
     "labkit runs single-control ControlNets; use the ControlNet trained for your control type."),
    (lambda keys: any(k.startswith(("adapter.body.", "body.0.")) for k in keys),
     "a T2I-Adapter (a small network whose features are added to the UNet encoder; not a ControlNet)",
     "labkit runs ControlNets; look for the ControlNet version of this control."),
)


def default_search_paths() -> list:
    """labkit's shipped ControlNets, ./models/ControlNet (A1111's folder) and the folders in $LABKIT_CONTROLNET_PATH."""
    extra = [Path(p) for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    return [PACKAGE_CONTROLNETS, Path.cwd() / "models" / "ControlNet", *extra]


def names(paths) -> dict:
    """{name: path} of every ControlNet file (a .safetensors file whose header says "controlnet") or diffusers
    ControlNet folder under `paths`; the first, shallowest of a name wins."""
    from ..detect import inspect

    found = {}
    for folder in (Path(p) for p in paths if Path(p).is_dir()):
        for path in sorted(folder.rglob("*"), key=lambda p: (len(p.parts), str(p))):
            if path.name in found or path.stem in found:
                continue
            if path.is_dir() and is_diffusers_folder(path):
                found[path.name] = path
            elif path.suffix.lower() in SUFFIXES and path.is_file():
                try:
                    if inspect(path).kind == "controlnet":
                        found[path.stem] = path
                except Exception:  # noqa: BLE001 - an unreadable file is simply not offered by name
                    continue
    return found


def is_diffusers_folder(path: Path) -> bool:
    import json

    config = path / "config.json"
    try:
        return config.is_file() and json.loads(config.read_text()).get("_class_name") == "ControlNetModel"
    except ValueError:
        return False


def find(source, paths) -> Path:
    """The file (or folder) of a ControlNet given by path or by name; errors name the folders searched."""
    path = Path(str(source)).expanduser()
    if path.exists():
        return path
    if "/" in str(source) or "\\" in str(source) or path.suffix.lower() in (*SUFFIXES, ".pth", ".ckpt", ".pt"):
        raise UnsupportedFile(f"No such ControlNet file: {path} (working directory {os.getcwd()}). Check the "
                              f"path, or give the name of a file in the search paths.")
    known = names(paths)
    if str(source) in known:
        return known[str(source)]
    where = "\n  ".join(str(p) for p in paths)
    raise BadInput(f"No ControlNet named {source!r} in the search paths:\n  {where}\nPut {source}.safetensors in "
                   f"one of them (A1111's models/ControlNet works), add a folder to lab.controlnets.search_paths "
                   f"(or ${ENV_PATH}), or load it by path." + did_you_mean(str(source), sorted(known)))


def locate(name: str, file_hash: str | None, paths) -> Path | None:
    """The file a recipe's unit names: by name (the stem), else by the hash A1111 writes in brackets; None."""
    from ..hashes import autov1, sha256

    known = names(paths)
    if name in known:
        return known[name]
    if not file_hash:
        return None
    wanted = file_hash.lower()
    for path in known.values():
        if path.is_file() and (autov1(path).lower().startswith(wanted) or sha256(path).startswith(wanted)):
            return path
    return None


def other_format(keys) -> tuple[str, str] | None:
    """(what the file is, what to do) when its keys are a known non-ControlNet format; None for a ControlNet."""
    keys = set(keys)
    for test, what, advice in OTHER_FORMATS:
        if test(keys):
            return what, advice
    return None
