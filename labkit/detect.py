"""What a model file is, told by its .safetensors header alone (no tensor data, no torch).

Three layers, IO at the edge:
- `read_header(path)`: the header's tensor table and `__metadata__`, validated, with errors that teach.
- `detect(shapes, metadata)`: a pure function of {key: shape} driven by the data tables below.
- `inspect(path)`: both of the above plus sizes, dtypes and lazy hashes, as a `FileInfo`.
"""

import json
import math
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import hashes
from .errors import UnsafeFile, UnsupportedFile

# ---------------------------------------------------------------------------------------------
# Data tables
# ---------------------------------------------------------------------------------------------

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit on the JSON header
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
PICKLE_MAGICS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # zip, pickle 2-5

# safetensors dtype -> (bytes per element, torch-style name)
DTYPES = {
    "F64": (8, "float64"),
    "F32": (4, "float32"),
    "F16": (2, "float16"),
    "BF16": (2, "bfloat16"),
    "F8_E4M3": (1, "float8_e4m3fn"),
    "F8_E5M2": (1, "float8_e5m2"),
    "I64": (8, "int64"),
    "I32": (4, "int32"),
    "I16": (2, "int16"),
    "I8": (1, "int8"),
    "U64": (8, "uint64"),
    "U32": (4, "uint32"),
    "U16": (2, "uint16"),
    "U8": (1, "uint8"),
    "BOOL": (1, "bool"),
}
SHORT_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64",
                "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}
# dtype -> struct format for reading one scalar (bfloat16 is decoded by hand)
SCALAR_FORMATS = {"F64": "<d", "F32": "<f", "F16": "<e", "I64": "<q", "I32": "<i", "I16": "<h", "I8": "<b",
                  "U8": "<B"}
SCALAR_DTYPES = (*SCALAR_FORMATS, "BF16")

UNET_PREFIX = "model.diffusion_model."
# first matching text-encoder prefix -> checkpoint layout (REFERENCE "Single-file checkpoints")
CHECKPOINT_LAYOUTS = (
    ("conditioner.embedders.1.model.", "sdxl"),  # OpenCLIP-G beside CLIP-L: SDXL base
    ("conditioner.embedders.0.model.", "sdxl-refiner"),  # OpenCLIP-G alone
    ("cond_stage_model.model.", "sd2"),  # OpenCLIP-H
    ("cond_stage_model.transformer.", "sd1"),  # CLIP-L (`.text_model.` in all but the oldest files)
)
# (layout, UNet cross-attention width) -> family; pairs not listed are an unknown family
CHECKPOINT_FAMILIES = {
    ("sd1", 768): "sd1",
    ("sd2", 1024): "sd2",
    ("sdxl", 2048): "sdxl",
    ("sdxl-refiner", 1280): "sdxl-refiner",
    ("sd1", 64): "toy",
    ("sdxl", 160): "toy-xl",
    ("sdxl-refiner", 96): "toy-xl-refiner",
}
CROSS_ATTENTION_KEY = re.compile(
    r"^model\.diffusion_model\.(input_blocks|middle_block)\..*transformer_blocks\.0\.attn2\.to_k\.weight$"
)
IN_CHANNELS_KEY = "model.diffusion_model.input_blocks.0.0.weight"
VARIANTS_BY_IN_CHANNELS = {9: "inpaint", 8: "instruct-pix2pix"}
# what a family predicts when the file does not say; sd2 is absent: 512-base is epsilon, 768-v is v
DEFAULT_PREDICTION = {"sd1": "epsilon", "sdxl": "epsilon", "sdxl-refiner": "epsilon",
                      "toy": "epsilon", "toy-xl": "epsilon", "toy-xl-refiner": "epsilon"}
