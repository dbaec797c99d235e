"""open(): single-file .safetensors checkpoints, diffusers folders and labkit's embedded models, fully offline."""

import json
from pathlib import Path

from . import families
from .errors import BadInput, UnsafeFile, UnsupportedFile
from .families import FAMILIES, UNET_PREFIX, VARIANTS_BY_IN_CHANNELS
from .header import PICKLE_SUFFIXES
from .lab import TORCH_DTYPES

# diffusers folder (pipeline layout, UNet cross-attention width) -> family
FOLDER_FAMILIES = {(f.layout, f.context_width): f.name for f in FAMILIES.values()}


def models() -> list[str]:
    """Names of labkit's embedded models that ship with this install (open them with `labkit.open(name)`)."""
    from .toy import registry

    return registry.available()


def open(source, device: str = "cpu", dtype: str = "float32", vae=None, allow_pickle: bool = False,
         prediction: str | None = None):
    """Open a model as a `Lab`: an embedded model name ("toy"), a single-file checkpoint, or a diffusers folder.

    `prediction="v_prediction"` or `"epsilon"` overrides what the file's header tells (SD 2.x 768-v files often do
    not say; they then run as epsilon models and draw washed-out gray). Nothing is downloaded: configs and
    tokenizers ship with labkit. `vae=` swaps in another VAE (file or
    folder). Pickled checkpoints need `allow_pickle=True` (then read with `torch.load(weights_only=True)`).
    """
    from .quiet import quiet_libraries

    with quiet_libraries():
        return _open(source, device, dtype, vae, allow_pickle, prediction)


def _open(source, device, dtype, vae, allow_pickle, prediction):
    from .lab import Lab

    torch_dtype = _torch_dtype(dtype)
    name, state_dict, info = _resolve(source, allow_pickle)
    if state_dict is None:
        components, family, variant = _load_folder(Path(source), torch_dtype)
        file_hash = None
    else:
        family, variant = info["family"], info["variant"]
        if prediction not in (None, "epsilon", "v_prediction"):
            raise BadInput(f"prediction={prediction!r}: use 'epsilon' or 'v_prediction'.")
        components = components_from_ldm(state_dict, family, prediction or info["prediction"], torch_dtype)
        file_hash = info.get("hash")
    if vae is not None:
        components["vae"] = load_vae(vae, family, torch_dtype)
    for module in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if components.get(module) is not None:
            if components[module].device.type != str(device).split(":")[0]:
                components[module].to(device)
            components[module].eval()
    return Lab(components, family, variant=variant, device=device, dtype=dtype, name=name, source=source,
               file_hash=file_hash)


def _torch_dtype(dtype):
    import torch

    if dtype not in TORCH_DTYPES:
        raise BadInput(f"dtype={dtype!r}: use one of {TORCH_DTYPES} (float16 for CUDA, float32 on the CPU).")
    return getattr(torch, dtype)


def _resolve(source, allow_pickle: bool):
    """(display name, LDM state dict or None for a folder, detection info) for any source."""
    from . import detect

    if isinstance(source, str) and _is_model_name(source):
        from .toy import registry

        state_dict = registry.state_dict(source)
        return source, state_dict, _detected(state_dict, registry.entry(source).get("hash"))
    path = Path(source).expanduser()
    if not path.exists():
        raise UnsupportedFile(f"{path}: no such file or folder. Give a .safetensors checkpoint, a diffusers folder, "
                              f"or an embedded model name: {', '.join(models()) or '(none installed)'}.")
    if path.is_dir():
        return path.name, None, None
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            detect.read_header(path)  # raises UnsafeFile with the full explanation
        state_dict = _load_pickle(path)
        info = _detected(state_dict, None)
    else:
        file_info = detect.inspect(path)
        info = {"kind": file_info.kind, "family": file_info.family, "variant": file_info.variant,
                "prediction": file_info.prediction, "hash": lambda: file_info.short_hash}  # hashed when first needed
        state_dict = None
    _check_checkpoint(path, info)
    if state_dict is None:
        from safetensors.torch import load_file

        state_dict = load_file(str(path))
    return path.stem, state_dict, info


def _detected(state_dict: dict, file_hash) -> dict:
    """What `detect` tells from a state dict's key shapes (the same rules `labkit.inspect` applies to headers)."""
    from . import detect

    found = detect.detect({k: tuple(v.shape) for k, v in state_dict.items()})
    return {"kind": found.kind, "family": found.family, "variant": found.variant, "prediction": found.prediction,
            "hash": file_hash}


def _is_model_name(source: str) -> bool:
    return "/" not in source and "\\" not in source and "." not in source


def _load_pickle(path: Path) -> dict:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnsafeFile(f"{path.name} could not be read with torch.load(weights_only=True), which refuses pickled "
                         f"code: {exc}. Convert it to .safetensors with a tool you trust.") from exc
    return data.get("state_dict", data)


