"""Hires fix as A1111 runs it: the target size and center cut, the second pass's step rule (exactly hires_steps
run, the last ones of a schedule int(steps / denoise) long) and noise rule (fresh noise from the same seeds at the
new size), latent / pixel / model upscalers, LoRA tags per pass, the refiner in the second pass, previews and
interrupt over both passes, and the Result (timings per pass, the first pass's pictures, the recipe)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import labkit
from labkit.hires import Target, target
from labkit.sampling.plan import plan
from labkit.sampling.sigmas import training_levels

PROMPT = "a red circle on a white background"
FAST = dict(steps=6, sampler="Euler", seed=5, cfg=4.0)


@pytest.mark.parametrize("size, fields, want", [
    ((512, 768), dict(hires_scale=2.0), Target(1024, 1536)),
    ((512, 768), dict(hires_scale=1.5), Target(768, 1152)),
    ((520, 512), dict(hires_scale=1.5), Target(780, 768)),  # int() truncation; the pass draws 776 px
    ((512, 768), dict(hires_resize_x=1024), Target(1024, 1536)),
    ((512, 768), dict(hires_resize_y=1024), Target(682, 1024)),
    ((512, 768), dict(hires_resize_x=1024, hires_resize_y=1024), Target(1024, 1536, 0, 64)),  # A1111's example
    ((768, 512), dict(hires_resize_x=1024, hires_resize_y=1024), Target(1536, 1024, 64, 0)),
])
def test_target_size_and_cut_follow_a1111(size, fields, want):
    p = labkit.Params(hires=True, **fields)
    assert target(*size, p) == want


def test_a_box_is_covered_and_its_center_cut_out():
    found = target(512, 768, labkit.Params(hires=True, hires_resize_x=1024, hires_resize_y=1024))
    assert (found.out_width, found.out_height) == (1024, 1024)
    from labkit.hires import cut

    rows = torch.arange(192.0).reshape(1, 1, 192, 1).expand(1, 1, 192, 128)  # 1536 / 8 rows
    kept = cut(rows, found)
    assert kept.shape[2:] == (128, 128) and kept[0, 0, 0, 0] == 32 and kept[0, 0, -1, 0] == 159  # 32 cut each side


@pytest.mark.parametrize("tool, sampler", [("a1111", "Euler"), ("a1111", "DDIM"), ("comfy", "Euler")])
@pytest.mark.parametrize("steps, denoise", [(10, 0.7), (6, 0.5), (4, 1.0)])
def test_the_second_pass_runs_exactly_its_steps_from_a_longer_schedule(sd_lab, tool, sampler, steps, denoise):
    train = training_levels(sd_lab.scheduler_config, tool)
    run = plan(tool, sampler, "Karras", steps, train, img2img=True, strength=denoise, fixed_steps=True)
    # A1111's own DDIM walks timesteps[:t_enc] with t_enc = steps - 1 and calls the UNet between them: steps - 2
    # (sd_samplers_timesteps.sample_img2img); its k-diffusion samplers and ComfyUI run exactly `steps`
    assert run.steps == (steps - 2 if sampler == "DDIM" else steps)
    if sampler == "Euler":  # the last steps + 1 sigmas of a schedule int(steps / min(d, 0.999)) long
        total = int(steps / min(denoise, 0.999)) if tool == "a1111" else (int(steps / denoise) if denoise <= 0.9999
                                                                            else steps)
        whole = plan(tool, sampler, "Karras", total, train)
        assert torch.allclose(run.sigmas, whole.sigmas[-(steps + 1):])


def unet_calls(lab):
    """(list of each UNet call's sample, the hook handle)."""
    seen = []
    handle = lab.components["unet"].register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args[0] if args else kwargs["sample"]).detach().clone()),
        with_kwargs=True)
    return seen, handle


