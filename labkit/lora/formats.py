"""LoRA file keys -> modules, parts and scales: pure functions over key names and metadata (no torch).

A LoRA file is a set of modules, each stored as a few tensors under `<module><suffix>`. The suffix names the
part (`.lora_down.weight` is the "down" matrix of kohya's LoRA, `.hada_w1_a` a LoHa factor...); the module
name says which layer of which component it patches, in one of two spellings:
- kohya/A1111: `lora_unet_down_blocks_0_attentions_0_proj_in`, `lora_te1_text_model_encoder_layers_0_mlp_fc1`
  (dots flattened to underscores; SDXL files use LDM/SGM UNet names, `lora_unet_input_blocks_4_1_...`)
- diffusers/PEFT: `unet.down_blocks.0.attentions.0.proj_in`, `text_encoder_2.text_model.encoder.layers.0...`
Both are brought to one flat spelling, `(component, "down_blocks_0_attentions_0_proj_in")`, which is what the
target table (targets.py) is keyed by.
"""

import json
import math
import re
from typing import NamedTuple


class Part(NamedTuple):
    """What a key suffix means: the part it names, the kind of module that part belongs to (None: an extra that
    makes no module by itself), and the file format the suffix implies (None: any format uses it)."""

    name: str
    kind: str | None
    format: str | None


# key suffix -> Part; the longest matching suffix wins. The one grammar of LoRA keys: `labkit.inspect` reads a
# header with it, `lab.loras` loads tensors with it.
PARTS = {
    ".lora_down.weight": Part("down", "lora", "kohya"), ".lora_up.weight": Part("up", "lora", "kohya"),
    ".lora_mid.weight": Part("mid", "lora", "locon"),  # LoCon's Tucker core of a conv layer
    ".lora_A.weight": Part("down", "lora", "peft"), ".lora_B.weight": Part("up", "lora", "peft"),
    ".lora.down.weight": Part("down", "lora", "diffusers"), ".lora.up.weight": Part("up", "lora", "diffusers"),
    "_lora.down.weight": Part("down", "lora", "diffusers"),  # diffusers attention processors: `to_q_lora.down`
    "_lora.up.weight": Part("up", "lora", "diffusers"),
    ".hada_w1_a": Part("w1a", "loha", "loha"), ".hada_w1_b": Part("w1b", "loha", "loha"),
    ".hada_w2_a": Part("w2a", "loha", "loha"), ".hada_w2_b": Part("w2b", "loha", "loha"),
    ".hada_t1": Part("t1", "loha", "loha"), ".hada_t2": Part("t2", "loha", "loha"),
    ".lokr_w1": Part("k1", "lokr", "lokr"), ".lokr_w1_a": Part("k1a", "lokr", "lokr"),
    ".lokr_w1_b": Part("k1b", "lokr", "lokr"), ".lokr_w2": Part("k2", "lokr", "lokr"),
    ".lokr_w2_a": Part("k2a", "lokr", "lokr"), ".lokr_w2_b": Part("k2b", "lokr", "lokr"),
    ".lokr_t2": Part("kt2", "lokr", "lokr"),
    ".alpha": Part("alpha", None, None),
    ".dora_scale": Part("dora_scale", None, None),  # kohya / LyCORIS DoRA magnitude
    ".lora_magnitude_vector": Part("magnitude", None, None),  # PEFT DoRA magnitude
    ".lora_magnitude_vector.weight": Part("magnitude", None, None),
}
SUFFIXES_LONGEST_FIRST = tuple(sorted(PARTS, key=len, reverse=True))
EXTRA_PARTS = tuple(dict.fromkeys(p.name for p in PARTS.values() if p.kind is None))  # no module by themselves
KIND_OF_PART = {p.name: p.kind for p in PARTS.values() if p.kind is not None}
# formats a file may be told as, most specific first: one LoKr or LoHa module makes a LyCORIS file
FORMAT_PRIORITY = ("lokr", "loha", "locon", "kohya", "peft", "diffusers")
# kind -> is a module of that kind complete, given its set of part names
COMPLETE = {
    "lora": lambda p: {"down", "up"} <= p,
    "loha": lambda p: {"w1a", "w1b", "w2a", "w2b"} <= p and ("t1" in p) == ("t2" in p),
    "lokr": lambda p: ("k1" in p or {"k1a", "k1b"} <= p) and ("k2" in p or {"k2a", "k2b"} <= p),
}
# kind -> the part whose first dimension is the rank (alpha / rank scales the delta); None: no rank
RANK_PART = {"lora": ("down",), "loha": ("w1b",), "lokr": ("k2b", "k1b")}


class Prefix(NamedTuple):
    """A module-name prefix: which text encoder or UNet `slot` it names ("te" is the only text encoder of an
    SD 1.x/2.x file, "te1"/"te2" SDXL's two), and the component it patches in each pipeline layout."""

    text: str
    slot: str
    components: dict  # layout -> component


