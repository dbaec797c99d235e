"""Hires fix in infotext, both ways, as A1111 1.6-1.10 writes and reads it (modules/processing.py,
infotext_utils.py); "Hires CFG Scale" is Forge's. Pre-1.0 infotext ("First pass size") is read as A1111's
restore_old_hires_fix_params reads it."""

from .infotext import number, split_title, title
from .recipe import to_float, to_int

# what turns hires fix on when "Denoising strength" is present too (A1111's paste rule)
ENABLING = ("Hires upscale", "Hires upscaler", "Hires resize")
# infotext key -> (Params field(s), converter), read after the sampler fields
HIRES_FIELDS = {
    "Hires upscale": ("hires_scale", to_float),
    "Hires steps": ("hires_steps", to_int),
    "Hires upscaler": ("hires_upscaler", str),
    "Hires schedule type": ("hires_schedule", str),
    "Hires prompt": ("hires_prompt", str),
    "Hires negative prompt": ("hires_negative_prompt", str),
    "Hires CFG Scale": ("hires_cfg", to_float),
}
SAME = {"Use same sampler": "", "Use same scheduler": "", "Use same checkpoint": ""}  # A1111's paste defaults


def pop_hires(fields: dict, values: dict, model: dict, notes: list, resolve_sampler) -> None:
    """Move the hires fields out of `fields` into `values` (Params fields) and `model` (the second-pass
    checkpoint); `resolve_sampler(name, schedule)` reads a sampler name as the infotext's version wrote it."""
    _old_first_pass_size(fields, notes)
    if "Denoising strength" in fields and any(key in fields for key in ENABLING):
        values["hires"] = True
    if "Hires resize" in fields:
        raw = fields.pop("Hires resize")
        try:
            x, y = (int(n) for n in str(raw).lower().split("x"))
            values["hires_resize_x"], values["hires_resize_y"] = x, y
        except ValueError:
            fields["Hires resize"] = raw  # left for the unmapped note
    sampler = SAME.get(fields.get("Hires sampler"), fields.get("Hires sampler"))
    fields.pop("Hires sampler", None)
    if sampler:
        from ..samplers import split_combined

        name, schedule = resolve_sampler(sampler, fields.get("Hires schedule type"))
        values["hires_sampler"] = name
        combined = split_combined(sampler)[1] is not None  # a pre-1.9 name carrying its schedule
        if combined and "Hires schedule type" not in fields and schedule != values.get("schedule"):
            values["hires_schedule"] = schedule
    for key in ("Hires schedule type",):
        if SAME.get(fields.get(key)) == "":
            fields.pop(key)
    checkpoint = fields.pop("Hires checkpoint", None)
    if checkpoint and checkpoint not in SAME:
        name, file_hash = split_title(checkpoint)
        values["hires_checkpoint"] = name
        model["hires_checkpoint"] = name
        if file_hash:
            model["hires_checkpoint_hash"] = file_hash
        notes.append(f"Hires checkpoint {checkpoint}: its second pass ran on that model; open it and pass "
                     f"txt2img(..., hires_lab=...).")
    if "Hires refiner" in fields:
        notes.append(f"Hires refiner: {fields['Hires refiner']} kept in unmapped: labkit's refiner takes over in "
                     f"the second pass (A1111's default, 'second pass').")


def _old_first_pass_size(fields: dict, notes: list) -> None:
    """Before A1111 1.0, Size was the final size and "First pass size" the first pass's."""
    first = fields.pop("First pass size", None)
    if first is None:
        return
    if "Size" in fields:
        fields["Hires resize"] = fields["Size"]
    if str(first) not in ("0x0", ""):
        fields["Size"] = first
    fields.setdefault("Hires upscaler", "Latent")
    notes.append("First pass size (A1111 before 1.0): read as the first pass's Size, the old Size as Hires resize.")


def hires_infotext(p, model: dict) -> dict:
    """The hires fields A1111 writes for Params `p` (empty when hires fix is off), in A1111's order."""
    if not p.hires:
        return {}
    checkpoint = p.hires_checkpoint or None
    fields = {
        "Hires checkpoint": title(checkpoint, model.get("hires_checkpoint_hash")) if checkpoint else None,
        "Hires sampler": p.hires_sampler if p.hires_sampler not in ("", p.sampler) else None,
        "Hires prompt": p.hires_prompt if p.hires_prompt not in ("", p.prompt) else None,
        "Hires negative prompt": (p.hires_negative_prompt if p.hires_negative_prompt not in ("", p.negative_prompt)
                                  else None),
        "Hires CFG Scale": number(p.hires_cfg) if p.hires_cfg is not None and p.hires_cfg != p.cfg else None,
        "Hires schedule type": p.hires_schedule if p.hires_schedule not in ("", p.schedule) else None,
    }
    if p.hires_resize_x or p.hires_resize_y:
        fields["Hires resize"] = f"{p.hires_resize_x}x{p.hires_resize_y}"
    else:
        fields["Hires upscale"] = number(p.hires_scale)
    fields["Hires steps"] = p.hires_steps or None
    fields["Hires upscaler"] = p.hires_upscaler
    return {key: value for key, value in fields.items() if value is not None}