@pytest.mark.parametrize("hires_steps, denoise", [(3, 0.5), (0, 0.6)])
def test_the_second_pass_starts_from_fresh_noise_of_the_same_seed_at_the_new_size(sd_lab, hires_steps, denoise):
    seen, handle = unet_calls(sd_lab)
    try:
        r = sd_lab.txt2img(PROMPT, **FAST, hires=True, hires_steps=hires_steps, strength=denoise)
    finally:
        handle.remove()
    n = hires_steps or FAST["steps"]
    assert len(seen) == FAST["steps"] + n  # Euler: one UNet call a step (both CFG halves in one batch)
    first = F.interpolate(_first_latents(sd_lab), (16, 16), mode="bilinear")  # A1111's "Latent": (1, 4, 16, 16)
    total = int(n / min(denoise, 0.999))
    schedule = labkit.samplers.canonical("Euler", "Automatic")[1]  # what "Automatic" is for Euler in A1111
    sigma = float(plan("a1111", "Euler", schedule, total, training_levels(sd_lab.scheduler_config, "a1111"))
                  .sigmas[total - n])
    noise = torch.randn((4, 16, 16), generator=torch.Generator().manual_seed(FAST["seed"]))
    want = (first + noise * sigma) / math.sqrt(1 + sigma ** 2)  # the UNet's input: c_in x (x0 + sigma * noise)
    got = seen[FAST["steps"]][1:2].float()  # the prompt's half of the first second-pass call
    assert got.shape == (1, 4, 16, 16) and torch.allclose(got, want, atol=1e-4)
    assert r.image.size == (128, 128) and r.first_pass[0].size == (64, 64)


def _first_latents(lab):
    return lab.txt2img(PROMPT, **FAST).latents


def test_pixel_and_model_upscalers_take_each_picture_of_a_batch(sd_lab):
    for upscaler in ("Lanczos", "Nearest", "toy-upscaler"):
        r = sd_lab.txt2img(PROMPT, **FAST, batch_size=2, hires=True, hires_upscaler=upscaler, strength=0.3)
        assert [im.size for im in r.images] == [(128, 128)] * 2 and len(r.first_pass) == 2
        a, b = (np.asarray(im, np.float64) for im in r.images)
        assert np.abs(a - b).mean() > 1, f"{upscaler}: the two pictures of the batch came out alike"
        assert any(f"upscaled with {upscaler}" in n for n in r.notes)


def test_latent_modes_give_different_pictures(sd_lab):
    pictures = {mode: np.asarray(sd_lab.txt2img(PROMPT, **FAST, hires=True, hires_upscaler=mode, strength=0.4).image,
                                 np.float64) for mode in labkit.upscalers.LATENT_MODES}
    same = lambda a, b: np.array_equal(pictures[a], pictures[b])  # noqa: E731
    assert same("Latent (nearest)", "Latent (nearest-exact)")  # at exactly 2x they pick the same cells
    assert not same("Latent", "Latent (bicubic)") and not same("Latent", "Latent (nearest)")
    assert len({p.tobytes() for p in pictures.values()}) >= 3


def test_lora_tags_apply_per_pass_as_in_a1111(sd_lab, tmp_path):
    from tests.helpers.lora_files import kohya_modules, lora_parts, write

    write(tmp_path / "ink.safetensors", kohya_modules(sd_lab, "kohya"), lora_parts)
    sd_lab.loras.search_paths = [tmp_path]
    tagged = PROMPT + " <lora:ink:1>"
    both = sd_lab.txt2img(tagged, **FAST, hires=True, strength=0.5)
    first_only = sd_lab.txt2img(tagged, **FAST, hires=True, strength=0.5, hires_prompt=PROMPT)
    plain = sd_lab.txt2img(PROMPT, **FAST, hires=True, strength=0.5)
    same = lambda a, b: np.array_equal(np.asarray(a), np.asarray(b))  # noqa: E731
    assert same(both.first_pass[0], first_only.first_pass[0]) and not same(both.first_pass[0], plain.first_pass[0])
    assert not same(both.image, first_only.image)  # a hires prompt without the tag turns the LoRA off
    assert [lora.name for lora in both.model.loras] == ["ink"] and "<lora:ink:1>" in both.params.prompt
    assert first_only.params.hires_prompt == PROMPT


