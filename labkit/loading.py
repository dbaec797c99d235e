"""open(): single-file .safetensors checkpoints, diffusers folders and labkit's embedded models, fully offline."""

import json
from pathlib import Path

from . import checks, families
from .errors import BadInput, UnsafeFile, UnsupportedFile
from .families import FAMILIES, UNET_PREFIX, VAE_PREFIX, VARIANTS_BY_IN_CHANNELS
from .header import PICKLE_SUFFIXES
from .lab import TORCH_DTYPES

DTYPE_WORDS = {"fp16": "float16", "half": "float16", "f16": "float16", "fp32": "float32", "float": "float32",
               "single": "float32", "f32": "float32", "bf16": "bfloat16",
               "float64": "float32", "double": "float32", "fp64": "float32"}  # what people write for them
PREDICTIONS = ("epsilon", "v_prediction")
# diffusers folder (pipeline layout, UNet cross-attention width) -> family
FOLDER_FAMILIES = {(f.layout, f.context_width): f.name for f in FAMILIES.values()}


def models() -> list[str]:
    """Names of labkit's embedded models that ship with this install (open them with `labkit.open(name)`)."""
    from .toy import registry

    return registry.available()


def open(source, device: str = "cpu", dtype: str = "float32", vae=None, allow_pickle: bool = False,
         prediction: str | None = None, text_encoder_dtype: str | None = None, offload: str | None = None,
         limits="default"):
    """Open a model as a `Lab`: an embedded model name ("toy"), a single-file checkpoint, or a diffusers folder.

    `prediction="v_prediction"` or `"epsilon"` overrides what the file's header tells (SD 2.x 768-v files often do
    not say; they then run as epsilon models and draw washed-out gray). Nothing is downloaded: configs and
    tokenizers ship with labkit. `vae=` swaps in another VAE (file or
    folder). Pickled checkpoints need `allow_pickle=True` (then read with `torch.load(weights_only=True)`).
    `device` is checked against what torch has here (`labkit.devices.available()`); `dtype` may be a name or a
    torch dtype. `text_encoder_dtype="float16"` runs the text encoders in half precision, as ComfyUI does by
    default (`Lab.set_text_encoder_dtype`). `offload="model"` (each model moves to the GPU while it runs) or
    `"sequential"` (one layer at a time) keeps the weights on the CPU between uses (diffusers' CPU offload; a GPU
    device only). `limits`: the Lab's `labkit.Limits` (default `Limits()`); a single file's memory need is checked
    against them before it loads (TooLarge with the estimate and what would fit); None turns every check off.
    Everything is checked before the model loads.
    """
    from . import memory
    from .limits import Limits
    from .quiet import quiet_libraries

    device, dtype = check_open(source, device, dtype, vae, allow_pickle, prediction)
    te_dtype = None if text_encoder_dtype is None else dtype_name(text_encoder_dtype)
    offload = memory.check_offload(offload, device)
    limits = Limits() if isinstance(limits, str) and limits == "default" else limits
    if limits is not None and not isinstance(limits, Limits):
        raise BadInput(f"limits= takes a labkit.Limits(...) or None, not {checks.kind(limits)}.")
    path = Path(source).expanduser() if isinstance(source, (str, Path)) else None
    if path is not None and path.suffix.lower() == ".safetensors" and path.is_file():
        memory.check_open(path, device, dtype, offload, limits)
    with quiet_libraries():
        lab = _open(source, device, dtype, vae, allow_pickle, prediction, offload)
    lab.limits = limits
    if te_dtype is not None and te_dtype != dtype:
        lab.set_text_encoder_dtype(te_dtype)
    return lab