V_PREDICTION_KEYS = ("v_pred",)  # marker tensors some SD2/SDXL v-prediction files carry
# metadata key -> {value (lower case): prediction}
PREDICTION_METADATA = (
    ("modelspec.prediction_type", {"v": "v_prediction", "v_prediction": "v_prediction",
                                   "epsilon": "epsilon", "eps": "epsilon"}),
    ("prediction_type", {"v": "v_prediction", "v_prediction": "v_prediction",
                         "epsilon": "epsilon", "eps": "epsilon"}),
    ("ss_v_parameterization", {"true": "v_prediction", "false": "epsilon"}),
)
# (metadata key, value prefix) -> family; the first match wins, so specific prefixes come first
FAMILY_METADATA = (
    ("modelspec.architecture", "stable-diffusion-xl-v1-refiner", "sdxl-refiner"),
    ("modelspec.architecture", "stable-diffusion-xl", "sdxl"),
    ("modelspec.architecture", "stable-diffusion-v2", "sd2"),
    ("modelspec.architecture", "stable-diffusion-v1", "sd1"),
    ("ss_base_model_version", "sdxl", "sdxl"),
    ("ss_base_model_version", "sd_v2", "sd2"),
    ("ss_base_model_version", "sd_v1", "sd1"),
    ("ss_v2", "True", "sd2"),
    ("ss_v2", "False", "sd1"),
)

# LoRA key suffix -> (format it implies or None, role); the longest matching suffix wins
LORA_SUFFIXES = {
    ".lora_down.weight": ("kohya", "down"),
    ".lora_up.weight": ("kohya", "up"),
    ".lora_mid.weight": ("locon", "mid"),
    ".hada_w1_a": ("loha", "up"),
    ".hada_w1_b": ("loha", "down"),
    ".hada_w2_a": ("loha", "part"),
    ".hada_w2_b": ("loha", "part"),
    ".hada_t1": ("loha", "part"),
    ".hada_t2": ("loha", "part"),
    ".lokr_w1": ("lokr", "part"),
    ".lokr_w1_a": ("lokr", "part"),
    ".lokr_w1_b": ("lokr", "part"),
    ".lokr_w2": ("lokr", "part"),
    ".lokr_w2_a": ("lokr", "part"),
    ".lokr_w2_b": ("lokr", "part"),
    ".lokr_t2": ("lokr", "part"),
    ".lora_A.weight": ("peft", "down"),
    ".lora_B.weight": ("peft", "up"),
    ".lora.down.weight": ("diffusers", "down"),
    ".lora.up.weight": ("diffusers", "up"),
    "_lora.down.weight": ("diffusers", "down"),  # attention-processor files: `to_k_lora.down.weight`
    "_lora.up.weight": ("diffusers", "up"),
    ".alpha": (None, "alpha"),
    ".dora_scale": (None, "part"),
}
LORA_SUFFIXES_LONGEST_FIRST = tuple(sorted(LORA_SUFFIXES, key=len, reverse=True))
LORA_FORMAT_PRIORITY = ("lokr", "loha", "locon", "kohya", "peft", "diffusers")
# module-name prefix -> LoRA target; "te" is the only text encoder of an SD1/SD2 file
LORA_TARGETS = (
    ("lora_unet_", "unet"),
    ("lora_te1_", "te1"),
    ("lora_te2_", "te2"),
    ("lora_te_", "te"),
    ("unet.", "unet"),
    ("text_encoder_2.", "te2"),
    ("text_encoder.", "te"),
)
LORA_TARGET_ORDER = ("unet", "te1", "te2")
# modules whose input width tells the base: UNet attn2 to_k reads the text context; TE q/k/v read
# the text encoder's hidden width
_UNET_PROBE = re.compile(r"attn2[._](processor[._])?to_k$")
_TE_PROBE = re.compile(r"self_attn[._][qkv]_proj$")
LORA_PROBES = {"unet": _UNET_PROBE, "te": _TE_PROBE, "te1": _TE_PROBE, "te2": _TE_PROBE}
# (target, input width) -> family; targets are tried in this order
LORA_FAMILIES = {
    "unet": {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl-refiner", 64: "toy", 160: "toy-xl", 96: "toy-xl-refiner"},
    "te2": {1280: "sdxl", 96: "toy-xl"},
    "te1": {768: "sdxl", 64: "toy-xl"},
    "te": {768: "sd1", 1024: "sd2", 64: "toy"},
}
# suffix -> which dimension of its shape is the rank
LORA_RANK_DIMS = {".lora_down.weight": 0, ".lora_A.weight": 0, ".lora.down.weight": 0, "_lora.down.weight": 0,
                  ".hada_w1_b": 0, ".lokr_w2_b": 0, ".lokr_w1_b": 0}
LORA_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight", "_lora.down.weight",
                      ".hada_w1_b")

