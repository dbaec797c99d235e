"""The Studio's hires fix tab without a browser: its settings become Params only in txt2img, a restored recipe
sets them, the size note says what the second pass draws, a run gives the bigger picture with its first pass, and
"upscale" makes the shown picture bigger and the Studio's input."""

import labkit
from labkit.ui import Studio


def test_hires_settings_describe_params_in_txt2img_only(sd_lab):
    s = Studio(sd_lab)
    assert not s.params.hires
    panel = s.hires
    panel.enabled.value, panel.upscaler.value, panel.scale.value = True, "Lanczos", 1.5
    panel.steps.value, panel.denoise.value, panel.sampler.value = 5, 0.4, "Euler a"
    panel.prompt.value, panel.cfg.value = "sharper", 6.0
    p = s.params
    assert (p.hires, p.hires_upscaler, p.hires_scale, p.hires_steps, p.strength, p.hires_sampler, p.hires_prompt,
            p.hires_cfg, p.hires_schedule) == (True, "Lanczos", 1.5, 5, 0.4, "Euler a", "sharper", 6.0, "")
    assert "64x64 → 96x96" in panel.size_note.value
    s.mode.value = "img2img"
    assert not s.params.hires  # A1111 has hires fix in txt2img only


def test_a_restored_recipe_sets_the_hires_tab(sd_lab):
    s = Studio(sd_lab)
    p = labkit.Params(prompt="a blue square", hires=True, hires_upscaler="Nearest", hires_resize_x=128,
                      hires_resize_y=96, hires_steps=7, strength=0.3, hires_schedule="Karras",
                      hires_negative_prompt="blurry")
    s.show_params(p)
    got = s.params
    assert all(getattr(got, f) == getattr(p, f) for f in ("hires", "hires_upscaler", "hires_resize_x",
                                                         "hires_resize_y", "hires_steps", "strength",
                                                         "hires_schedule", "hires_negative_prompt"))


def test_a_hires_run_and_the_upscale_action(sd_lab):
    s = Studio(sd_lab)
    s.hires.upscale()
    assert "generate a picture first" in s.hires.upscale_message.value
    s.hires.enabled.value, s.hires.denoise.value, s.hires.steps.value = True, 0.5, 2
    r = s.generate(steps=3, seed=2, prompt="a red circle")
    assert r.image.size == (128, 128) and r.first_pass[0].size == (64, 64) and r.params.hires
    s.hires.upscale_with.value, s.hires.upscale_by.value = "toy-upscaler", 2.0
    bigger = s.hires.upscale()
    assert bigger.size == (256, 256) and s.input_image.size == (256, 256)
    assert "128x128 → 256x256 with toy-upscaler" in s.hires.upscale_message.value
    assert s.hires.upscaled.layout.display is None