_UNET = {"sd": "unet", "xl": "unet", "refiner": "unet"}
_TE2 = {"xl": "text_encoder_2", "refiner": "text_encoder_2"}
# a prefix ending in "." is the dotted (diffusers / PEFT) spelling, the others kohya's flattened one
PREFIXES = (
    Prefix("lora_unet_", "unet", _UNET),
    Prefix("lora_te1_", "te1", {"xl": "text_encoder"}),
    Prefix("lora_te2_", "te2", _TE2),
    Prefix("lora_te_", "te", {"sd": "text_encoder"}),
    Prefix("unet.", "unet", _UNET),
    Prefix("text_encoder_2.", "te2", _TE2),
    Prefix("text_encoder.", "te", {"sd": "text_encoder", "xl": "text_encoder"}),
)
# dotted-name spellings of older diffusers files -> today's module paths
DOTTED_RENAMES = ((".processor.", "."), (".to_out_lora", ".to_out.0"))
TEXT_MODEL = "text_model."  # kohya keeps it in text-encoder names; transformers >= 5.6 dropped it in CLIPTextModel

METADATA_KEY = "lora_adapter_metadata"  # diffusers: JSON of each component's LoraConfig, keys "unet.r" ...


def flat(name: str) -> str:
    """kohya's spelling of a module path: 'down_blocks.0.proj_in' -> 'down_blocks_0_proj_in'."""
    return name.replace(".", "_")


def text_path(path: str) -> str:
    """A text-encoder module path with `text_model.` in front, whether or not the model nests it."""
    return TEXT_MODEL + path.removeprefix(TEXT_MODEL)


def split_suffix(key: str):
    """'lora_unet_x.lora_down.weight' -> ('lora_unet_x', '.lora_down.weight'); None for a key no format uses."""
    for suffix in SUFFIXES_LONGEST_FIRST:
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix
    return None


def split_key(key: str):
    """'lora_unet_x.lora_down.weight' -> ('lora_unet_x', 'down'); None for a key no format uses."""
    split = split_suffix(key)
    return None if split is None else (split[0], PARTS[split[1]].name)


def group(keys) -> tuple[dict, list]:
    """({module: {part: key}}, [keys of no known format])."""
    modules, unknown = {}, []
    for key in keys:
        split = split_key(key)
        if split is None:
            unknown.append(key)
        else:
            modules.setdefault(split[0], {})[split[1]] = key
    return modules, unknown


def kind(parts) -> str | None:
    """'lora', 'loha' or 'lokr' when the parts make one complete module of that kind, else None."""
    kinds = {KIND_OF_PART[p] for p in parts if p in KIND_OF_PART}
    if len(kinds) != 1:
        return None
    found = kinds.pop()
    return found if COMPLETE[found](set(parts)) else None


def prefix_of(module: str):
    """The `Prefix` a file's module name starts with, or None."""
    return next((prefix for prefix in PREFIXES if module.startswith(prefix.text)), None)


def route(module: str, layout: str):
    """(component, flat name) of a file's module name, or None when no component of `layout` is named."""
    prefix = prefix_of(module)
    component = prefix.components.get(layout) if prefix else None
    if component is None:
        return None
    rest = module[len(prefix.text):]
    return component, _dotted(rest, component) if prefix.text.endswith(".") else rest


def kohya_prefix(layout: str, component: str) -> str:
    """The prefix kohya's scripts write for `component` in `layout` ("lora_te1_" for SDXL's first encoder)."""
    return next(p.text for p in PREFIXES if not p.text.endswith(".") and p.components.get(layout) == component)


def _dotted(path: str, component: str) -> str:
    for old, new in DOTTED_RENAMES:
        path = path.replace(old, new)
    return flat(path if component == "unet" else text_path(path))


def rank(kind_: str, shapes: dict) -> int | None:
    """The rank alpha is divided by: the first dimension of the kind's rank part (LoKr: a decomposed factor)."""
    part = next((p for p in RANK_PART[kind_] if p in shapes), None)
    return shapes[part][0] if part else None


def scale(kind_: str, shapes: dict, alpha: float | None, rslora: bool = False) -> float:
    """The factor a module's product is multiplied by: alpha / rank (kohya, LyCORIS, PEFT's lora_alpha / r;
    alpha / sqrt(rank) with rsLoRA), or 1 without an alpha. A LoKr made of two full factors has no rank: 1."""
    r = rank(kind_, shapes)
    if r is None or alpha is None:
        return 1.0
    return alpha / (math.sqrt(r) if rslora else r)


def peft_configs(metadata: dict) -> dict:
    """{component: {"lora_alpha", "r", "use_rslora", "alpha_pattern"}} from diffusers' `lora_adapter_metadata`."""
    raw = metadata.get(METADATA_KEY)
    if not raw:
        return {}
    try:
        packed = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    out = {}
    for key, value in packed.items():
        component, _, field = key.partition(".")
        out.setdefault(component, {})[field] = value
    return out


def peft_alpha(config: dict, module_path: str):
    """PEFT's alpha for one module: the first `alpha_pattern` entry naming it, else the config's lora_alpha."""
    for pattern, alpha in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module_path):
            return alpha
    return config.get("lora_alpha")
