"""A Ctrl-C (KeyboardInterrupt) at any stage of a call leaves the Lab exactly as it was: the same weights, dtypes,
schedulers and LoRA state, and the next call draws the same picture as a call made before the interrupt."""

import numpy as np
import pytest
import torch

from tests.helpers.labs import make_lab
from tests.helpers.lora_files import kohya_modules, lora_parts, write

FAST = {"steps": 4, "sampler": "Euler", "seed": 3}


def state(lab) -> dict:
    """Everything a generation may touch, copied."""
    weights = {f"{name}.{key}": value.detach().clone() for name in ("unet", "vae", "text_encoder")
               for key, value in lab.components[name].state_dict().items()}
    return {"weights": weights, "dtypes": {n: lab.components[n].dtype for n in ("unet", "vae", "text_encoder")},
            "schedulers": {mode: pipe.scheduler for mode, pipe in lab_pipes(lab).items()},
            "loras": lab.loras.state(), "active": lab.loras.active, "backups": lab.loras.backups}


def lab_pipes(lab) -> dict:
    """The pipelines a Lab has built, by mode (built on demand: a mode not built yet has none)."""
    return {mode: lab.pipeline(mode) for mode in ("txt2img", "img2img", "inpaint")}


def same(before: dict, after: dict) -> bool:
    return (before["weights"].keys() == after["weights"].keys()
            and all(torch.equal(before["weights"][k], after["weights"][k]) for k in before["weights"])
            and before["dtypes"] == after["dtypes"] and before["active"] == after["active"]
            and before["backups"] == after["backups"] and before["loras"] == after["loras"]
            and all(before["schedulers"][m] is after["schedulers"][m] for m in before["schedulers"]))


@pytest.fixture
def lab(tmp_path):
    lab = make_lab("toy", seed=7)
    write(tmp_path / "style.safetensors", kohya_modules(lab, "kohya"), lora_parts)
    lab.loras.search_paths = [tmp_path]
    lab.loras.load(tmp_path / "style.safetensors", weight=0.6)
    lab.txt2img("warm up", **FAST)  # the LoRA folded, the pipelines' schedulers set
    return lab


def interrupted(lab, call, monkeypatch=None, breaking=()):
    """Patch in the `breaking` (object, name, replacement) triples, run `call`, expect a KeyboardInterrupt and
    check nothing changed; then, unpatched, a normal run repeats the picture of a run made before."""
    expected = lab.txt2img("a red circle <lora:style:1>", **FAST).image
    before = state(lab)
    for obj, name, value in breaking:
        monkeypatch.setattr(obj, name, value)
    with pytest.raises(KeyboardInterrupt):
        call()
    monkeypatch.undo()
    assert same(before, state(lab))
    assert np.array_equal(np.asarray(lab.txt2img("a red circle <lora:style:1>", **FAST).image), np.asarray(expected))


def test_interrupt_while_folding_a_lora(lab, monkeypatch):
    from labkit.lora import deltas

    calls, add_to = [], deltas.Patch.add_to

    def flaky(patch, w, w0, weight):
        calls.append(1)
        if len(calls) == 3:  # half-way through the weights (a float32 weight already holds its original then)
            raise KeyboardInterrupt
        return add_to(patch, w, w0, weight)

    interrupted(lab, lambda: lab.txt2img("a red circle <lora:style:0.3>", **FAST), monkeypatch,
                [(deltas.Patch, "add_to", flaky)])
    assert len(calls) > 3  # interrupted at the third weight, then every touched weight refolded as it was


def test_interrupt_while_the_scheduler_is_swapped_in(lab, monkeypatch):
    from labkit.sampling import fit

    def broken(scheduler, plan):
        raise KeyboardInterrupt

    interrupted(lab, lambda: lab.txt2img("a blue square", sampler="DPM++ 2M", steps=4, seed=1), monkeypatch,
                [(fit, "install", broken)])


def test_interrupt_between_two_denoising_steps(lab, monkeypatch):
    def stop(step, total, latents):
        if step == 1:
            raise KeyboardInterrupt

    interrupted(lab, lambda: lab.txt2img("a green star <lora:style:0.2>", on_step=stop, **FAST), monkeypatch)


def test_interrupt_in_the_float32_retry_of_a_half_precision_vae(lab, monkeypatch):
    vae = lab.components["vae"].to(torch.float16)
    original, calls = vae.decode, []

    def decode(z, *args, **kwargs):
        calls.append(z.dtype)
        if len(calls) == 1:  # the half-precision decode overflows, as SDXL's VAE does
            out = original(z, *args, **kwargs)
            out.sample.fill_(float("nan"))
            return out
        raise KeyboardInterrupt  # Ctrl-C during the float32 retry

    interrupted(lab, lambda: lab.txt2img("a red circle", **FAST), monkeypatch, [(vae, "decode", decode)])
    assert calls == [torch.float16, torch.float32] and vae.dtype == torch.float16
