"""The panels of labkit.ui driven as a front end would drive them: set traits, call handlers (no browser)."""

import numpy as np
import pytest
from tests.helpers.labs import make_lab
from tests.helpers.lora_files import kohya_modules, lora_parts, sd1_sized_lora, write

import labkit
from labkit import BadInput, Params
from labkit.prompts import token_counts
from labkit.ui import Compare, Gallery, LoraToggles, PromptPanel, SamplingControls, StepPreview, Studio
from labkit.ui.controls import count_text, snap
from labkit.ui.gallery import free_path, split_view

FAST = {"steps": 3, "sampler": "Euler", "seed": 5}


@pytest.fixture()
def lab():
    return make_lab("toy", seed=11)


def pixels(image):
    return np.asarray(image, dtype=np.int16)


# ---- prompt panel ----------------------------------------------------------------------------------------------

def test_token_counts_follow_a1111_chunks_tags_and_schedules():
    tok = labkit.tokenizer("sd1")
    assert token_counts(tok, "a red circle") == [3]
    assert token_counts(tok, "a red circle <lora:outline:0.8>") == [3]  # tags are not tokens
    assert token_counts(tok, "(a red:1.3) circle") == [3]  # weights are not tokens
    assert token_counts(tok, "a [red:big blue green:0.5] circle") == [5]  # the longer variant counts
    long = ", ".join(["red circle"] * 40)  # 40 * 2 words + 39 commas = 119 tokens
    counts = token_counts(tok, long)
    assert len(counts) == 2 and sum(counts) == 119 and counts[0] <= 75
    assert token_counts(tok, "a BREAK b") == [1, 1]
    assert count_text([3]) == "3/75" and count_text([70, 49]) == "119/150" and count_text([]) == "0/75"


def test_prompt_panel_counts_live_and_edits_params():
    panel = PromptPanel(labkit.tokenizer("sd1"))
    panel.prompt.value = "a red circle on a white background"
    assert panel.prompt_count.value == "tokens 7/75"
    panel.negative.value = ", ".join(["blurry"] * 50)
    assert panel.negative_count.value.endswith("(2 chunks)") and "/150" in panel.negative_count.value
    p = panel.apply(Params(steps=7))
    assert (p.prompt, p.negative_prompt, p.steps) == (panel.prompt.value, panel.negative.value, 7)
    panel.show(Params(prompt="a blue star"))
    assert panel.prompt.value == "a blue star" and panel.prompt_count.value == "tokens 3/75"
    panel.prompt.value = "a (broken:1.2 [syntax"  # half-typed: counted as text, never raises
    assert panel.prompt_count.value.startswith("tokens ")


# ---- sampling controls -----------------------------------------------------------------------------------------

def test_sampling_controls_snap_sizes_to_multiples_of_8_and_say_so():
    controls = SamplingControls(Params(), native_size=64)
    controls.width.value = 67
    assert controls.width.value == 64 and "67" in controls.note.value and "64" in controls.note.value
    controls.height.value = 100
    assert controls.height.value == 104
    assert snap(3) == 8 and snap(12) == 16 and snap(64) == 64


def test_hiding_one_control_hides_no_other():
    controls = SamplingControls(Params(), native_size=64)
    controls.strength.layout.display = "none"  # what a Studio does in txt2img mode
    shown = [c for c in controls.controls if c is not controls.strength]
    assert all(c.layout.display != "none" for c in shown)


def test_sampling_controls_round_trip_params_and_seeds_as_a1111():
    p = Params(steps=9, cfg=3.5, sampler="Euler a", schedule="Karras", seed=1234, width=48, height=72,
               batch_size=2, strength=0.4, switch_at=0.6)
    controls = SamplingControls(native_size=64)
    controls.show(p)
    assert controls.apply(Params()) == p  # a typed seed is used as typed
    controls.random_seed()  # the dice
    assert controls.seed.value == -1 and controls.apply(Params()).seed == -1  # -1: a new random seed each run
    controls.reuse_seed()  # recycle before any run: nothing to reuse
    assert controls.seed.value == -1
    controls.show_used(98765)
    controls.reuse_seed()
    assert controls.seed.value == 98765 and "98765" in controls.used.value


# ---- LoRA toggles ----------------------------------------------------------------------------------------------