def check_open(source, device, dtype, vae, allow_pickle, prediction) -> tuple[str, str]:
    """(device, dtype) as names once every argument of `open` is known to be usable; BadInput otherwise."""
    from . import devices

    if source is None:
        raise BadInput(f"open() needs a model: an embedded model name ({', '.join(models()) or 'none installed'}), "
                       f"a .safetensors checkpoint or a diffusers folder.")
    if hasattr(source, "txt2img") and hasattr(source, "components"):
        raise BadInput("That is already an open Lab; use it as it is (labkit.open takes a name or a path).")
    checks.path("source", source)
    checks.flag("allow_pickle", allow_pickle)
    if prediction is not None:
        checks.choose("prediction", prediction, PREDICTIONS, "a prediction type")
    if vae is not None:
        checks.path("vae", vae)
    return devices.check(device), dtype_name(dtype)


def dtype_name(dtype) -> str:
    """The name of a dtype a Lab runs in, from a name or a torch dtype; BadInput naming the valid ones."""
    if type(dtype).__name__ == "dtype" and type(dtype).__module__.startswith("torch"):
        dtype = str(dtype).removeprefix("torch.")
    if isinstance(dtype, str) and dtype in TORCH_DTYPES:
        return dtype
    meant = DTYPE_WORDS.get(str(dtype).lower()) if isinstance(dtype, str) else None
    hint = f" Did you mean {meant!r}?" if meant else checks.did_you_mean(dtype, TORCH_DTYPES)
    raise BadInput(f"dtype={dtype!r}: use one of {TORCH_DTYPES} (float16 for CUDA, float32 on the CPU).{hint}")


def _open(source, device, dtype, vae, allow_pickle, prediction, offload=None):
    from .lab import Lab

    torch_dtype = _torch_dtype(dtype)
    name, state_dict, info = _resolve(source, allow_pickle)
    weight_files = None
    if state_dict is None:
        components, family, variant = _load_folder(Path(source).expanduser(), torch_dtype, allow_pickle)
        if vae is not None:
            check_vae(vae, family)
        if prediction:
            components["scheduler"] = type(components["scheduler"]).from_config(components["scheduler"].config,
                                                                                prediction_type=prediction)
        file_hash = None
    else:
        family, variant = info["family"], info["variant"]
        if vae is not None:
            check_vae(vae, family)  # before the model's weights are converted
        components = components_from_ldm(state_dict, family, prediction or info["prediction"], torch_dtype)
        file_hash = info.get("hash")
        if info.get("parts"):
            from .originals import WeightFiles

            weight_files = WeightFiles(info["parts"], families.family(family).checkpoint)
    if vae is not None:
        components["vae"] = load_vae(vae, family, torch_dtype)
    home = "cpu" if offload else device  # offloaded weights wait on the CPU between runs
    for module in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if components.get(module) is not None:
            if components[module].device.type != str(home).split(":")[0]:
                components[module].to(home)
            components[module].eval()
    return Lab(components, family, variant=variant, device=device, dtype=dtype, name=name, source=source,
               file_hash=file_hash, weight_files=weight_files, offload=offload)


def _torch_dtype(dtype):
    import torch

    return getattr(torch, dtype_name(dtype))


def _resolve(source, allow_pickle: bool):
    """(display name, LDM state dict or None for a folder, detection info) for any source."""
    from . import detect

    if isinstance(source, str) and _is_model_name(source) and not Path(source).exists():
        from .toy import registry

        state_dict = registry.state_dict(source)
        entry = registry.entry(source)
        parts = [(registry.WEIGHTS / file, prefix) for file, prefix in entry["parts"]]
        return source, state_dict, dict(_detected(state_dict, entry.get("hash")), parts=parts)
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
                "prediction": file_info.prediction, "hash": lambda: file_info.short_hash,  # hashed when first needed
                "parts": [(path, "")]}  # where LoRA folding reads original weights back
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
    state = data.get("state_dict", data) if isinstance(data, dict) else data
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and hasattr(v, "shape")} \
        if isinstance(state, dict) else {}
    if not tensors:
        held = (f"a dict without tensors (keys: {', '.join(map(str, list(state)[:5]))})" if isinstance(state, dict)
                else checks.kind(state))
        raise UnsupportedFile(f"{path.name} holds {held}, not a state dict (a dict of tensors): it is not a model "
                              f"checkpoint labkit can open.")
    return tensors


