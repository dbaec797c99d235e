"""ControlNet units in generations: the hook equals diffusers' own ControlNet pipeline (Balanced, whole run);
weight 0 is the plain model; control modes act on the right half of the guidance batch; units run in txt2img,
img2img and inpaint, SD 1.x and SDXL layouts, with LoRAs and with a refiner, and the Result records them."""

import numpy as np
import pytest
import torch
from PIL import Image

import labkit
from labkit.controlnet.hook import ControlHook, Prepared
from tests.helpers.controlnets import make_controlnet, save_diffusers_file, save_original

STEPS = 4


def edges(size=64):
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[size // 4: 3 * size // 4, size // 4] = 255
    rgb[size // 4, size // 4: 3 * size // 4] = 255
    return Image.fromarray(rgb)


@pytest.fixture(scope="module")
def sd(sd_lab, tmp_path_factory):
    folder = tmp_path_factory.mktemp("controlnets")
    save_original(make_controlnet(sd_lab, seed=3, scale=0.2), folder / "sd-cn.safetensors")
    save_original(make_controlnet(sd_lab, seed=4, scale=0.2), folder / "sd-cn-2.safetensors")
    sd_lab.controlnets.search_paths = [folder]
    return sd_lab


def pixels(result):
    return np.asarray(result.image, np.float64)


def test_the_hook_equals_diffusers_controlnet_pipeline(sd):
    from diffusers import StableDiffusionControlNetPipeline

    from labkit.controlnet.run import prepare

    p = sd.params(prompt="a red circle", steps=STEPS, cfg=4.0, seed=1, width=64, height=64)
    run = prepare(sd.controlnets, [labkit.ControlUnit("sd-cn", image=edges())], 64, 64, cfg=True, xl=False)
    base = sd.pipeline("txt2img")
    model = sd.controlnets.get("sd-cn")[0]
    reference = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet, controlnet=model,
        scheduler=sd.scheduler(p), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    common = dict(prompt="a red circle", num_inference_steps=STEPS, guidance_scale=4.0, output_type="latent")
    want = reference(image=run.maps[0], latents=noise.clone(), **common).images
    base.scheduler = sd.scheduler(p)
    with run.attached(base, STEPS):
        got = base(latents=noise.clone(), **common).images
    plain = base(latents=noise.clone(), **common).images
    assert torch.allclose(got, want, atol=1e-5)
    assert (got - plain).abs().max() > 1e-2  # and the unit did change the run


def test_weight_zero_draws_the_plain_models_picture_and_the_result_records_the_unit(sd):
    plain = sd.txt2img("a red circle", steps=STEPS, seed=2)
    unit = labkit.ControlUnit("sd-cn", image=edges(), module="none")
    off = sd.txt2img("a red circle", steps=STEPS, seed=2, control=unit.replace(weight=0.0))
    on = sd.txt2img("a red circle", steps=STEPS, seed=2, control=unit)
    assert np.array_equal(pixels(plain), pixels(off))
    assert np.abs(pixels(plain) - pixels(on)).mean() > 1.0
    recorded = on.params.control[0]
    assert recorded.image is None and recorded.model.startswith("sd-cn [") and len(on.control_maps) == 1
    assert any("acted in steps 0-3 of 4" in n for n in on.notes)


def test_guidance_end_stops_the_unit_where_a1111_does(sd):
    unit = labkit.ControlUnit("sd-cn", image=edges(), guidance_end=0.5)
    r = sd.txt2img("a red circle", steps=10, seed=2, control=unit)
    assert any("acted in steps 0-6 of 10" in n for n in r.notes)  # A1111's lagging step: 0/10 .. 5/10 at step 6


def test_control_modes_scale_and_place_the_residuals(sd):
    model = sd.controlnets.get("sd-cn")[0]
    control = torch.from_numpy(np.array(edges())).permute(2, 0, 1)[None].float() / 255
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    context = torch.randn(2, 77, 64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(500)
    down, mid = model(x, t, encoder_hidden_states=context, controlnet_cond=control.expand(2, -1, -1, -1),
                      return_dict=False)
    n = len(down) + 1
    for mode in labkit.controlnet.units.CONTROL_MODES:
        hook = ControlHook([Prepared(model, control, 0.8, 0.0, 1.0, mode)], 10, cfg=True)
        got_down, got_mid = hook._residuals(hook.units[0], x, t, context, None)
        scales = labkit.controlnet.units.layer_scales(mode, 0.8, n)
        negative_scale = 0.0 if mode == "ControlNet is more important" else 1.0
        for d, g, s in zip([*down, mid], [*got_down, got_mid], scales):
            assert torch.allclose(g[1], d[1] * s, atol=1e-6)  # the prompt's row
            assert torch.allclose(g[0], d[0] * s * negative_scale, atol=1e-6)  # the negative prompt's row


def test_two_units_add_up(sd):
    a = labkit.ControlUnit("sd-cn", image=edges())
    b = labkit.ControlUnit("sd-cn-2", image=edges().transpose(Image.Transpose.FLIP_LEFT_RIGHT), weight=0.7)
    both = sd.txt2img("a star", steps=STEPS, seed=5, control=[a, b])
    first = sd.txt2img("a star", steps=STEPS, seed=5, control=a)
    assert np.abs(pixels(both) - pixels(first)).mean() > 0.5
    assert [u.model.split(" [")[0] for u in both.params.control] == ["sd-cn", "sd-cn-2"]
    assert sum("ControlNet 1 (sd-cn-2" in n for n in both.notes) == 1


def test_img2img_uses_the_init_picture_when_a_unit_has_none_and_counts_the_steps_it_runs(sd):
    init = Image.fromarray(np.asarray(edges()) // 2 + 60)
    r = sd.img2img(init, "a red circle", steps=10, strength=0.5, seed=1, control=labkit.ControlUnit("sd-cn"))
    assert len(r.control_maps) == 1 and any("of 6" in n for n in r.notes)  # A1111 runs int(0.5 * 10) + 1 steps


def test_inpaint_with_a_9_channel_unet(inpaint_lab, sd, tmp_path):
    folder = tmp_path / "cn"
    folder.mkdir()
    save_original(make_controlnet(sd, seed=3, scale=0.2), folder / "sd-cn.safetensors")
    inpaint_lab.controlnets.search_paths = [folder]
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    init = Image.new("RGB", (64, 64), (200, 200, 200))
    plain = inpaint_lab.inpaint(init, mask, "a circle", steps=STEPS, seed=1)
    ruled = inpaint_lab.inpaint(init, mask, "a circle", steps=STEPS, seed=1,
                                control=labkit.ControlUnit("sd-cn", image=edges()))
    assert np.abs(pixels(plain) - pixels(ruled)).mean() > 0.1


def test_sdxl_layout_with_a_refiner_stops_the_unit_at_the_switch(xl_lab, refiner_lab, tmp_path):
    save_diffusers_file(make_controlnet(xl_lab, seed=5, scale=0.2), tmp_path / "xl-cn.safetensors")
    xl_lab.controlnets.search_paths = [tmp_path]
    unit = labkit.ControlUnit("xl-cn", image=edges(), control_mode="My prompt is more important")
    plain = xl_lab.txt2img("a star", steps=STEPS, seed=1)
    ruled = xl_lab.txt2img("a star", steps=STEPS, seed=1, control=unit)
    assert np.abs(pixels(plain) - pixels(ruled)).mean() > 0.1
    refined = xl_lab.txt2img("a star", steps=STEPS, seed=1, control=unit, refiner=refiner_lab, switch_at=0.5)
    assert "refiner" in refined.stages and any("once the refiner takes over the units stop" in n
                                               for n in refined.notes)


def test_units_run_beside_a_lora(sd):
    from tests.helpers.lora_files import kohya_modules, lora_parts, write

    path = write(sd.controlnets.search_paths[0].parent / "style.safetensors", kohya_modules(sd, "kohya"),
                 lora_parts)
    sd.loras.load(path, name="style")
    try:
        r = sd.txt2img("a circle", steps=STEPS, seed=1, control=labkit.ControlUnit("sd-cn", image=edges()))
    finally:
        sd.loras.remove("style")
    assert r.model.loras and r.params.control
