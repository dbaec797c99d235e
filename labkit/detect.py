"""What a model file is, told by its .safetensors header alone (no tensor data, no torch).

Two layers, IO at the edge:
- `detect(shapes, metadata)`: a pure function of {key: shape} and the header's metadata, driven by data: the
  family records (`labkit.families`) and the LoRA key grammar (`labkit.lora.formats`).
- `inspect(path)`: the header (`labkit.header`), `detect`, sizes, dtypes and lazy hashes, as a `FileInfo`. A file
  no rule knows may be an upscaler: spandrel tells its architecture and scale from the shapes alone (meta tensors,
  so torch loads then); a .pth/.pt file is read only as an upscaler, through torch.load(weights_only=True).
"""

import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import hashes
from .families import CHECKPOINT_LAYOUTS, FAMILIES, UNET_PREFIX, VAE_PREFIX, VARIANTS_BY_IN_CHANNELS
from .header import DTYPES, read_header, read_header_at, read_scalars
from .lora import formats

__all__ = ["Detection", "FileInfo", "LoraFileInfo", "detect", "inspect", "read_header"]

# ---- data: lookups built from the family records ----------------------------------------------------------
CHECKPOINT_FAMILIES = {(f.checkpoint, f.context_width): f.name for f in FAMILIES.values()}
DEFAULT_PREDICTION = {f.name: f.prediction for f in FAMILIES.values() if f.prediction}
# metadata keys that name a family, most trusted first; within a key the longest value prefix is tried first
METADATA_KEYS = ("modelspec.architecture", "ss_base_model_version", "ss_v2")
FAMILY_METADATA = tuple(sorted(((key, prefix, f.name) for f in FAMILIES.values() for key, prefix in f.metadata),
                               key=lambda row: (METADATA_KEYS.index(row[0]), -len(row[1]))))
# LoRA slot -> {input width of its probe module: family}, tried in this order (the UNet's context is decisive)
LORA_FAMILIES = {
    "unet": {f.context_width: f.name for f in FAMILIES.values()},
    "te2": {f.text_widths[1]: f.name for f in FAMILIES.values() if f.layout == "xl"},
    "te1": {f.text_widths[0]: f.name for f in FAMILIES.values() if f.layout == "xl"},
    "te": {f.text_widths[0]: f.name for f in FAMILIES.values() if f.layout == "sd"},
}
EMBEDDING_FAMILIES = {f.text_widths: f.name for f in FAMILIES.values() if f.layout in ("sd", "xl")}
CONTROLNET_FAMILIES = {f.context_width: f.name for f in FAMILIES.values() if f.layout != "refiner"}

# metadata key -> {value (lower case): prediction}
PREDICTION_METADATA = (
    ("modelspec.prediction_type", {"v": "v_prediction", "v_prediction": "v_prediction",
                                   "epsilon": "epsilon", "eps": "epsilon"}),
    ("prediction_type", {"v": "v_prediction", "v_prediction": "v_prediction",
                         "epsilon": "epsilon", "eps": "epsilon"}),
    ("ss_v_parameterization", {"true": "v_prediction", "false": "epsilon"}),
)
V_PREDICTION_KEYS = ("v_pred",)  # marker tensors some SD2/SDXL v-prediction files carry
CROSS_ATTENTION_KEY = re.compile(
    r"^model\.diffusion_model\.(input_blocks|middle_block)\..*transformer_blocks\.0\.attn2\.to_k\.weight$"
)
IN_CHANNELS_KEY = UNET_PREFIX + "input_blocks.0.0.weight"

LORA_TARGET_ORDER = ("unet", "te1", "te2")
# modules whose input width tells the base: UNet attn2 to_k reads the text context; TE q/k/v read the text
# encoder's hidden width
UNET_PROBE = re.compile(r"attn2[._](processor[._])?to_k$")
TE_PROBE = re.compile(r"self_attn[._][qkv]_proj$")
LORA_PROBES = {"unet": UNET_PROBE, "te": TE_PROBE, "te1": TE_PROBE, "te2": TE_PROBE}

CONTROLNET_PREFIXES = ("control_model.", "controlnet_cond_embedding.", "input_hint_block.")
VAE_PREFIXES = ("", VAE_PREFIX)
VAE_MARKERS = ("decoder.conv_in.weight", "encoder.conv_in.weight", "quant_conv.weight", "post_quant_conv.weight")


