"""Reading InvokeAI's `invokeai_metadata` (a flat JSON object: positive_prompt, seed, scheduler, model{...})."""

from .recipe import (Recipe, as_text, float_or_none, json_object, make_params, map_fields, require_core, to_float,
                     to_int, to_text)

INVOKE_NOISE = {"cpu": "a1111-cpu", "cuda": "a1111-gpu"}
INVOKE_MODES = ("inpaint", "outpaint", "img2img")  # found in generation_mode ("sdxl_img2img"...); else txt2img


def clip_skip_from_zero(value) -> int:
    """InvokeAI counts skipped layers from 0; A1111 from 1."""
    return to_int(value) + 1


INVOKE_FIELDS = {
    "positive_prompt": ("prompt", to_text),
    "negative_prompt": ("negative_prompt", to_text),
    "seed": ("seed", to_int),
    "steps": ("steps", to_int),
    "cfg_scale": ("cfg", to_float),
    "width": ("width", to_int),
    "height": ("height", to_int),
    "strength": ("strength", to_float),
    "clip_skip": ("clip_skip", clip_skip_from_zero),
    "refiner_start": ("switch_at", to_float),
    "rand_device": ("noise", INVOKE_NOISE.__getitem__),
}
# InvokeAI scheduler -> A1111 (sampler, schedule); "_k" means Karras sigmas. Not listed (no A1111 equivalent, kept
# as written): ddpm, deis, pndm, dpmpp_2s, dpmpp_3m (not SDE), tcd, and their _k forms.
INVOKE_SCHEDULERS = {
    "euler": ("Euler", "Uniform"), "euler_k": ("Euler", "Karras"), "euler_a": ("Euler a", "Uniform"),
    "heun": ("Heun", "Uniform"), "heun_k": ("Heun", "Karras"), "lms": ("LMS", "Uniform"), "lms_k": ("LMS", "Karras"),
    "kdpm_2": ("DPM2", "Uniform"), "kdpm_2_k": ("DPM2", "Karras"),
    "kdpm_2_a": ("DPM2 a", "Uniform"), "kdpm_2_a_k": ("DPM2 a", "Karras"),
    "dpmpp_2m": ("DPM++ 2M", "Uniform"), "dpmpp_2m_k": ("DPM++ 2M", "Karras"),
    "dpmpp_2m_sde": ("DPM++ 2M SDE", "Uniform"), "dpmpp_2m_sde_k": ("DPM++ 2M SDE", "Karras"),
    "dpmpp_sde": ("DPM++ SDE", "Uniform"), "dpmpp_sde_k": ("DPM++ SDE", "Karras"),
    "ddim": ("DDIM", "Automatic"), "unipc": ("UniPC", "Uniform"), "lcm": ("LCM", "Automatic"),
}


def is_invokeai_metadata(data: dict) -> bool:
    """Whether a JSON object is InvokeAI's metadata."""
    return "positive_prompt" in data or "generation_mode" in data


def _invoke_model(value) -> dict:
    """{name, hash, base} from InvokeAI's model record (v4+: name/hash/base; v3: model_name/base_model)."""
    if not isinstance(value, dict):
        return {}
    model = {"name": value.get("name") or value.get("model_name"), "hash": value.get("hash"),
             "base": value.get("base") or value.get("base_model")}
    return {key: v for key, v in model.items() if isinstance(v, str)}


def _invoke_loras(items) -> list[dict]:
    loras = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            record = _invoke_model(item.get("model") or item.get("lora"))
            loras.append({"name": record.get("name"), "weight": float_or_none(item.get("weight")),
                          "hash": record.get("hash")})
    return loras


def parse_invokeai(data) -> Recipe:
    """A Recipe from InvokeAI's `invokeai_metadata` JSON."""
    raw = json_object(data, "InvokeAI metadata")
    rest, notes, unmapped = dict(raw), [], {}
    values = {"noise": "a1111-cpu"}
    scheduler = rest.pop("scheduler", None)
    if isinstance(scheduler, str) and scheduler in INVOKE_SCHEDULERS:
        values["sampler"], values["schedule"] = INVOKE_SCHEDULERS[scheduler]
        notes.append("InvokeAI runs diffusers' schedulers with the model's own timestep spacing; labkit spaces them "
                     "as A1111 does, so expect close but not identical images.")
    elif scheduler is not None:
        values["sampler"] = as_text(scheduler)
        notes.append(f"InvokeAI scheduler {scheduler!r} kept as written: it has no A1111 equivalent.")
    model = _invoke_model(rest.pop("model", None))
    values["model"] = model.get("name", "")
    refiner = _invoke_model(rest.pop("refiner_model", None))
    if refiner.get("name"):
        model["refiner"] = refiner["name"]
        notes.append(f"Made with the refiner {refiner['name']}: pass refiner=labkit.open(...) to txt2img.")
    loras = _invoke_loras(rest.pop("loras", None))
    version, generation = rest.pop("app_version", None), rest.pop("generation_mode", None)
    mode = next((m for m in INVOKE_MODES if m in str(generation or "")), "txt2img")
    map_fields(rest, INVOKE_FIELDS, values, unmapped, notes)
    require_core(values, "InvokeAI metadata")
    unmapped.update({key: as_text(value) for key, value in rest.items() if key not in unmapped})
    return Recipe(params=make_params(values, unmapped, notes), tool="InvokeAI", unmapped=unmapped, raw=raw, notes=notes,
                  loras=loras, version=version if isinstance(version, str) else None, model=model,
                  mode="inpaint" if mode == "outpaint" else mode)