def _check_checkpoint(path: Path, info: dict) -> None:
    kind, family = info["kind"], info["family"]
    uses = {"lora": "load it with lab.loras.load(path)", "vae": "pass it as labkit.open(checkpoint, vae=path)",
            "embedding": "load it with lab.load_embedding(path, token)"}
    if kind != "checkpoint":
        hint = uses.get(kind, "labkit opens SD 1.x/2.x/SDXL checkpoints")
        raise UnsupportedFile(f"{path.name} is a {kind} file, not a model checkpoint: {hint}.")
    if family is None:
        raise UnsupportedFile(f"{path.name}: unknown model family (not SD 1.x, SD 2.x, SDXL or an SDXL refiner); "
                              f"labkit.inspect(path) shows what its header says. Other architectures are not "
                              f"supported; open their diffusers folder with diffusers directly.")


def components_from_ldm(state_dict: dict, family_name: str, prediction=None, torch_dtype=None) -> dict:
    """Diffusers components from an A1111/ComfyUI-layout state dict, using labkit's config folder for `family`."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    record = families.family(family_name)
    common = {"config": str(record.config), "local_files_only": True, "torch_dtype": torch_dtype}
    unet_overrides = {"in_channels": state_dict[UNET_PREFIX + "input_blocks.0.0.weight"].shape[1],
                      "sample_size": record.native_size_for(prediction) // record.vae_scale}
    components = {
        "unet": UNet2DConditionModel.from_single_file(state_dict, subfolder="unet", **common, **unet_overrides),
        "vae": AutoencoderKL.from_single_file(state_dict, subfolder="vae", **common),
        "scheduler": default_scheduler(family_name, prediction),
    }
    components.update(_text_encoders(state_dict, record, torch_dtype))
    return components


def _text_encoders(state_dict: dict, record, torch_dtype) -> dict:
    """Text encoders converted by diffusers from the LDM keys, plus labkit's offline tokenizers."""
    import transformers
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    from .tokenizers import tokenizer

    toks = tokenizer(record.name)
    toks = toks if isinstance(toks, tuple) else (toks,)
    out = {"text_encoder": None, "tokenizer": None}
    for sub, tok in zip(record.text_encoders, toks):
        config = json.loads((record.config / sub / "config.json").read_text())
        cls = getattr(transformers, config["architectures"][0])
        model = create_diffusers_clip_model_from_ldm(cls, state_dict, subfolder=sub, config=str(record.config),
                                                     torch_dtype=torch_dtype, local_files_only=True)
        _check_loaded(model, sub)
        out[sub] = model
        out["tokenizer" + sub.removeprefix("text_encoder")] = tok
    return out


def _check_loaded(model, name: str) -> None:
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise UnsupportedFile(f"The checkpoint has no weights for {name} ({len(missing)} tensors missing, e.g. "
                              f"{missing[0]}): it may be a UNet-only file; open a full checkpoint instead.")


def default_scheduler(family_name: str, prediction=None):
    """The family's own scheduler (from its shipped config), predicting `prediction` when given."""
    import diffusers

    config = json.loads((families.family(family_name).config / "scheduler" / "scheduler_config.json").read_text())
    if prediction:
        config["prediction_type"] = prediction
    return getattr(diffusers, config["_class_name"]).from_config(config)


def _load_folder(path: Path, torch_dtype):
    """Components of a diffusers folder (model_index.json), with its family told from the UNet config."""
    from diffusers import DiffusionPipeline

    if not (path / "model_index.json").exists():
        raise UnsupportedFile(f"{path} is a folder without model_index.json: give a diffusers pipeline folder "
                              f"or a single .safetensors file.")
    pipe = DiffusionPipeline.from_pretrained(path, local_files_only=True, dtype=torch_dtype)  # diffusers >= 0.42
    components = dict(pipe.components)
    unet = components["unet"]
    layout = "refiner" if components.get("text_encoder") is None and components.get("text_encoder_2") is not None \
        else "xl" if components.get("text_encoder_2") is not None else "sd"
    family = FOLDER_FAMILIES.get((layout, unet.config.cross_attention_dim))
    if family is None:
        raise UnsupportedFile(f"{path}: a {layout}-layout UNet with cross-attention width "
                              f"{unet.config.cross_attention_dim} is not a family labkit knows.")
    variant = VARIANTS_BY_IN_CHANNELS.get(unet.config.in_channels)
    return components, family, variant


def load_vae(source, family_name: str, torch_dtype):
    """A VAE from a diffusers folder, a diffusers-format file, or an A1111-layout VAE file."""
    from diffusers import AutoencoderKL

    path = Path(source).expanduser()
    if not path.exists():
        raise UnsupportedFile(f"VAE {path}: no such file or folder.")
    if path.is_dir():
        return AutoencoderKL.from_pretrained(path, local_files_only=True, torch_dtype=torch_dtype)
    from . import detect

    info = detect.inspect(path)
    if info.kind not in ("vae", "checkpoint"):
        raise UnsupportedFile(f"{path.name} is a {info.kind} file, not a VAE.")
    return AutoencoderKL.from_single_file(str(path), config=str(families.family(family_name).config), subfolder="vae",
                                          local_files_only=True, torch_dtype=torch_dtype)