def test_lora_toggles_act_on_the_lab(lab, tmp_path):
    path = write(tmp_path / "style.safetensors", kohya_modules(lab, "kohya"), lora_parts, seed=3)
    panel = LoraToggles(lab)
    changes = []
    panel.on_change(lambda: changes.append(1))
    panel.path.value = str(path)
    panel.add.click()
    assert set(panel.rows) == {"style"} and lab.loras.active == {"style": (1.0, 1.0)}
    row = panel.rows["style"]
    assert "100%" in row.coverage.value and "toy" in row.badge.value
    plain_off = None
    row.enabled.value = False
    assert lab.loras.active == {} and changes
    plain_off = pixels(lab.txt2img("a red circle", **FAST).image)
    row.enabled.value = True
    on = pixels(lab.txt2img("a red circle", **FAST).image)
    assert np.abs(on - plain_off).max() > 0  # the toggle reached the picture
    row.weight.value = 2.5
    assert lab.loras.active["style"] == (2.5, 2.5) and "beyond" in row.warning.value
    row.weight.value = 0.5
    assert row.warning.value == ""
    row.remove.click()
    assert panel.rows == {} and lab.loras.loaded == {}


def test_lora_toggles_show_a_family_mismatch_without_raising(lab, tmp_path):
    panel = LoraToggles(lab)
    panel.path.value = str(sd1_sized_lora(tmp_path / "sd15.safetensors"))
    panel.add.click()  # a button callback must not raise into the kernel
    assert "LoraMismatch" in panel.message.value and "sd1" in panel.message.value
    assert lab.loras.loaded == {} and panel.output.outputs  # the error is shown in the panel's output area
    panel.path.value = ""
    panel.add.click()
    assert "type a path" in panel.message.value


def test_lora_toggles_list_loras_on_the_search_paths(lab, tmp_path):
    write(tmp_path / "found.safetensors", kohya_modules(lab, "kohya"), lora_parts, seed=4)
    lab.loras.search_paths = [tmp_path]
    panel = LoraToggles(lab)
    assert "found" in panel.choices.options
    panel.choices.value = "found"
    panel.add.click()
    assert "found" in lab.loras.loaded and "found" not in panel.choices.options


# ---- step preview ----------------------------------------------------------------------------------------------

def test_step_preview_shows_each_step_and_interrupts(lab):
    preview = StepPreview(lab, interval=0)
    seen = []

    def on_step(step, total, latents):
        seen.append(step)
        if step == 2:
            preview.interrupt()
        return preview.on_step(step, total, latents)

    preview.start(10)
    r = lab.txt2img("a red circle", steps=10, sampler="Euler", seed=1, on_step=on_step)
    preview.finish()
    assert seen == [0, 1, 2] and preview.interrupted and preview.steps_done == 3
    assert preview.bar.value == 3 and "interrupted after step 3" in preview.status.value
    assert preview.image.value[:4] == b"\x89PNG" and preview.previews == 3
    full = lab.txt2img("a red circle", steps=10, sampler="Euler", seed=1)
    assert np.abs(pixels(full.image) - pixels(r.image)).max() > 0  # the run did stop early
    again = lab.txt2img("a red circle", steps=10, sampler="Euler", seed=1)
    assert np.array_equal(pixels(full.image), pixels(again.image))  # and the Lab is as usable as before


def test_latent_preview_fits_the_vae_and_decodes_small_ones(lab):
    import torch

    from labkit.preview import Previewer, decode, fit, to_image

    vae = lab.components["vae"]
    coefficients = fit(vae)
    assert coefficients.shape == (5, 3) and torch.isfinite(coefficients).all()
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert to_image(latents, coefficients).size == (64, 64)
    assert Previewer(lab).mode == "full" and Previewer(lab, "approx").mode == "approx"
    with torch.no_grad():
        expected = vae.decode(latents / vae.config.scaling_factor).sample[0]  # (3, 64, 64)
    got = torch.from_numpy(np.array(decode(vae, latents))).permute(2, 0, 1).float() / 127.5 - 1  # a writable copy
    assert (got - expected.clamp(-1, 1)).abs().max() < 1 / 127.5 + 1e-6
    with pytest.raises(BadInput, match="preview mode"):
        Previewer(lab, "fancy")


# ---- gallery and compare ---------------------------------------------------------------------------------------

def test_gallery_restores_settings_and_saves_with_metadata(lab, tmp_path):
    gallery = Gallery(out_dir=tmp_path)
    first = lab.txt2img("a red circle", **FAST)
    second = lab.txt2img("a blue star", cfg=3.0, steps=4, sampler="Euler", seed=-1)
    gallery.add(first)
    gallery.add(second)
    restored = []
    gallery.on_restore(restored.append)
    assert gallery.restore(1) == first.params and restored == [first.params]
    p = gallery.restore(0)
    assert p.seed == second.seed and p.prompt == "a blue star" and p.cfg == 3.0
    saved = gallery.save(0)
    again = gallery.save(0)
    assert saved != again and saved.exists() and again.exists()  # never overwrites
    assert labkit.read_params(saved) == second.params
    assert len(gallery.grid.children) == 2
    assert free_path(tmp_path, "x").name == "x.png"


