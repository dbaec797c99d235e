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

# key suffix -> part name; the longest matching suffix wins
PARTS = {
    ".lora_down.weight": "down", ".lora_up.weight": "up", ".lora_mid.weight": "mid",  # kohya, LoCon
    ".lora_A.weight": "down", ".lora_B.weight": "up",  # PEFT / diffusers
    ".lora.down.weight": "down", ".lora.up.weight": "up",  # old diffusers
    "_lora.down.weight": "down", "_lora.up.weight": "up",  # diffusers attention processors: `to_q_lora.down`
    ".hada_w1_a": "w1a", ".hada_w1_b": "w1b", ".hada_w2_a": "w2a", ".hada_w2_b": "w2b",  # LoHa
    ".hada_t1": "t1", ".hada_t2": "t2",
    ".lokr_w1": "k1", ".lokr_w1_a": "k1a", ".lokr_w1_b": "k1b",  # LoKr
    ".lokr_w2": "k2", ".lokr_w2_a": "k2a", ".lokr_w2_b": "k2b", ".lokr_t2": "kt2",
    ".alpha": "alpha",
    ".dora_scale": "dora_scale",  # kohya / LyCORIS DoRA magnitude
    ".lora_magnitude_vector": "magnitude", ".lora_magnitude_vector.weight": "magnitude",  # PEFT DoRA magnitude
}
SUFFIXES_LONGEST_FIRST = tuple(sorted(PARTS, key=len, reverse=True))
EXTRA_PARTS = ("alpha", "dora_scale", "magnitude")  # parts that do not make a module by themselves

# part -> the kind of module it belongs to
KIND_OF_PART = {"down": "lora", "up": "lora", "mid": "lora",
                "w1a": "loha", "w1b": "loha", "w2a": "loha", "w2b": "loha", "t1": "loha", "t2": "loha",
                "k1": "lokr", "k1a": "lokr", "k1b": "lokr", "k2": "lokr", "k2a": "lokr", "k2b": "lokr", "kt2": "lokr"}
# kind -> is a module of that kind complete, given its set of part names
COMPLETE = {
    "lora": lambda p: {"down", "up"} <= p,
    "loha": lambda p: {"w1a", "w1b", "w2a", "w2b"} <= p and ("t1" in p) == ("t2" in p),
    "lokr": lambda p: ("k1" in p or {"k1a", "k1b"} <= p) and ("k2" in p or {"k2a", "k2b"} <= p),
}
# kind -> the part whose first dimension is the rank (alpha / rank scales the delta); None: no rank
RANK_PART = {"lora": ("down",), "loha": ("w1b",), "lokr": ("k2b", "k1b")}

# layout -> (module-name prefix, component, spelling); a prefix with a trailing "." is the dotted spelling
ROUTES = {
    "sd": (("lora_unet_", "unet"), ("lora_te_", "text_encoder"),
           ("unet.", "unet"), ("text_encoder.", "text_encoder")),
    "xl": (("lora_unet_", "unet"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"),
           ("unet.", "unet"), ("text_encoder.", "text_encoder"), ("text_encoder_2.", "text_encoder_2")),
    "refiner": (("lora_unet_", "unet"), ("lora_te2_", "text_encoder_2"),
                ("unet.", "unet"), ("text_encoder_2.", "text_encoder_2")),
}
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


def split_key(key: str):
    """'lora_unet_x.lora_down.weight' -> ('lora_unet_x', 'down'); None for a key no format uses."""
    for suffix in SUFFIXES_LONGEST_FIRST:
        if key.endswith(suffix):
            return key[: -len(suffix)], PARTS[suffix]
    return None


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


def route(module: str, layout: str):
    """(component, flat name) of a file's module name, or None when no component of `layout` is named."""
    for prefix, component in ROUTES[layout]:
        if module.startswith(prefix):
            rest = module[len(prefix):]
            if prefix.endswith("."):
                rest = _dotted(rest, component)
            return component, rest
    return None


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