# ---- detection: pure functions of {key: shape} and metadata --------------------------------------------------
@dataclass(frozen=True)
class LoraFileInfo:
    """What a LoRA file holds, read from its header.

    format: kohya, locon, loha, lokr, peft (`lora_A`/`lora_B`) or diffusers (`lora.down`/`lora.up`).
    rank: the most common rank; targets: a subset of ("unet", "te1", "te2"), where the single text
    encoder of an SD1/SD2 file counts as "te1". `alpha` is the most common `.alpha` value, known only
    once read from the file's data (`inspect` does), else None; `has_alpha` says whether there are any.
    """

    format: str
    rank: int | None
    has_alpha: bool
    targets: tuple[str, ...]
    n_modules: int
    alpha: float | None = None


@dataclass(frozen=True)
class Detection:
    """kind: checkpoint/lora/vae/embedding/controlnet/unknown; family None when unknown."""

    kind: str
    family: str | None = None
    variant: str | None = None
    prediction: str | None = None
    lora: LoraFileInfo | None = None


def family_from_metadata(metadata) -> str | None:
    for key, prefix, family in FAMILY_METADATA:
        if str(metadata.get(key, "")).startswith(prefix):
            return family
    return None


def prediction_from_metadata(metadata) -> str | None:
    for key, values in PREDICTION_METADATA:
        told = values.get(str(metadata.get(key, "")).strip().lower())
        if told:
            return told
    return None


def checkpoint_layout(shapes) -> str | None:
    """The single-file layout whose text-encoder slots the keys fill best (None: no text encoder at all)."""
    def filled(layout):
        return sum(any(key.startswith(slot.prefix) for key in shapes) for slot in layout.slots)

    best = max(CHECKPOINT_LAYOUTS.values(), key=filled)  # ties: the table's order
    return best.name if filled(best) else None


def _cross_attention_width(shapes):
    keys = sorted(key for key in shapes if CROSS_ATTENTION_KEY.match(key))
    return shapes[keys[0]][1] if keys else None


def _detect_checkpoint(shapes, metadata):
    family = CHECKPOINT_FAMILIES.get((checkpoint_layout(shapes), _cross_attention_width(shapes)))
    in_shape = shapes.get(IN_CHANNELS_KEY, ())
    variant = VARIANTS_BY_IN_CHANNELS.get(in_shape[1]) if len(in_shape) > 1 else None
    prediction = prediction_from_metadata(metadata)
    if prediction is None and any(key in shapes for key in V_PREDICTION_KEYS):
        prediction = "v_prediction"
    if prediction is None:
        prediction = DEFAULT_PREDICTION.get(family)
    return Detection("checkpoint", family, variant, prediction)


def _lora_modules(shapes):
    """({module: {part name: shape}}, the formats the keys' suffixes imply) for every LoRA-shaped key."""
    modules, found = {}, set()
    for key, shape in shapes.items():
        split = formats.split_suffix(key)
        if split:
            part = formats.PARTS[split[1]]
            modules.setdefault(split[0], {})[part.name] = shape
            if part.format == "kohya" and part.name == "down" and len(shape) == 4 and tuple(shape[2:]) != (1, 1):
                found.add("locon")  # kohya names on a real convolution: LoCon
            found.add(part.format)
    return modules, found - {None}


def _is_lora(shapes):
    """True when some key ends in a suffix that only LoRA formats use (not just `.alpha`)."""
    return any(formats.PARTS[split[1]].format for split in map(formats.split_suffix, shapes) if split)


def _input_width(parts):
    """Input width of one LoRA module: from its down matrix, or the product of a LoKr pair's."""
    for name in ("down", "w1b"):
        if name in parts and len(parts[name]) >= 2:
            return parts[name][1]
    w1, w2 = parts.get("k1") or parts.get("k1b"), parts.get("k2") or parts.get("k2b")
    if w1 and w2 and len(w1) == 2 and len(w2) == 2:
        return w1[1] * w2[1]
    return None


def _lora_rank(modules):
    ranks = Counter(parts[name][0] for parts in modules.values() for names in formats.RANK_PART.values()
                    for name in names if parts.get(name))
    return ranks.most_common(1)[0][0] if ranks else None


def _lora_family(by_slot):
    for slot, families in LORA_FAMILIES.items():
        for module, parts in sorted(by_slot.get(slot, {}).items()):
            if LORA_PROBES[slot].search(module):
                family = families.get(_input_width(parts))
                if family:
                    return family
    return None


