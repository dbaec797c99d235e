"""A1111's infotext grammar, both ways: the parameter line and its quoting, whole numbers, "name [hash]" titles,
`<lora:name:weight>` tags and "name: value" lists (`Lora hashes`). Pure functions of text."""

import json
import re

# A1111's own pattern for one `key: value` pair of the parameter line (modules/infotext_utils.py)
PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
PARAMETER_LINE_MIN = 3  # the last line is the parameter line when it has at least this many pairs
NEGATIVE_PREFIX = "Negative prompt:"
TITLE_RE = re.compile(r"^(.*?)\s*\[([0-9a-fA-F]+)\]$")  # "sd_xl_refiner_1.0 [7440042bbd]"
LORA_TAG = re.compile(r"<(?:lora|lyco):([^:>]+)(?::([^:>]*))?[^>]*>")


def quote(value) -> str:
    """A1111's quoting: values containing ',', ':' or a newline are written as JSON strings."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def unquote(text: str) -> str:
    """A1111's unquoting: a value in double quotes is a JSON string; anything unreadable stays as written."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def number(x) -> str:
    """7.0 -> "7", 7.5 -> "7.5" (A1111 writes whole numbers without a decimal point)."""
    return str(int(x)) if float(x).is_integer() else str(x)


def join_infotext(prompt: str, negative: str, fields: dict) -> str:
    """A1111's `parameters` text: the prompt, "Negative prompt: ..." (when not empty), then the `key: value`
    fields in the order given, values quoted."""
    lines = [prompt]
    if negative:
        lines.append(f"{NEGATIVE_PREFIX} {negative}")
    lines.append(", ".join(f"{key}: {quote(value)}" for key, value in fields.items()))
    return "\n".join(lines).strip()


def split_infotext(text: str) -> tuple[str, str, dict]:
    """(prompt, negative prompt, {key: value}) read as A1111 does; no fields when the last line is not a
    parameter line (fewer than 3 `key: value` pairs)."""
    *lines, last = text.strip().split("\n")
    if len(PARAM_RE.findall(last)) < PARAMETER_LINE_MIN:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX):].strip()
        (negative if in_negative else prompt).append(line)
    fields = {key.strip(): unquote(value.strip()) for key, value in PARAM_RE.findall(last)}
    return "\n".join(prompt), "\n".join(negative), fields


def title(name, file_hash) -> str:
    """A1111's checkpoint title: "name [hash]"."""
    return f"{name} [{file_hash}]" if file_hash else str(name)


def split_title(text: str) -> tuple[str, str | None]:
    """"sd_xl_refiner_1.0 [7440042bbd]" -> ("sd_xl_refiner_1.0", "7440042bbd")."""
    match = TITLE_RE.match(text)
    return (match.group(1), match.group(2)) if match else (text, None)


def name_values(text: str | None) -> dict:
    """"a: 1, b: 2" -> {"a": "1", "b": "2"}."""
    pairs = {}
    for item in (text or "").split(","):
        name, sep, value = item.rpartition(":")
        if sep and name.strip():
            pairs[name.strip()] = value.strip()
    return pairs


def lora_tag(lora: dict) -> str:
    """`<lora:name:weight>`, or `<lora:name:te_weight:unet_weight>` when the text encoders take another weight
    (ComfyUI's strength_clip): A1111's prompt syntax that applies a LoRA in labkit too."""
    weight = lora.get("weight")
    unet = number(weight) if weight is not None else "1"
    te = lora.get("te_weight")
    return f"<lora:{lora.get('name')}:{unet}>" if te is None else f"<lora:{lora.get('name')}:{number(te)}:{unet}>"