EMBEDDING_FAMILIES = {768: "sd1", 1024: "sd2", 64: "toy"}  # vector width of a one-encoder embedding
EMBEDDING_XL_FAMILIES = {(768, 1280): "sdxl", (64, 96): "toy-xl"}  # (clip_l width, clip_g width)

CONTROLNET_PREFIXES = ("control_model.", "controlnet_cond_embedding.", "input_hint_block.")
CONTROLNET_FAMILIES = {768: "sd1", 1024: "sd2", 2048: "sdxl", 64: "toy", 160: "toy-xl"}

VAE_PREFIXES = ("", "first_stage_model.")
VAE_MARKERS = ("decoder.conv_in.weight", "encoder.conv_in.weight", "quant_conv.weight", "post_quant_conv.weight")


# ---------------------------------------------------------------------------------------------
# Reading the header
# ---------------------------------------------------------------------------------------------

def _missing(path):
    return UnsupportedFile(
        f"No such file: {path} (working directory {os.getcwd()}). Check the path; for labkit's "
        "built-in models pass a name from labkit.models() instead, e.g. labkit.open('toy')."
    )


def _unsafe(path):
    return UnsafeFile(
        f"{path} is a pickled PyTorch checkpoint: unpickling can run arbitrary code hidden in the file, "
        "so labkit does not read it. Convert it to .safetensors once (with a tool you trust) and use that; "
        "if you trust its source, labkit.open(path, allow_pickle=True) loads it with "
        "torch.load(weights_only=True)."
    )


def _not_safetensors(path, why):
    return UnsupportedFile(
        f"{path} is not a .safetensors file ({why}). labkit reads single-file .safetensors checkpoints, "
        "LoRAs, VAEs and embeddings; open a diffusers folder with labkit.open(folder)."
    )


def _corrupt(path, why):
    return UnsupportedFile(
        f"{path} has a corrupt or truncated .safetensors header: {why}. Download it again (an interrupted "
        "download is the usual cause) and compare its sha256 with the one the site lists."
    )


def _is_int_list(value):
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _check_entry(path, key, entry, data_size):
    """Raise if one tensor entry of the header is malformed or points past the end of the file."""
    if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
            and _is_int_list(entry.get("shape")) and _is_int_list(entry.get("data_offsets"))
            and len(entry["data_offsets"]) == 2):
        raise _corrupt(path, f"entry {key!r} lacks a dtype, shape or data_offsets pair")
    begin, end = entry["data_offsets"]
    if not 0 <= begin <= end:
        raise _corrupt(path, f"tensor {key!r} has data_offsets {entry['data_offsets']}")
    if end > data_size:
        raise _corrupt(path, f"tensor {key!r} ends at data byte {end}, past the file's end ({data_size} data bytes)")
    itemsize = DTYPES.get(entry["dtype"], (None, None))[0]
    if itemsize is not None and end - begin != math.prod(entry["shape"]) * itemsize:
        raise _corrupt(path, f"tensor {key!r} has {end - begin} bytes for shape {entry['shape']} of {entry['dtype']}")