def _check_checkpoint(path: Path, info: dict) -> None:
    kind, family = info["kind"], info["family"]
    uses = {"lora": "load it with lab.loras.load(path)", "vae": "pass it as labkit.open(checkpoint, vae=path)",
            "embedding": "load it with lab.load_embedding(path, token)"}
    if kind != "checkpoint":
        hint = uses.get(kind, "labkit opens SD 1.x/2.x/SDXL checkpoints")
        raise UnsupportedFile(f"{path.name} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} file, not a model "
                              f"checkpoint: {hint}.")
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


def _load_folder(path: Path, torch_dtype, allow_pickle: bool = False):
    """Components of a diffusers folder (model_index.json), with its family told from the UNet config."""
    from diffusers import DiffusionPipeline

    variant = check_folder(path, allow_pickle)
    try:
        pipe = DiffusionPipeline.from_pretrained(path, local_files_only=True, dtype=torch_dtype,  # diffusers >= 0.42
                                                 variant=variant)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise UnsupportedFile(f"{path}: diffusers could not load this folder ({type(exc).__name__}: "
                              f"{str(exc)[:300]}). Download it again, or open a single .safetensors file.") from exc
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


# diffusers pipeline classes labkit opens, and the parts a folder of one must hold
PIPELINE_CLASSES = tuple(sorted({name for f in FAMILIES.values() for name in f.pipeline_layout.pipelines.values()}))
REQUIRED_PARTS = ("unet", "vae", "scheduler")
PART_FILES = {"scheduler": ("scheduler_config.json",), "tokenizer": ("vocab.json", "tokenizer.json"),
              "tokenizer_2": ("vocab.json", "tokenizer.json")}


def check_folder(path: Path, allow_pickle: bool = False) -> str | None:
    """Check a diffusers folder before diffusers reads it: its model_index.json, a pipeline labkit runs, every part
    it names present with its config and weights (pickled .bin weights only with allow_pickle). Returns the
    weights' variant ("fp16" when the models ship only *.fp16.safetensors), else None."""
    index_path = path / "model_index.json"
    if not index_path.exists():
        files = sorted(p.name for p in path.glob("*.safetensors"))[:3]
        hint = f" It holds {', '.join(files)}: open one of those files." if files else ""
        raise UnsupportedFile(f"{path} is a folder without model_index.json: give a diffusers pipeline folder "
                              f"or a single .safetensors file.{hint}")
    index = read_json(index_path, "download the folder again")
    if not isinstance(index, dict) or index.get("_class_name") not in PIPELINE_CLASSES:
        name = index.get("_class_name") if isinstance(index, dict) else None
        raise UnsupportedFile(f"{path} holds a {name or 'pipeline of no known class'}; labkit opens Stable "
                              f"Diffusion 1.x/2.x/SDXL pipelines ({', '.join(PIPELINE_CLASSES)}). Open it with "
                              f"diffusers directly.")
    parts = [k for k, v in index.items() if isinstance(v, list) and len(v) == 2 and v[0] and not k.startswith("_")]
    missing = [f"{part} (not in model_index.json)" for part in REQUIRED_PARTS if part not in parts]
    variants = set()
    for part in parts:
        missing += _missing_files(path / part, part, allow_pickle, variants)
    if missing:
        raise UnsupportedFile(f"{path} is a diffusers folder without all its parts: missing {'; '.join(missing)}. "
                              f"Download the folder again, or copy the missing parts from the model's repository.")
    return "fp16" if variants == {"fp16"} else None


