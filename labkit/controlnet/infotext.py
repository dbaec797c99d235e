"""A1111's `ControlNet N` infotext fields, both ways (pure functions of text): the extension's current format,
`ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: Crop and
Resize, Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 1.0, Pixel
Perfect: False, Control Mode: Balanced"`. Older forms (`ControlNet Enabled`, `ControlNet 0 Enabled`, the lower-case
`preprocessor: ...` line) are recognised and left to `unmapped`, as the extension itself no longer reads them."""

import re

from ..errors import BadInput
from .units import ControlUnit

# the unit fields the extension writes, in its order, with their infotext names
FIELDS = (("module", "Module"), ("model", "Model"), ("weight", "Weight"), ("resize_mode", "Resize Mode"),
          ("processor_res", "Processor Res"), ("threshold_a", "Threshold A"), ("threshold_b", "Threshold B"),
          ("guidance_start", "Guidance Start"), ("guidance_end", "Guidance End"),
          ("pixel_perfect", "Pixel Perfect"), ("control_mode", "Control Mode"))
NAMES = {label: name for name, label in FIELDS}
HIDDEN_SLIDER = 0.5  # what the extension writes for a slider its module does not have
UNIT_KEY = re.compile(r"^ControlNet (\d+)$")
LEGACY_KEY = re.compile(r"^ControlNet(-\d+)?( \d+)? ?(Enabled|Module|Model|Weight|Guidance Strength|Preprocessor|"
                        r"Starting Step|Ending Step|Resize Mode|Pixel Perfect|Control Mode|Preprocessor Parameters)$")
RESIZE_ALIASES = {"Inner Fit (Scale to Fit)": "Crop and Resize", "Scale to Fit (Inner Fit)": "Crop and Resize",
                  "Outer Fit (Shrink to Fit)": "Resize and Fill", "Envelope (Outer Fit)": "Resize and Fill"}


def unit_text(unit: ControlUnit) -> str:
    """The value of a unit's `ControlNet N` field (unquoted; the infotext writer quotes it)."""
    values = {"threshold_a": HIDDEN_SLIDER, "threshold_b": HIDDEN_SLIDER}
    values.update({name: getattr(unit, name) for name, _ in FIELDS if getattr(unit, name) is not None})
    shown = {name: float(value) if name in ("weight", "threshold_a", "threshold_b", "guidance_start",
                                             "guidance_end") else value for name, value in values.items()}
    return ", ".join(f"{label}: {shown[name]}" for name, label in FIELDS)


def unit_fields(units) -> dict:
    """{"ControlNet 0": text, ...} for the enabled units, numbered as the extension numbers them."""
    return {f"ControlNet {k}": unit_text(unit) for k, unit in enumerate(u for u in units if u.enabled)}


def _value(text: str):
    """The extension's parse_value: bool, then int, then float, else the text."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_unit(text: str, notes: list, key: str, unmapped: dict) -> ControlUnit | None:
    """A ControlUnit from one `ControlNet N` value; None (with a note) when it cannot be read."""
    from .preprocess import PREPROCESSORS

    values, ignored = {}, []
    for item in text.split(","):
        label, sep, value = item.strip().partition(": ")
        if not sep:
            notes.append(f"{key}: {item.strip()!r} is not a 'Name: value' pair of the extension's format; the unit "
                         f"is kept in unmapped.")
            return None
        if label in NAMES:
            values[NAMES[label]] = _value(value.strip())
        else:
            ignored.append(label)
    if ignored:  # e.g. "Low Vram", "Hr Option", "Save Detected Map" of the 1.1.4xx format
        notes.append(f"{key}: {', '.join(ignored)} read and not used (the extension does not restore them either).")
    values["model"] = str(values.get("model", ""))
    values["resize_mode"] = RESIZE_ALIASES.get(values.get("resize_mode"), values.get("resize_mode", "Crop and Resize"))
    module = str(values.get("module", "none"))
    if module not in PREPROCESSORS:
        notes.append(f"{key}: the preprocessor {module!r} needs a model labkit does not run; the unit reads as "
                     f"module 'none': give it the preprocessed map (the 'detected map' A1111 can save) as its image.")
        values["module"] = "none"
        unmapped[f"{key} module"] = module
    slider = PREPROCESSORS[values["module"]]
    for name, default in (("threshold_a", slider.a), ("threshold_b", slider.b)):
        values[name] = None if default is None else float(values.get(name, default[1]))
    try:
        return ControlUnit(**{k: v for k, v in values.items()})
    except BadInput as error:
        notes.append(f"{key}: {error} The unit is kept in unmapped.")
        return None


def pop_units(fields: dict, unmapped: dict, notes: list) -> tuple:
    """Take the `ControlNet N` fields out of an infotext's fields: the units read (in N's order); older forms and
    unreadable units go to `unmapped`, with a note."""
    units = []
    for key in sorted((k for k in fields if UNIT_KEY.match(k)), key=lambda k: int(UNIT_KEY.match(k).group(1))):
        text = fields.pop(key)
        unit = parse_unit(text, notes, key, unmapped)
        if unit is None:
            unmapped[key] = text
        else:
            units.append(unit)
    legacy = [k for k in fields if LEGACY_KEY.match(k)]
    for key in legacy:
        unmapped[key] = fields.pop(key)
    if legacy:
        notes.append(f"ControlNet fields in an older format of the extension ({', '.join(legacy)}), kept in "
                     f"unmapped: the extension itself no longer reads them.")
    return tuple(units)