def _looks_like_safetensors(head):
    """A plausible length field followed by "{": checked before pickle magic, which a length can mimic."""
    return len(head) == 9 and 2 <= int.from_bytes(head[:8], "little") <= MAX_HEADER_BYTES and head[8:] == b"{"


def _parse_header(path, raw, data_size):
    """The JSON header -> (tensor entries, metadata), validated against the data size."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, f"the JSON header does not parse ({e})") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "the JSON header is not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _corrupt(path, "__metadata__ is not an object")
    for key, entry in header.items():
        _check_entry(path, key, entry, data_size)
    return header, metadata


def _read_header(path):
    """(tensor entries, metadata, byte offset where tensor data starts); reads only the header."""
    path = Path(path)
    if not path.exists():
        raise _missing(path)
    if path.is_dir():
        raise UnsupportedFile(f"{path} is a folder: inspect() reads one .safetensors file; "
                              "labkit.open(folder) opens a diffusers folder.")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _unsafe(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)  # the length field and the header's first byte, which the spec fixes as "{"
        header_len = int.from_bytes(head[:8], "little")
        if not _looks_like_safetensors(head) and head.startswith(PICKLE_MAGICS):
            raise _unsafe(path)
        if len(head) < 9:
            raise _not_safetensors(path, f"only {size} bytes long")
        if not 2 <= header_len <= MAX_HEADER_BYTES:
            raise _not_safetensors(path, f"its first 8 bytes give an implausible header length, {header_len}")
        if head[8:] != b"{":
            raise _not_safetensors(path, "no JSON header after the length field")
        if 8 + header_len > size:
            raise _corrupt(path, f"the header claims {header_len} bytes but only {size - 8} follow")
        raw = b"{" + f.read(header_len - 1)
    header, metadata = _parse_header(path, raw, data_size=size - 8 - header_len)
    return header, metadata, 8 + header_len


def read_header(path):
    """The .safetensors header of `path`: ({key: {"dtype", "shape", "data_offsets"}}, metadata dict).

    Reads the 8-byte length and the JSON header, nothing else. Raises `UnsafeFile` for pickled
    checkpoints and `UnsupportedFile` for missing, foreign, truncated or corrupt files.
    """
    header, metadata, _ = _read_header(path)
    return header, metadata


# ---------------------------------------------------------------------------------------------
# Detection: pure functions of {key: shape} and metadata
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoraInfo:
    """What a LoRA file holds.

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
    lora: LoraInfo | None = None


def _family_from_metadata(metadata):
    for key, prefix, family in FAMILY_METADATA:
        if str(metadata.get(key, "")).startswith(prefix):
            return family
    return None


def _prediction_from_metadata(metadata):
    for key, values in PREDICTION_METADATA:
        told = values.get(str(metadata.get(key, "")).strip().lower())
        if told:
            return told
    return None


def _checkpoint_layout(shapes):
    for prefix, layout in CHECKPOINT_LAYOUTS:
        if any(key.startswith(prefix) for key in shapes):
            return layout
    return None


def _cross_attention_width(shapes):
    keys = sorted(key for key in shapes if CROSS_ATTENTION_KEY.match(key))
    return shapes[keys[0]][1] if keys else None


def _detect_checkpoint(shapes, metadata):
    family = CHECKPOINT_FAMILIES.get((_checkpoint_layout(shapes), _cross_attention_width(shapes)))
    in_shape = shapes.get(IN_CHANNELS_KEY, ())
    variant = VARIANTS_BY_IN_CHANNELS.get(in_shape[1]) if len(in_shape) > 1 else None
    prediction = _prediction_from_metadata(metadata)
    if prediction is None and any(key in shapes for key in V_PREDICTION_KEYS):
        prediction = "v_prediction"
    if prediction is None:
        prediction = DEFAULT_PREDICTION.get(family)
    return Detection("checkpoint", family, variant, prediction)