def test_previews_count_both_passes_and_interrupt_in_the_first_skips_the_second(sd_lab):
    seen = []
    sd_lab.txt2img(PROMPT, **FAST, hires=True, hires_steps=3, strength=0.5,
                   on_step=lambda step, total, latents: seen.append((step, total, latents.shape[-1])))
    assert [s for s, _, _ in seen] == list(range(9)) and {t for _, t, _ in seen} == {9}
    assert [w for _, _, w in seen] == [8] * 6 + [16] * 3
    stopped = sd_lab.txt2img(PROMPT, **FAST, hires=True, on_step=lambda step, total, latents: step < 2)
    assert stopped.image.size == (64, 64) and any("second pass did not run" in n for n in stopped.notes)


def test_the_result_has_both_passes_timings_and_the_recipe(sd_lab, tmp_path):
    r = sd_lab.txt2img(PROMPT, **FAST, hires=True, hires_upscaler="Lanczos", hires_steps=2, strength=0.45)
    assert {"first pass", "upscale", "second pass", "first pass denoise", "second pass denoise", "total"} <= set(
        r.timings)
    assert r.timings["total"] >= r.timings["first pass"] + r.timings["second pass"]
    assert (r.params.width, r.params.height, r.params.hires, r.params.strength) == (64, 64, True, 0.45)
    assert labkit.read_params(r.save(tmp_path / "hires.png")) == r.params
    again = sd_lab.reproduce(tmp_path / "hires.png")
    assert np.array_equal(np.asarray(again.image), np.asarray(r.image))
    assert {"hires", "hires_upscaler", "hires_steps", "strength"} <= set(again.report.honoured)


def test_second_pass_settings_change_only_the_second_pass(sd_lab):
    base = sd_lab.txt2img(PROMPT, **FAST, hires=True, strength=0.5)
    for change in (dict(hires_sampler="DPM++ 2M"), dict(hires_cfg=8.0), dict(hires_negative_prompt="blue"),
                   dict(hires_schedule="Karras")):
        other = sd_lab.txt2img(PROMPT, **FAST, hires=True, strength=0.5, **change)
        assert np.array_equal(np.asarray(other.first_pass[0]), np.asarray(base.first_pass[0])), change
        assert not np.array_equal(np.asarray(other.image), np.asarray(base.image)), change


def test_sdxl_with_a_refiner_in_the_second_pass(xl_lab, refiner_lab):
    r = xl_lab.txt2img(PROMPT, **FAST, hires=True, strength=0.5, hires_steps=4, switch_at=0.8, refiner=refiner_lab)
    assert r.image.size == (128, 128) and r.stages["refiner"] == refiner_lab.name
    assert "second pass refiner" in r.timings and r.model.refiner == refiner_lab.name


def test_a_second_pass_model_of_the_family(sd_lab):
    from tests.helpers.labs import make_lab

    other = make_lab("toy", seed=9, name="other")
    r = sd_lab.txt2img(PROMPT, **FAST, hires=True, strength=0.5, hires_lab=other)
    mine = sd_lab.txt2img(PROMPT, **FAST, hires=True, strength=0.5)
    assert r.params.hires_checkpoint == "other" and r.stages["hires"] == "other"
    assert np.array_equal(np.asarray(r.first_pass[0]), np.asarray(mine.first_pass[0]))
    assert not np.array_equal(np.asarray(r.image), np.asarray(mine.image))


def test_an_a1111_hires_recipe_reproduces_with_an_upscaler_it_has(sd_lab):
    text = ("a red circle\nSteps: 6, Sampler: Euler, CFG scale: 4, Seed: 5, Size: 64x64, Denoising strength: 0.5, "
            "RNG: CPU, Hires upscale: 1.5, Hires steps: 3, Hires upscaler: R-ESRGAN 4x+, Version: v1.9.4")
    with pytest.raises(labkit.BadInput, match="Unknown upscaler 'R-ESRGAN 4x\\+'.*toy-upscaler"):
        sd_lab.reproduce(text)
    r = sd_lab.reproduce(text, hires_upscaler="toy-upscaler")
    assert r.image.size == (96, 96) and r.first_pass[0].size == (64, 64)
    assert {"hires", "hires_scale", "hires_steps", "strength"} <= set(r.report.honoured)
    assert "hires_upscaler" not in r.report.honoured or r.params.hires_upscaler == "toy-upscaler"