def _detect_lora(shapes, metadata):
    modules, found = _lora_modules(shapes)
    by_slot = {}
    for module, parts in modules.items():
        prefix = formats.prefix_of(module)
        by_slot.setdefault(prefix.slot if prefix else None, {})[module] = parts
    if "te2" in by_slot:  # two text encoders: the plainly named one is the first
        plain = by_slot.pop("te", {})
        if plain:
            by_slot.setdefault("te1", {}).update(plain)
    targets = tuple(t for t in LORA_TARGET_ORDER if t in by_slot or (t == "te1" and "te" in by_slot))
    info = LoraFileInfo(
        format=next(fmt for fmt in formats.FORMAT_PRIORITY if fmt in found),
        rank=_lora_rank(modules),
        has_alpha=any("alpha" in parts for parts in modules.values()),
        targets=targets,
        n_modules=sum(1 for parts in modules.values() if set(parts) - set(formats.EXTRA_PARTS)),
    )
    family = _lora_family(by_slot) or family_from_metadata(metadata)
    return Detection("lora", family, None, prediction_from_metadata(metadata), info)


def _is_embedding(shapes):
    return ("emb_params" in shapes or {"clip_l", "clip_g"} <= shapes.keys()
            or any(key == "string_to_param" or key.startswith("string_to_param.") for key in shapes))


def _embedding_widths(shapes):
    """The vector width of each text encoder an embedding is for: clip_l + clip_g for SDXL, else one."""
    if {"clip_l", "clip_g"} <= shapes.keys():
        return shapes["clip_l"][-1:] + shapes["clip_g"][-1:]
    key = "emb_params" if "emb_params" in shapes else min(k for k in shapes if k.startswith("string_to_param"))
    return shapes[key][-1:]


def _detect_embedding(shapes, metadata):
    family = EMBEDDING_FAMILIES.get(_embedding_widths(shapes))
    return Detection("embedding", family or family_from_metadata(metadata))


def _is_controlnet(shapes):
    return any(key.startswith(CONTROLNET_PREFIXES) for key in shapes)


def _detect_controlnet(shapes, metadata):
    keys = sorted(key for key in shapes if key.endswith("transformer_blocks.0.attn2.to_k.weight"))
    width = shapes[keys[0]][1] if keys else None
    return Detection("controlnet", CONTROLNET_FAMILIES.get(width) or family_from_metadata(metadata))


def _is_vae(shapes):
    return any(prefix + marker in shapes for prefix in VAE_PREFIXES for marker in VAE_MARKERS)


def _detect_vae(shapes, metadata):
    return Detection("vae", family_from_metadata(metadata))


def _is_checkpoint(shapes):
    return any(key.startswith(UNET_PREFIX) for key in shapes)


# kind rules, tried in order: the first whose test holds describes the file
KIND_RULES = (
    (_is_checkpoint, _detect_checkpoint),
    (_is_lora, _detect_lora),
    (_is_controlnet, _detect_controlnet),
    (_is_embedding, _detect_embedding),
    (_is_vae, _detect_vae),
)


def detect(shapes, metadata=None) -> Detection:
    """What a file is, from {tensor key: shape} and its `__metadata__` (a pure function)."""
    shapes = {key: tuple(shape) for key, shape in shapes.items()}
    metadata = metadata or {}
    for test, describe in KIND_RULES:
        if test(shapes):
            return describe(shapes, metadata)
    return Detection("unknown")


# ---- inspect(): the header, detection and a few derived numbers ----------------------------------------------
SHORT_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64",
                "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}
# kind -> the short hash A1111 writes for it (AutoV2 for everything else)
SHORT_HASHES = {"lora": hashes.autov3, "embedding": hashes.ti_hash}


def _si(n):
    """A count with an SI prefix: 6_900_000_000 -> '6.9 G', 512 -> '512'."""
    prefixes, power = ("", "k", "M", "G", "T"), 0
    while n >= 1000 and power < len(prefixes) - 1:
        n, power = n / 1000, power + 1
    return f"{n:.0f}" if power == 0 else f"{n:.1f} {prefixes[power]}"