def test_compare_splits_two_pictures():
    from PIL import Image

    a, b = Image.new("RGB", (10, 4), (255, 0, 0)), Image.new("RGB", (20, 8), (0, 0, 255))
    out = np.asarray(split_view(a, b, 0.3))
    assert out.shape == (4, 10, 3)
    assert (out[:, :3] == [255, 0, 0]).all() and (out[:, 3:] == [0, 0, 255]).all()
    compare = Compare(a, b)
    assert len(compare.view.children) == 2
    compare.mode.value = "slider"
    compare.position.value = 0.7
    assert compare.split.value[:4] == b"\x89PNG"
    assert "Compare (slider)" in compare._repr_mimebundle_()["text/plain"]


# ---- studio ----------------------------------------------------------------------------------------------------

def studio(lab, **kw):
    s = Studio(lab, params=Params(prompt="a red circle", steps=3, sampler="Euler", seed=5), debounce=0.01, **kw)
    return s


def test_studio_generates_headless_and_summarizes(lab, tmp_path):
    s = studio(lab, out_dir=tmp_path)
    r = s.generate()
    assert r.params.prompt == "a red circle" and r.params.steps == 3 and r.seed == 5
    assert s.image.value[:4] == b"\x89PNG" and s.gallery.results == [r]
    assert np.array_equal(pixels(r.image), pixels(lab.txt2img("a red circle", **FAST).image))
    bundle = s._repr_mimebundle_()
    assert "a red circle" in bundle["text/plain"] and "Euler" in bundle["text/plain"]
    assert "data:image/png;base64," in bundle["text/html"]
    s.gallery.save(0)
    assert len(list(tmp_path.glob("*.png"))) == 1


def test_studio_button_runs_on_a_worker_and_queues_presses(lab):
    s = studio(lab)
    calls = []
    original = s._call
    s._call = lambda mode, params: calls.append(params) or original(mode, params)
    assert s.start() is True
    s.start(), s.start()  # presses during a run queue, one run at a time
    assert s.wait(60)
    assert len(calls) == 3 and s.result is not None and not s.runner.busy


def test_studio_shows_errors_and_stays_usable(lab):
    s = studio(lab)
    s.mode.value = "img2img"
    s.start()
    assert s.wait(60)
    assert "BadInput" in s.notes.value and "→ img2img" in s.notes.value
    assert not s.errors.outputs  # a labkit error is said once, wrapped in its column (no traceback box)
    s.mode.value = "txt2img"
    assert s.generate().mode == "txt2img"
    s.use_result()
    assert s.mode.value == "img2img" and s.input_image is not None
    assert s.generate(strength=0.5).mode == "img2img"
    s.mode.value = "inpaint"
    with pytest.raises(BadInput, match="mask is empty"):
        s.generate()
    s.mask.stroke([[10, 10], [30, 30]], size=12)
    assert s.generate().mode == "inpaint"


def test_studio_live_regenerates_after_a_control_moves(lab):
    s = studio(lab)
    s.generate()
    s.live.value = True
    s.sampling.cfg.value = 2.5
    assert s.wait(60)
    assert s.result.params.cfg == 2.5 and len(s.gallery.results) == 2
    s.gallery.restore(1)  # restoring settings does not start a run by itself
    assert s.wait(60) and len(s.gallery.results) == 2 and s.sampling.cfg.value != 2.5


def test_studio_interrupt_keeps_the_lab_usable(lab):
    s = studio(lab)
    hook = s.preview.on_step

    def on_step(step, total, latents):
        if step == 1:
            s.preview.interrupt()
        return hook(step, total, latents)

    s.preview.on_step = on_step
    r = s.generate(steps=30)
    assert s.preview.interrupted and s.preview.steps_done == 2 and "interrupted" in s.notes.value
    assert s.gallery.results == []  # a stopped run is shown, not kept
    s.preview.on_step = hook
    done = s.generate(steps=3)
    assert not s.preview.interrupted and s.gallery.results == [done]
    assert np.abs(pixels(done.image) - pixels(r.image)).max() > 0


def test_studio_random_seed_stays_random_and_shows_the_seed_used(lab):
    s = studio(lab)
    s.sampling.seed.value = -1
    r = s.generate()
    assert r.seed >= 0 and s.sampling.seed.value == -1 and f"used {r.seed}" == s.sampling.used.value
    assert s.generate().seed != r.seed  # still random