def _missing_files(folder: Path, part: str, allow_pickle: bool, variants: set) -> list[str]:
    """What a part's folder lacks; `variants` collects "fp16" for model parts with only fp16 weights."""
    if not folder.is_dir():
        return [f"{part}/ (the folder)"]
    if part in PART_FILES:
        needed = PART_FILES[part]
        return [] if any((folder / n).exists() for n in needed) else [f"{part}/{' or '.join(needed)}"]
    if part.startswith(("feature_extractor", "image_encoder", "safety_checker")):
        return []
    if not (folder / "config.json").exists():
        return [f"{part}/config.json"]
    weights = [p.name for p in folder.iterdir() if p.suffix == ".safetensors"]
    if not weights:
        pickled = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickled and not allow_pickle:
            raise UnsafeFile(f"{folder} holds only pickled weights ({pickled[0]}), which can run code when loaded. "
                             f"Convert them to .safetensors, or, if you trust the source, pass allow_pickle=True.")
        return [] if pickled else [f"{part}/ weights (*.safetensors)"]
    if all(".fp16." in name for name in weights):
        variants.add("fp16")
    return []


def check_vae(source, family_name: str) -> Path:
    """The VAE's path once it exists and works on `family_name`'s latents (its latent channels, or the family of
    the checkpoint it comes from), read from its config or header before diffusers sees it."""
    from . import detect

    path = Path(source).expanduser()
    if not path.exists():
        raise UnsupportedFile(f"VAE {path}: no such file or folder.")
    record = families.family(family_name)
    if path.is_dir():
        channels, family = _folder_vae_channels(path), None
    else:
        info = detect.inspect(path)
        if info.kind not in ("vae", "checkpoint"):
            raise UnsupportedFile(f"{path.name} is a {info.kind} file, not a VAE.")
        header, _ = detect.read_header(path)
        shapes = [header[p + "decoder.conv_in.weight"]["shape"] for p in ("", VAE_PREFIX, "vae.")
                  if p + "decoder.conv_in.weight" in header]
        channels = shapes[0][1] if shapes and len(shapes[0]) > 1 else None
        family = info.family if info.kind == "checkpoint" else None
    if channels is not None and channels != record.latent_channels:
        raise UnsupportedFile(f"{path.name} is a VAE of {channels} latent channels, but a {record.display} model works "
                              f"on {record.latent_channels} (it is made for another kind of model, such as SD3 or "
                              f"Flux with 16). Use a VAE made for {record.display}.")
    if family is not None and families.family(family).vae_group != record.vae_group:
        raise UnsupportedFile(f"{path.name} is a {families.family(family).display} checkpoint; its VAE does not fit a "
                              f"{record.display} model (another latent space). Use a VAE made for {record.display}.")
    return path


def _folder_vae_channels(path: Path) -> int | None:
    config = path / "config.json"
    if not config.exists():
        inner = " (it looks like a whole pipeline: give its vae/ subfolder)" if (path / "vae").is_dir() else ""
        raise UnsupportedFile(f"VAE folder {path} has no config.json{inner}: give a diffusers AutoencoderKL folder or "
                              f"a .safetensors VAE file.")
    data = read_json(config, "give a diffusers AutoencoderKL folder")
    if not isinstance(data, dict) or data.get("_class_name") != "AutoencoderKL":
        name = data.get("_class_name") if isinstance(data, dict) else None
        raise UnsupportedFile(f"VAE folder {path} holds a {name or 'model of no known class'}, not an "
                              f"AutoencoderKL; labkit swaps in AutoencoderKL VAEs only.")
    channels = data.get("latent_channels", 4)
    return channels if isinstance(channels, int) else None


def load_vae(source, family_name: str, torch_dtype):
    """A VAE from a diffusers folder, a diffusers-format file, or an A1111-layout VAE file."""
    from diffusers import AutoencoderKL

    path = check_vae(source, family_name)
    if path.is_dir():
        return AutoencoderKL.from_pretrained(path, local_files_only=True, torch_dtype=torch_dtype)
    return AutoencoderKL.from_single_file(str(path), config=str(families.family(family_name).config), subfolder="vae",
                                          local_files_only=True, torch_dtype=torch_dtype)


def read_json(path: Path, fix: str):
    """The JSON in a config file of a folder; UnsupportedFile saying `fix` when it does not parse."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedFile(f"{path} does not parse as JSON ({exc}): {fix}.") from None