@dataclass(frozen=True)
class FileInfo:
    """What `inspect(path)` learnt from a file's header; hashes are computed on first access."""

    path: Path
    kind: str
    family: str | None
    variant: str | None
    prediction: str | None
    dtype: str | None
    n_params: int
    n_tensors: int
    file_size: int
    metadata: dict = field(repr=False, compare=False)
    lora: LoraFileInfo | None = None
    architecture: str | None = None  # upscalers: spandrel's name of the architecture ("ESRGAN", "RealESRGAN Compact")
    scale: int | None = None  # upscalers: how many times bigger a picture comes out

    @property
    def short_hash(self) -> str:
        """The hash A1111 writes for this kind: AutoV3 for LoRAs, TI hash for embeddings, else AutoV2."""
        return SHORT_HASHES.get(self.kind, hashes.autov2)(self.path)

    @property
    def sha256(self) -> str:
        return hashes.sha256(self.path)

    def summary(self) -> str:
        """One line, e.g. 'checkpoint · sdxl · inpaint · fp16 · 2.6 G params · 6.9 GB'."""
        parts = [self.kind]
        if self.kind == "upscaler":
            parts += [self.architecture, f"{self.scale}x"]
        elif self.kind != "unknown":
            parts.append(self.family or "unknown family")
        parts += [p for p in (self.variant, "v-pred" if self.prediction == "v_prediction" else None) if p]
        if self.lora:
            parts.append(self.lora.format)
            parts += [f"rank {self.lora.rank}"] if self.lora.rank else []
            parts += [f"alpha {self.lora.alpha:g}"] if self.lora.alpha is not None else []
            parts.append("+".join(self.lora.targets) or "no targets")
        parts += [SHORT_DTYPES.get(self.dtype, self.dtype)] if self.dtype else []
        size = f"{_si(self.file_size)}B" if self.file_size >= 1000 else f"{self.file_size} B"
        parts += [f"{_si(self.n_params)} params", size]
        return " · ".join(parts)

    def __repr__(self):
        return f"<FileInfo {self.path.name}: {self.summary()}>"


def _main_dtype(header):
    """The dtype holding the most parameters, by its torch-style name."""
    counts = Counter()
    for entry in header.values():
        counts[entry["dtype"]] += math.prod(entry["shape"])
    if not counts:
        return None
    dtype = counts.most_common(1)[0][0]
    return DTYPES.get(dtype, (None, dtype.lower()))[1]


def _with_alpha(lora, path, header, data_start):
    alpha_keys = sorted(key for key in header if key.endswith(".alpha"))
    values = Counter(read_scalars(path, header, data_start, alpha_keys).values())
    return replace(lora, alpha=values.most_common(1)[0][0]) if values else lora


def inspect(path) -> FileInfo:
    """Describe a .safetensors file from its header (plus a LoRA's few alpha scalars); no tensors load."""
    from .checks import path as check_path

    path = Path(check_path("path", path)).expanduser()
    if path.suffix.lower() in (".pth", ".pt") and path.is_file():
        return _pickled_upscaler(path)
    header, metadata, data_start = read_header_at(path)
    found = detect({key: entry["shape"] for key, entry in header.items()}, metadata)
    if found.kind == "unknown":
        upscaler = _upscaler(path, {key: entry["shape"] for key, entry in header.items()})
        if upscaler is not None:
            return replace(upscaler, dtype=_main_dtype(header), metadata=metadata)
    lora = _with_alpha(found.lora, path, header, data_start) if found.lora and found.lora.has_alpha else found.lora
    return FileInfo(
        path=path,
        kind=found.kind,
        family=found.family,
        variant=found.variant,
        prediction=found.prediction,
        dtype=_main_dtype(header),
        n_params=sum(math.prod(entry["shape"]) for entry in header.values()),
        n_tensors=len(header),
        file_size=path.stat().st_size,
        metadata=metadata,
        lora=lora,
    )


def _upscaler(path: Path, shapes: dict) -> FileInfo | None:
    """An upscaler's FileInfo from its tensor shapes (spandrel tells the architecture), or None."""
    from .upscalers.models import architecture_of

    found = architecture_of(shapes, path.name)
    if found is None:
        return None
    return FileInfo(path=path, kind="upscaler", family=None, variant=None, prediction=None, dtype=None,
                    n_params=sum(math.prod(shape) for shape in shapes.values()), n_tensors=len(shapes),
                    file_size=path.stat().st_size, metadata={}, architecture=found[0], scale=found[1])


def _pickled_upscaler(path: Path) -> FileInfo:
    """A .pth/.pt file read with torch.load(weights_only=True) (UnsafeFile when that refuses it): an upscaler's
    FileInfo, or UnsupportedFile for anything else (labkit reads other models from .safetensors)."""
    from .errors import UnsupportedFile
    from .upscalers.models import read_state_dict

    state = read_state_dict(path)
    shapes = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    info = _upscaler(path, shapes)
    if info is None:
        raise UnsupportedFile(f"{path.name} is a pickled file that is not an upscaler labkit knows; labkit inspects "
                              f"other models as .safetensors files.")
    dtypes = Counter(str(v.dtype).removeprefix("torch.") for v in state.values() if hasattr(v, "dtype"))
    return replace(info, dtype=dtypes.most_common(1)[0][0] if dtypes else None)