def _split_lora_key(key):
    """'lora_unet_x.lora_down.weight' -> ('lora_unet_x', '.lora_down.weight'), or None."""
    for suffix in LORA_SUFFIXES_LONGEST_FIRST:
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix
    return None


def _lora_modules(shapes):
    """{module name: {suffix: shape}} for every LoRA-shaped key."""
    modules = {}
    for key, shape in shapes.items():
        split = _split_lora_key(key)
        if split:
            modules.setdefault(split[0], {})[split[1]] = shape
    return modules


def _is_lora(shapes):
    """True when some key ends in a suffix that only LoRA formats use (not just `.alpha`)."""
    return any(LORA_SUFFIXES[split[1]][0] for split in map(_split_lora_key, shapes) if split)


def _lora_format(modules):
    formats = {LORA_SUFFIXES[suffix][0] for parts in modules.values() for suffix in parts}
    conv = any(len(parts.get(".lora_down.weight", ())) == 4 and tuple(parts[".lora_down.weight"][2:]) != (1, 1)
               for parts in modules.values())
    if conv:
        formats.add("locon")
    return next(fmt for fmt in LORA_FORMAT_PRIORITY if fmt in formats)


def _lora_target(module):
    return next((target for prefix, target in LORA_TARGETS if module.startswith(prefix)), None)


def _input_width(parts):
    """Input width of one LoRA module: from its down matrix, or the product of a LoKr pair's."""
    for suffix in LORA_DOWN_SUFFIXES:
        if suffix in parts and len(parts[suffix]) >= 2:
            return parts[suffix][1]
    w1 = parts.get(".lokr_w1") or parts.get(".lokr_w1_b")
    w2 = parts.get(".lokr_w2") or parts.get(".lokr_w2_b")
    if w1 and w2 and len(w1) == 2 and len(w2) == 2:
        return w1[1] * w2[1]
    return None


def _lora_rank(modules):
    ranks = Counter(parts[suffix][dim] for parts in modules.values()
                    for suffix, dim in LORA_RANK_DIMS.items() if suffix in parts and parts[suffix])
    return ranks.most_common(1)[0][0] if ranks else None


def _lora_family(modules_by_target):
    for target, families in LORA_FAMILIES.items():
        for module, parts in sorted(modules_by_target.get(target, {}).items()):
            if LORA_PROBES[target].search(module):
                family = families.get(_input_width(parts))
                if family:
                    return family
    return None


def _detect_lora(shapes, metadata):
    modules = _lora_modules(shapes)
    by_target = {}
    for module, parts in modules.items():
        by_target.setdefault(_lora_target(module), {})[module] = parts
    if "te2" in by_target:  # two text encoders: the plainly named one is the first
        plain = by_target.pop("te", {})
        if plain:
            by_target.setdefault("te1", {}).update(plain)
    targets = tuple(t for t in LORA_TARGET_ORDER if t in by_target or (t == "te1" and "te" in by_target))
    info = LoraInfo(
        format=_lora_format(modules),
        rank=_lora_rank(modules),
        has_alpha=any(".alpha" in parts for parts in modules.values()),
        targets=targets,
        n_modules=sum(1 for parts in modules.values() if set(parts) - {".alpha", ".dora_scale"}),
    )
    family = _lora_family(by_target) or _family_from_metadata(metadata)
    return Detection("lora", family, None, _prediction_from_metadata(metadata), info)


def _is_embedding(shapes):
    return ("emb_params" in shapes or {"clip_l", "clip_g"} <= shapes.keys()
            or any(key == "string_to_param" or key.startswith("string_to_param.") for key in shapes))


def _embedding_family(shapes):
    """Family from the vector width: (n_vectors, width) for one encoder, clip_l + clip_g for SDXL."""
    if {"clip_l", "clip_g"} <= shapes.keys():
        return EMBEDDING_XL_FAMILIES.get((shapes["clip_l"][-1], shapes["clip_g"][-1]))
    key = "emb_params" if "emb_params" in shapes else min(k for k in shapes if k.startswith("string_to_param"))
    return EMBEDDING_FAMILIES.get(shapes[key][-1]) if shapes[key] else None


