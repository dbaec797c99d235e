"""Lab: every mode on tiny real components (toy-size configs, random weights), the refiner handoff, errors."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from labkit import BadInput, Params
from labkit.noise import initial_noise

FAST = {"steps": 4, "sampler": "Euler"}


def px(image):
    return np.asarray(image, dtype=np.float64)


def square_mask(size=64, box=(16, 16, 48, 48)):
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, box)
    return mask


def test_txt2img_result_carries_its_recipe(sd_lab):
    r = sd_lab.txt2img("a red circle", seed=7, **FAST)
    assert r.image.size == (64, 64) and r.image.mode == "RGB"
    assert (r.seed, r.params.seed, r.params.width, r.params.height) == (7, 7, 64, 64)
    assert r.params.prompt == "a red circle" and r.params.model == sd_lab.name
    assert {"text", "denoise", "decode", "total"} <= r.timings.keys()
    assert r._repr_png_().startswith(b"\x89PNG")
    assert px(r.image).std() > 1  # not a blank picture


def test_same_seed_same_pixels_other_seed_other_pixels(sd_lab):
    a, b = (sd_lab.txt2img("a blue star", seed=3, **FAST).image for _ in range(2))
    c = sd_lab.txt2img("a blue star", seed=4, **FAST).image
    assert np.array_equal(px(a), px(b))
    assert np.abs(px(a) - px(c)).mean() > 1


def test_random_seed_is_recorded(sd_lab):
    r = sd_lab.txt2img("x", seed=-1, **FAST)
    again = sd_lab.txt2img("x", seed=r.seed, **FAST)
    assert r.seed >= 0 and np.array_equal(px(r.image), px(again.image))


def test_batch_image_i_is_seed_plus_i(sd_lab):
    batch = sd_lab.txt2img("a green square", seed=10, batch_size=3, **FAST)
    assert batch.seeds == [10, 11, 12] and len(batch.images) == 3
    for i in (0, 2):
        single = sd_lab.txt2img("a green square", seed=10 + i, **FAST).image
        assert np.abs(px(batch.images[i]) - px(single)).max() <= 1  # batched convolutions may round differently


def test_comfy_noise_batch_shares_one_stream(sd_lab):
    batch = sd_lab.txt2img("x", seed=5, batch_size=2, noise="comfy", **FAST)
    assert batch.seeds == [5, 5]
    first = sd_lab.txt2img("x", seed=5, noise="a1111-cpu", **FAST).image  # same first draw of the stream
    assert np.abs(px(batch.images[0]) - px(first)).max() <= 1
    assert np.abs(px(batch.images[1]) - px(sd_lab.txt2img("x", seed=6, **FAST).image)).mean() > 1


@pytest.mark.parametrize("fixture, negative", [("sd_lab", "blurry"), ("sd_lab", ""), ("xl_lab", "blurry"),
                                               ("xl_lab", "")])
def test_equals_plain_diffusers_call(request, fixture, negative):
    """labkit adds no hidden changes beyond its scheduler (the tool's noise levels) and its start: the stock
    pipeline with `lab.scheduler(p)` and the start latents draws the same picture (for SDXL an empty negative
    prompt means zero embeddings, as in diffusers' default and A1111)."""
    from labkit.sampling.start import first_latents, pipeline_latents

    lab = request.getfixturevalue(fixture)
    r = lab.txt2img("a red circle", negative_prompt=negative, seed=11, cfg=5.0, **FAST)
    pipe = lab.pipe
    p = lab.params(seed=11, cfg=5.0, **FAST)
    pipe.scheduler = lab.scheduler(p)
    start = first_latents(pipe.scheduler, p, initial_noise(11, 1, (4, 8, 8), "a1111-cpu"))  # A1111: noise * 14.6
    plain = pipe("a red circle", negative_prompt=negative or None, num_inference_steps=4, guidance_scale=5.0,
                 latents=pipeline_latents(pipe.scheduler, start), output_type="latent").images
    assert torch.equal(plain.float().cpu(), r.latents)  # the very same latents; the pixels: next test


def test_pictures_are_truncated_to_8_bits_as_a1111_and_comfyui_save_them(sd_lab):
    from labkit.images import decode_latents, to_pictures

    r = sd_lab.txt2img("a red circle", seed=11, **FAST)
    x = decode_latents(sd_lab.components["vae"], r.latents)  # (1, 3, 64, 64) in about [-1, 1]
    exact = ((x + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    assert np.array_equal(px(r.image), np.floor(exact)) and px(to_pictures(x)[0]).tolist() == px(r.image).tolist()
    rounded = sd_lab.pipe.image_processor.postprocess(x, output_type="pil")[0]  # diffusers rounds
    assert 0 < np.mean(px(rounded) != px(r.image)) and np.abs(px(rounded) - px(r.image)).max() == 1


def test_params_object_and_overrides(sd_lab):
    p = Params(prompt="a purple triangle", seed=2, **FAST)
    assert np.array_equal(px(sd_lab.txt2img(params=p).image), px(sd_lab.txt2img(p.prompt, seed=2, **FAST).image))
    assert sd_lab.txt2img(params=p, cfg=2.0).params.cfg == 2.0


def test_clip_skip_uses_the_penultimate_layer(sd_lab):
    p = Params(prompt="a red circle", seed=1, **FAST)
    skip1, skip2 = sd_lab.encode_prompt(p)[0], sd_lab.encode_prompt(p.replace(clip_skip=2))[0]
    ids = sd_lab.components["tokenizer"]("a red circle", padding="max_length", max_length=77,
                                         return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = sd_lab.components["text_encoder"](ids, output_hidden_states=True).hidden_states
    encoder = sd_lab.components["text_encoder"]
    final_norm = getattr(encoder, "text_model", encoder).final_layer_norm  # transformers 5.6+ flattened CLIPTextModel
    assert torch.allclose(skip2["prompt_embeds"], final_norm(hidden[-2]), atol=1e-6)
    assert not torch.allclose(skip1["prompt_embeds"], skip2["prompt_embeds"])
    a = sd_lab.txt2img(params=p).image
    b = sd_lab.txt2img(params=p.replace(clip_skip=2)).image
    assert np.abs(px(a) - px(b)).mean() > 0.5


def test_modes_share_components(sd_lab):
    pipes = [sd_lab.pipeline(m) for m in ("txt2img", "img2img", "inpaint")]
    assert len({type(p) for p in pipes}) == 3
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        assert all(getattr(p, name) is sd_lab.components[name] for p in pipes)
    assert sd_lab.pipeline("img2img") is pipes[1]  # built once


def test_img2img_strength_controls_how_much_changes(sd_lab):
    init = sd_lab.txt2img("a red circle", seed=1, **FAST).image
    low = sd_lab.img2img(init, "a red circle", strength=0.2, seed=2, steps=10, sampler="Euler")
    high = sd_lab.img2img(init, "a red circle", strength=1.0, seed=2, steps=10, sampler="Euler")
    assert low.mode == "img2img" and low.params.strength == 0.2 and low.image.size == init.size
    assert np.abs(px(low.image) - px(init)).mean() < np.abs(px(high.image) - px(init)).mean()
    again = sd_lab.img2img(init, "a red circle", strength=0.2, seed=2, steps=10, sampler="Euler")
    assert np.array_equal(px(low.image), px(again.image))


def test_img2img_snaps_odd_sizes_and_says_so(sd_lab):
    r = sd_lab.img2img(Image.new("RGB", (70, 66), (200, 30, 30)), "x", strength=0.5, **FAST)
    assert r.image.size == (64, 64) and any("snapped" in n for n in r.notes)


def test_inpaint_keeps_pixels_outside_the_mask(sd_lab):
    init = sd_lab.txt2img("a red circle", seed=1, **FAST).image
    mask = square_mask()
    r = sd_lab.inpaint(init, mask, "a blue square", seed=3, mask_blur=4, **FAST)
    blurred = np.asarray(sd_lab.pipeline("inpaint").mask_processor.blur(mask, blur_factor=4))
    outside = blurred == 0
    assert np.array_equal(px(r.image)[outside], px(init)[outside])
    assert np.abs(px(r.image) - px(init))[24:40, 24:40].mean() > 5


def test_inpaint_only_masked_crops_and_pastes_back(sd_lab):
    init = sd_lab.txt2img("a red circle", seed=1, width=128, height=128, **FAST).image
    mask = square_mask(128, (80, 80, 112, 112))
    r = sd_lab.inpaint(init, mask, "a yellow star", seed=3, only_masked=True, padding=8, mask_blur=0,
                       width=64, height=64, **FAST)
    assert r.image.size == (128, 128)
    assert np.array_equal(px(r.image)[:64, :64], px(init)[:64, :64])
    assert np.abs(px(r.image) - px(init))[84:108, 84:108].mean() > 5


def test_inpaint_mask_of_another_size_is_refused(sd_lab):
    with pytest.raises(BadInput, match="resize the mask"):
        sd_lab.inpaint(Image.new("RGB", (64, 64)), Image.new("L", (32, 32)), "x", **FAST)


def test_outpaint_extends_the_canvas(sd_lab):
    init = sd_lab.txt2img("a red circle", seed=1, **FAST).image
    r = sd_lab.outpaint(init, "a red circle", left=16, right=8, top=0, bottom=8, seed=2, mask_blur=0, **FAST)
    assert r.image.size == (88, 72) and r.mode == "outpaint"
    assert np.array_equal(px(r.image)[:64, 16:80], px(init))
    with pytest.raises(BadInput, match="multiples of 8"):
        sd_lab.outpaint(init, "x", left=5)


def test_inpainting_unet_runs_every_mode(inpaint_lab):
    r = inpaint_lab.txt2img("a red circle", seed=1, **FAST)
    assert r.image.size == (64, 64) and inpaint_lab.variant == "inpaint"
    assert inpaint_lab.pipeline("inpaint").unet.config.in_channels == 9
    i = inpaint_lab.inpaint(r.image, square_mask(), "a blue square", seed=2, mask_blur=0, **FAST)
    assert np.array_equal(px(i.image)[:16], px(r.image)[:16])


def test_sdxl_layout_modes(xl_lab):
    r = xl_lab.txt2img("a red circle", seed=1, **FAST)
    assert r.image.size == (64, 64) and type(xl_lab.pipe).__name__ == "StableDiffusionXLPipeline"
    i = xl_lab.img2img(r.image, "a red circle", strength=0.5, seed=2, **FAST)
    assert i.image.size == (64, 64)
    m = xl_lab.inpaint(r.image, square_mask(), "x", seed=2, mask_blur=0, **FAST)
    assert np.array_equal(px(m.image)[:16], px(r.image)[:16])


def test_refiner_handoff(xl_lab, refiner_lab):
    base = xl_lab.txt2img("a blue star", seed=4, steps=10, sampler="Euler")
    refined = xl_lab.txt2img("a blue star", seed=4, steps=10, sampler="Euler", refiner=refiner_lab, switch_at=0.6)
    assert refined.stages == {"base": xl_lab.name, "refiner": refiner_lab.name}
    assert "refiner" in refined.timings and refined.model.refiner == refiner_lab.name
    assert np.abs(px(base.image) - px(refined.image)).mean() > 0.1  # random weights: small but real change
    later = xl_lab.txt2img("a blue star", seed=4, steps=10, sampler="Euler", refiner=refiner_lab, switch_at=0.9)
    assert not np.array_equal(px(later.image), px(refined.image))


def test_refiner_handoff_splits_the_schedule(xl_lab, refiner_lab):
    steps = {"base": [], "refiner": []}
    base_unet, ref_unet = xl_lab.components["unet"], refiner_lab.components["unet"]
    hooks = [base_unet.register_forward_hook(lambda m, a, o: steps["base"].append(1)),
             ref_unet.register_forward_hook(lambda m, a, o: steps["refiner"].append(1))]
    try:
        xl_lab.txt2img("x", seed=1, steps=10, sampler="Euler", cfg=1.0, refiner=refiner_lab, switch_at=0.7)
    finally:
        for h in hooks:
            h.remove()
    assert (len(steps["base"]), len(steps["refiner"])) == (7, 3)


def test_refiner_of_another_family_is_refused(sd_lab, xl_lab, refiner_lab):
    with pytest.raises(BadInput, match="does not fit"):
        sd_lab.txt2img("x", refiner=refiner_lab, **FAST)
    with pytest.raises(BadInput, match="does not fit"):
        xl_lab.txt2img("x", refiner=sd_lab, **FAST)
    with pytest.raises(BadInput, match="refiner refines"):
        refiner_lab.txt2img("x", **FAST)
    with pytest.raises(BadInput, match="switch_at"):
        xl_lab.txt2img("x", refiner=refiner_lab, switch_at=1.0, **FAST)


@pytest.mark.parametrize("bad, match", [
    ({"width": 60}, "multiple of 8"), ({"steps": 0}, "at least 1 step"), ({"strength": 1.2}, "outside"),
    ({"sampler": "Nonsense"}, "Euler"),
])
def test_bad_settings_raise_before_any_work(sd_lab, bad, match):
    with pytest.raises(BadInput, match=match):
        sd_lab.txt2img("x", **{**FAST, **bad})


def test_gpu_noise_without_cuda_is_noted(sd_lab):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    with pytest.warns(UserWarning, match="CUDA"):
        r = sd_lab.txt2img("x", seed=1, noise="a1111-gpu", **FAST)
    assert r.params.noise == "a1111-cpu" and any("CUDA" in n for n in r.notes)


def test_on_step_sees_every_step_and_can_stop(sd_lab):
    seen = []
    sd_lab.txt2img("x", seed=1, steps=6, sampler="Euler", on_step=lambda i, n, lat: seen.append((i, lat.shape)))
    assert [i for i, _ in seen] == list(range(6)) and seen[0][1] == (1, 4, 8, 8)
    stopped = []
    sd_lab.txt2img("x", seed=1, steps=6, sampler="Euler", on_step=lambda i, n, lat: stopped.append(i) or i < 2)
    assert stopped == [0, 1, 2]
    assert sd_lab.txt2img("x", seed=1, **FAST).image.size == (64, 64)  # still usable


def test_save_writes_a1111_text_and_never_overwrites(sd_lab, tmp_path):
    r = sd_lab.txt2img("a red circle", negative_prompt="blurry", seed=9, **FAST)
    path = r.save(tmp_path / "out.png")
    text = Image.open(path).text["parameters"]
    assert text.startswith("a red circle\nNegative prompt: blurry\nSteps: 4, Sampler: Euler, Schedule type: Automatic")
    assert "Seed: 9, Size: 64x64" in text and "RNG: CPU" in text
    before = path.read_bytes()
    with pytest.raises(BadInput, match="overwrite=True"):
        r.save(path)
    assert path.read_bytes() == before


def positive_text_inputs(lab, prompt, **settings) -> list:
    """The text embeddings of the positive half of each UNet call's CFG batch during one txt2img run."""
    seen = []
    hook = lab.components["unet"].register_forward_hook(
        lambda m, args, kwargs, out: seen.append(kwargs["encoder_hidden_states"][-1].clone()), with_kwargs=True)
    try:
        lab.txt2img(prompt, **settings)
    finally:
        hook.remove()
    return seen


def test_prompt_schedule_switches_mid_run(sd_lab):
    """A1111's [from:to:when]: the UNet sees `from` up to step int(when * steps) (0-based, inclusive, as A1111
    counts), then `to`."""
    seen = positive_text_inputs(sd_lab, "a [red:blue:0.5] circle", seed=3, steps=6, cfg=5.0, sampler="Euler")
    red = sd_lab.encode_prompt(Params(prompt="a red circle"))[0]["prompt_embeds"][0]
    blue = sd_lab.encode_prompt(Params(prompt="a blue circle"))[0]["prompt_embeds"][0]
    assert len(seen) == 6  # the positive half of each CFG batch, once per step
    assert all(torch.equal(e, red) for e in seen[:4]) and all(torch.equal(e, blue) for e in seen[4:])


def test_prompt_schedule_counts_sampler_steps_for_second_order_samplers(sd_lab):
    """Heun runs 2 UNet calls per step after the first (timesteps t0, t1, t1, t2, t2, ...): the switch still
    comes after sampler step int(when * steps), not after that many UNet calls."""
    seen = positive_text_inputs(sd_lab, "a [red:blue:0.5] circle", seed=3, steps=6, cfg=5.0, sampler="Heun")
    red = sd_lab.encode_prompt(Params(prompt="a red circle"))[0]["prompt_embeds"][0]
    assert len(seen) == 11  # 2 * 6 - 1 UNet calls
    is_red = [torch.equal(e, red) for e in seen]
    assert is_red == [True] * 7 + [False] * 4  # steps 0..3 (calls 0..6) red, steps 4..5 (calls 7..10) blue


def test_sde_sampler_repeats_for_a_seed(sd_lab):
    """DPM++ SDE's Brownian noise is seeded from the image seeds, not torch's global RNG."""
    import numpy as np

    run = lambda seed, batch=1: [np.asarray(im) for im in sd_lab.txt2img(  # noqa: E731
        "a red circle", seed=seed, steps=4, sampler="DPM++ SDE", batch_size=batch).images]
    first = run(5)[0]
    torch.manual_seed(123)
    assert np.array_equal(first, run(5)[0]) and not np.array_equal(first, run(6)[0])
    assert len(run(5, batch=2)) == 2


def test_ancestral_samplers_repeat_for_a_seed(sd_lab):
    """Ancestral step noise comes from the image's seeded generator (after its initial noise), not torch's
    global RNG: the same seed gives the same picture, another seed another."""
    import numpy as np

    runs = [np.asarray(sd_lab.txt2img("a red circle", seed=s, steps=4, sampler="Euler a").image) for s in (7, 7, 8)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    torch.manual_seed(0)
    again = np.asarray(sd_lab.txt2img("a red circle", seed=7, steps=4, sampler="Euler a").image)
    assert np.array_equal(runs[0], again)


def test_weighted_prompt_changes_the_picture(sd_lab):
    plain = px(sd_lab.txt2img("a red circle", seed=3, **FAST).image)
    weighted = px(sd_lab.txt2img("a (red:1.5) circle", seed=3, **FAST).image)
    ignored = px(sd_lab.txt2img("a (red:1.5) circle", seed=3, emphasis="Ignore", **FAST).image)
    assert np.abs(plain - weighted).mean() > 0.1
    assert np.array_equal(plain, ignored)


def test_result_keeps_the_final_latents_that_decode_to_its_pictures(sd_lab):
    r = sd_lab.txt2img("a red circle", seed=3, batch_size=2, **FAST)
    assert tuple(r.latents.shape) == (2, 4, 8, 8) and r.latents.dtype == torch.float32
    again = sd_lab.decode(r.latents)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(again, r.images))


def test_text_encoder_in_half_precision_as_comfyui_keeps_it():
    from tests.helpers.labs import make_lab

    lab = make_lab("toy", seed=3)
    full = lab.txt2img("a red circle", seed=2, **FAST)
    lab.set_text_encoder_dtype("float16")
    half = lab.txt2img("a red circle", seed=2, **FAST)
    assert lab.components["text_encoder"].dtype == torch.float16 and lab.text_encoder_dtype == "float16"
    assert half.latents.dtype == torch.float32 and 0 < (half.latents - full.latents).abs().max() < 0.05
    with pytest.raises(BadInput, match="float32"):
        lab.set_text_encoder_dtype("fp16")


def test_a_float16_vae_that_overflows_is_decoded_again_in_float32_with_a_note():
    """SDXL's VAE overflows in half precision (NaN pictures): the decode is redone in float32, as A1111's "revert to
    32-bit VAE" does, the Result says so, and the VAE is half precision again afterwards."""
    import labkit
    from labkit.images import VAE_OVERFLOW_NOTE, decode_latents, to_pictures

    lab = labkit.open("toy-xl", dtype="float16")
    vae = lab.components["vae"]

    def overflow_in_half(module, args, output):  # what SDXL's VAE does in float16, injected
        return output * float("inf") if output.dtype == torch.float16 else output

    hook = vae.decoder.conv_out.register_forward_hook(overflow_in_half)
    try:
        r = lab.txt2img("a red circle", seed=3, steps=2)
    finally:
        hook.remove()
    assert VAE_OVERFLOW_NOTE in r.notes and next(vae.parameters()).dtype == torch.float16
    vae32 = copy.deepcopy(vae).float()
    assert px(r.image).tolist() == px(to_pictures(decode_latents(vae32, r.latents.half()))[0]).tolist()
    assert VAE_OVERFLOW_NOTE not in lab.txt2img("a red circle", seed=3, steps=2).notes  # no overflow, no note