def _detect_embedding(shapes, metadata):
    return Detection("embedding", _embedding_family(shapes) or _family_from_metadata(metadata))


def _is_controlnet(shapes):
    return any(key.startswith(CONTROLNET_PREFIXES) for key in shapes)


def _detect_controlnet(shapes, metadata):
    keys = sorted(key for key in shapes if key.endswith("transformer_blocks.0.attn2.to_k.weight"))
    width = shapes[keys[0]][1] if keys else None
    return Detection("controlnet", CONTROLNET_FAMILIES.get(width) or _family_from_metadata(metadata))


def _is_vae(shapes):
    return any(prefix + marker in shapes for prefix in VAE_PREFIXES for marker in VAE_MARKERS)


def _detect_vae(shapes, metadata):
    return Detection("vae", _family_from_metadata(metadata))


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


# ---------------------------------------------------------------------------------------------
# inspect(): the header, detection and a few derived numbers
# ---------------------------------------------------------------------------------------------

def _si(n):
    """A count with an SI prefix: 6_900_000_000 -> '6.9 G', 512 -> '512'."""
    prefixes, power = ("", "k", "M", "G", "T"), 0
    while n >= 1000 and power < len(prefixes) - 1:
        n, power = n / 1000, power + 1
    return f"{n:.0f}" if power == 0 else f"{n:.1f} {prefixes[power]}"


def _params_text(n):
    return f"{_si(n)} params"


def _bytes_text(n):
    return f"{_si(n)}B" if n >= 1000 else f"{n} B"


# kind -> the short hash A1111 writes for it (AutoV2 for everything else)
SHORT_HASHES = {"lora": hashes.autov3, "embedding": hashes.ti_hash}


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
    lora: LoraInfo | None = None

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
        if self.kind != "unknown":
            parts.append(self.family or "unknown family")
        parts += [p for p in (self.variant, "v-pred" if self.prediction == "v_prediction" else None) if p]
        if self.lora:
            parts.append(self.lora.format)
            parts += [f"rank {self.lora.rank}"] if self.lora.rank else []
            parts += [f"alpha {self.lora.alpha:g}"] if self.lora.alpha is not None else []
            parts.append("+".join(self.lora.targets) or "no targets")
        parts += [SHORT_DTYPES.get(self.dtype, self.dtype)] if self.dtype else []
        parts += [_params_text(self.n_params), _bytes_text(self.file_size)]
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


def _decode_scalar(dtype, raw):
    if dtype == "BF16":  # the upper half of a float32
        return struct.unpack("<f", b"\x00\x00" + raw)[0]
    return float(struct.unpack(SCALAR_FORMATS[dtype], raw)[0])


def _read_scalars(path, header, data_start, keys):
    """{key: float} for one-element tensors among `keys`, reading just their bytes."""
    values = {}
    with open(path, "rb") as f:
        for key in keys:
            entry = header[key]
            if math.prod(entry["shape"]) != 1 or entry["dtype"] not in SCALAR_DTYPES:
                continue
            begin, end = entry["data_offsets"]
            f.seek(data_start + begin)
            values[key] = _decode_scalar(entry["dtype"], f.read(end - begin))
    return values


def _with_alpha(lora, path, header, data_start):
    alpha_keys = sorted(key for key in header if key.endswith(".alpha"))
    values = Counter(_read_scalars(path, header, data_start, alpha_keys).values())
    return replace(lora, alpha=values.most_common(1)[0][0]) if values else lora


def inspect(path) -> FileInfo:
    """Describe a .safetensors file from its header (plus a LoRA's few alpha scalars); no tensors load."""
    path = Path(path)
    header, metadata, data_start = _read_header(path)
    found = detect({key: entry["shape"] for key, entry in header.items()}, metadata)
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
