"""Each Studio defect a newcomer met (issue #19), pinned: driven as a front end would drive the panel (traits
set, handlers called), each failing on the Studio before the fix."""

import time
from datetime import datetime

import pytest
from tests.helpers.labs import make_lab

import labkit
from labkit import Params
from labkit.ui import Studio
from labkit.ui.common import png
from labkit.ui.gallery import caption
from labkit.ui.mask import MaskCanvas


@pytest.fixture()
def lab():
    return make_lab("toy", seed=11)


def studio(lab, **kw):
    return Studio(lab, params=Params(prompt="a red circle on a white background", steps=3, sampler="Euler", seed=5),
                  debounce=0.01, **kw)


def test_a_batch_of_four_shows_four_pictures_in_the_panel_and_the_gallery(lab):
    s = studio(lab)
    s.sampling.batch.value = 4
    r = s.generate()
    assert len(r.images) == 4 and len(s.batch_view.pictures) == 4
    assert s.batch_view.layout.display != "none"
    assert [f"seed {seed}" in text for seed, text in zip(r.seeds, s.batch_view.captions)] == [True] * 4
    assert len(s.gallery.pictures) == 4 and len(s.gallery.grid.children) == 4
    s.batch_view.selected = 2  # a click on the third picture: shown large, and what "→ img2img" takes
    assert s.image.value == png(r.images[2])
    s.use_result()
    assert s.input_image.tobytes() == r.images[2].convert("RGB").tobytes()
    s.sampling.batch.value = 1
    s.mode.value = "txt2img"
    s.generate()
    assert s.batch_view.layout.display == "none" and s.batch_view.pictures == []


def test_a_typed_seed_is_used_as_typed_and_not_overwritten(lab):
    s = studio(lab)
    s.sampling.seed.value = 1234
    first, second = s.generate(), s.generate()
    assert first.seed == second.seed == 1234 and s.sampling.seed.value == 1234
    assert s.sampling.used.value == "used 1234"
    s.sampling.dice.click()
    assert s.sampling.seed.value == -1
    drawn = s.generate().seed
    assert s.sampling.seed.value == -1 and s.sampling.used.value == f"used {drawn}"
    s.sampling.recycle.click()
    assert s.sampling.seed.value == drawn and s.generate().seed == drawn


def test_errors_and_notes_go_once_the_next_run_succeeds(lab):
    s = studio(lab)
    s.sampling.width.value = 100  # snapped to 104, and said
    assert "snapped to 104" in s.sampling.note.value
    s.sampling.width.value = 64  # the cause is gone: so is the note
    assert s.sampling.note.value == ""
    s.sampling.width.value = 100
    s.mode.value = "img2img"  # no input picture: an error
    s.start()
    assert s.wait(60) and "→ img2img" in s.notes.value
    s.mode.value = "txt2img"
    s.start()
    assert s.wait(60) and s.result is not None
    assert "labkit-error" not in s.notes.value and not s.errors.outputs and s.sampling.note.value == ""


def test_a_long_error_wraps_inside_the_picture_column(lab):
    from labkit.ui.studio import STYLE

    s = studio(lab)
    s._error(labkit.BadInput("x" * 2000))
    picture_column = s.picture_column
    assert picture_column.layout.width and picture_column.layout.overflow == "hidden"  # cannot widen
    assert "labkit-notes" in s.notes._dom_classes and "overflow-wrap: anywhere" in STYLE
    assert not s.errors.outputs  # no second, unwrapped copy of it


def test_no_empty_box_before_the_first_picture_and_the_picture_shown_once(lab):
    s = studio(lab)
    assert s.image.layout.display == "none" and s.hint.layout.display != "none"
    assert s.preview.image.layout.display == "none"
    s.generate()
    assert s.image.layout.display != "none" and s.hint.layout.display == "none"
    assert s.preview.image.layout.display == "none"  # the step preview is gone once the picture is there


def test_interrupt_looks_idle_while_idle(lab):
    s = studio(lab)
    seen = []
    button = s.preview.interrupt_button
    assert button.disabled and button.button_style == ""
    original = s.preview.on_step

    def spy(step, total, latents):
        seen.append((button.disabled, button.button_style))
        return original(step, total, latents)

    s.preview.on_step = spy
    s.generate()
    assert seen and all(state == (False, "warning") for state in seen)  # live during the run
    assert button.disabled and button.button_style == ""


def test_gallery_captions_tell_pictures_apart_and_hover_gives_the_infotext(lab):
    s = studio(lab)
    s.generate()
    s.prompt.prompt.value = "a blue star on a black background"
    s.generate()
    first, second = (caption(result, i) for result, i in s.gallery.pictures)
    assert "a blue star" in first and "a red circle" in second and "txt2img" in first and "seed 5" in first
    tile = s.gallery.grid.children[0]
    assert "title=" in tile.children[0].value and "Steps: 3, Sampler: Euler" in tile.children[0].value
    assert s.gallery.children[0] is s.gallery.message  # "saved ..." above the tiles, in sight


def test_gallery_caption_names_the_loras():
    lab = labkit.open("toy")
    result = lab.txt2img("a red circle on a white background <lora:outline:0.8>", steps=2, seed=1)
    assert "LoRA outline 0.8" in caption(result)


def test_compare_picks_any_two_gallery_pictures(lab):
    s = studio(lab)
    for cfg in (2.0, 3.0, 4.0):
        s.sampling.cfg.value = cfg
        s.generate()
    assert len(s.compare.pick_a.options) == 3
    assert "CFG 3" in s.compare.labels[0].value and "CFG 4" in s.compare.labels[1].value  # the newest two
    s.compare.pick_a.value = 2  # the oldest
    assert "CFG 2" in s.compare.labels[0].value and s.compare.a is not None
    assert len(s.compare.view.children) == 2 and "CFG 4" in s.compare.labels[1].value


def test_live_typing_starts_one_run_when_typing_pauses(lab):
    s = studio(lab)
    s.typing_pause = 0.3
    runs = []
    original = s._run
    s._run = lambda params, mode=None: runs.append(params.prompt) or original(params, mode)
    s.live.value = True
    for i in range(1, 8):  # a keystroke every 50 ms
        s.prompt.prompt.value = "a blue star"[:i]
        time.sleep(0.05)
    time.sleep(0.5)
    assert s.wait(60) and runs == ["a blue "]  # one run, with the text as it rested


def test_shipped_loras_are_listed_from_the_start():
    s = Studio(labkit.open("toy"))
    found = s.loras.choices
    assert "outline" in found.options and found.rows >= 4  # a list box: in sight without opening anything


def test_the_empty_mask_canvas_points_to_send_to_inpaint_or_upload():
    from pathlib import Path

    js = (Path(labkit.__file__).parent.parent / "widgets" / "mask_canvas.js").read_text()
    assert "\\u2192 inpaint" in js and "upload" in js and "set_image(image) in Python" not in js
    with pytest.raises(labkit.BadInput, match="→ inpaint.*upload"):
        MaskCanvas().mask


def test_typing_200_steps_gives_200_steps(lab):
    s = studio(lab)
    s.sampling.steps.value = 200
    assert s.params.steps == 200 and s.sampling.steps_slider.value == 150
    s.sampling.steps_slider.value = 30
    assert s.params.steps == 30


def test_runs_asked_for_during_a_run_wait_in_a_visible_queue_that_can_be_cleared(lab):
    import threading

    s = studio(lab)
    release, cfgs = threading.Event(), []
    original = s._call

    def call(mode, params):
        cfgs.append(params.cfg)
        if len(cfgs) == 1:
            release.wait(30)  # the first run takes its time
        return original(mode, params)

    s._call = call
    s.sampling.cfg.value = 2.0
    assert s.start()
    for _ in range(600):  # the first run has begun (and waits for `release`)
        if cfgs:
            break
        time.sleep(0.05)
    for cfg in (3.0, 4.0):  # each press queues the settings as they are at the press
        s.sampling.cfg.value = cfg
        s.start()
    assert s.queued.value == "2 queued" and s.clear_queue.layout.display != "none"
    s.clear_queue.click()
    assert s.queued.value == "" and s.clear_queue.layout.display == "none"
    s.sampling.cfg.value = 5.0
    s.start()
    assert s.queued.value == "1 queued"
    release.set()
    assert s.wait(60) and cfgs == [2.0, 5.0] and s.queued.value == ""


def test_the_progress_line_gives_the_time_left():
    from labkit.ui import StepPreview

    preview = StepPreview()
    preview.start(10)
    preview.on_step(3, 10, None)
    assert "step 4/10" in preview.status.value and "s left" in preview.status.value


def test_png_info_reads_a_picture_and_sends_its_settings_with_the_picture(lab, tmp_path):
    source = studio(lab)
    made = source.generate(cfg=3.5, steps=4, seed=77)
    path = made.save(tmp_path / "made.png")
    s = studio(lab)
    s.png_info.upload.value = [{"name": "made.png", "type": "image/png", "size": path.stat().st_size,
                                "content": memoryview(path.read_bytes()),
                                "last_modified": datetime.now()}]
    shown = s.png_info.view.value
    assert "labkit" in shown and "3.5" in shown and "77" in shown and "a red circle" in shown
    assert not s.png_info.buttons["img2img"].disabled
    s.png_info.buttons["img2img"].click()
    assert s.mode.value == "img2img" and s.sampling.seed.value == 77 and s.sampling.cfg.value == 3.5
    assert s.input_image is not None and s.input_image.size == made.image.size
    s.png_info.text.value = "a blue star\nSteps: 12, Sampler: Euler a, CFG scale: 6, Seed: 9, Size: 64x64, Foo: bar"
    s.png_info.read_button.click()
    assert "A1111" in s.png_info.view.value or "a1111" in s.png_info.view.value.lower()
    assert "Foo" in s.png_info.view.value  # what labkit could not map is said
    assert s.png_info.buttons["inpaint"].disabled  # pasted text has no picture to inpaint
    s.png_info.buttons["txt2img"].click()
    assert s.mode.value == "txt2img" and s.prompt.prompt.value == "a blue star" and s.sampling.steps.value == 12
    s.png_info.read(b"not a picture")
    assert "labkit-error" in s.png_info.view.value and s.png_info.buttons["txt2img"].disabled


def test_a_picked_picture_goes_to_inpaint_with_the_mask_tab_open(lab):
    s = studio(lab)
    s.sampling.batch.value = 2
    r = s.generate()
    s.batch_view.selected = 1
    s.to_inpaint.click()
    assert s.mode.value == "inpaint" and s.tabs.selected_index == 1
    assert s.input_image.tobytes() == r.images[1].convert("RGB").tobytes()
    assert (s.mask.image_width, s.mask.image_height) == r.images[1].size


def test_the_xyz_tab_draws_a_labelled_grid_from_a1111_value_texts(lab):
    s = studio(lab)
    x_name, x_values = s.xyz.axes["x"]
    y_name, y_values = s.xyz.axes["y"]
    x_name.value, x_values.value = "cfg", "2-6 (+4)"
    y_name.value, y_values.value = "sampler", "Euler, DPM++ 2M"
    assert s.xyz.start()
    s.xyz.wait()
    grid = s.xyz.grid
    assert grid is not None and len(grid.results) == 4, s.xyz.status.value
    assert {(r.params.cfg, r.params.sampler) for r in grid.results.values()} == {
        (c, n) for c in (2.0, 6.0) for n in ("Euler", "DPM++ 2M")}
    assert s.xyz.image.value[:4] == b"\x89PNG" and s.xyz.image.layout.display != "none"
    assert grid.image.width > 2 * 64 and grid.image.height > 2 * 64  # the cells plus their labels
    y_values.value = "Eulr"
    assert s.xyz.draw() is None and "Euler" in s.xyz.status.value  # the typo said, with what was meant
    assert s.xyz.axes["z"][0].options[-1] == "model" and "Prompt S/R" in s.xyz.axes["z"][0].options


def test_a_gallery_picture_opens_full_size_with_zoom(lab):
    s = studio(lab)
    r = s.generate()
    s.gallery.grid.children[0].children[2].click()  # its "view" button
    assert s.gallery.viewer.layout.display != "none" and s.gallery.viewer.value[:4] == b"\x89PNG"
    assert s.gallery.viewer.layout.width == f"{r.image.width * 2}px"
    s.gallery.zoom.value = 8
    assert s.gallery.viewer.layout.width == f"{r.image.width * 8}px"
    s.gallery.close_view.click()
    assert s.gallery.viewer.layout.display == "none"


def test_the_models_tab_lists_a1111_folders_with_family_badges_and_switching_frees_the_old_model(tmp_path):
    import gc
    import weakref

    first = labkit.open("toy")
    (tmp_path / "models" / "Stable-diffusion").mkdir(parents=True)
    (tmp_path / "models" / "Lora").mkdir()
    first.save_single_file(tmp_path / "models" / "Stable-diffusion" / "mine.safetensors")
    s = Studio(first, models_dir=tmp_path / "models")
    picker = s.models
    files = [label for label, _ in picker.checkpoint.options]
    assert "toy" in files and "toy-xl" in files and "mine.safetensors" in files
    picker.checkpoint.value = str(tmp_path / "models" / "Stable-diffusion" / "mine.safetensors")
    assert "toy" in picker.badges["checkpoint"].value and "checkpoint" in picker.badges["checkpoint"].value
    picker.checkpoint.value = "toy-xl"
    assert "toy-xl" in picker.badges["checkpoint"].value
    gone = weakref.ref(first)
    del first
    assert picker.load() is s.lab and s.lab.family == "toy-xl"
    gc.collect()
    assert gone() is None  # nothing holds the old model any more
    assert s.lab.loras.search_paths[0] == tmp_path / "models" / "Lora"
    assert s.generate(steps=2, seed=1).image.size == (s.lab.native_size,) * 2


def test_results_kept_in_the_gallery_do_not_keep_their_model_alive(tmp_path):
    import gc
    import weakref

    lab = labkit.open("toy")
    path = lab.save_single_file(tmp_path / "mine.safetensors")
    mine = labkit.open(path)
    s = Studio(mine)
    result = s.generate(steps=2, seed=1)
    gone = weakref.ref(mine)
    del mine
    s.set_lab(lab)
    gc.collect()
    assert gone() is None  # switching models freed the file's model, though its results stay in the gallery
    assert result.model.hash == labkit.inspect(path).short_hash  # and their recipes still get its hash


def test_the_gallery_makes_each_tile_once_and_closes_the_ones_it_drops(lab):
    from labkit.ui import Gallery

    gallery = Gallery(limit=3)
    results = [lab.txt2img("a red circle", steps=2, seed=seed) for seed in range(4)]
    gallery.add(results[0])
    first_tile = gallery.grid.children[0]
    gallery.add(results[1])
    assert gallery.grid.children[1] is first_tile  # not made again
    first_tile.children[3].click()  # "restore" on the older picture, now second
    assert "seed 0" in gallery.message.value
    gallery.add(results[2]), gallery.add(results[3])
    assert len(gallery.grid.children) == 3 and first_tile.comm is None  # dropped and closed


def test_the_studio_worker_takes_half_the_cores_on_a_cpu_unless_told(lab):
    import os

    cores = len(os.sched_getaffinity(0))
    assert studio(lab).runner.threads == max(1, cores // 2)
    assert studio(lab, threads=3).runner.threads == 3


def test_controls_that_do_not_apply_are_hidden_or_disabled_with_the_reason(lab):
    s = studio(lab)
    assert s.use_output.disabled and s.to_inpaint.disabled and "first picture" in s.use_output.tooltip
    assert s.sampling.strength.layout.display == "none" and "strength hidden" in s.mode_note.value
    assert s.sampling.switch_at.layout.display == "none" and "no refiner" in s.mode_note.value
    s.mode.value = "img2img"
    assert s.sampling.strength.layout.display != "none" and "input picture" in s.mode_note.value
    s.mode.value = "txt2img"
    s.generate()
    assert not s.use_output.disabled and not s.to_inpaint.disabled


def test_a_picture_dropped_on_png_info_is_read(lab, tmp_path):
    path = studio(lab).generate(cfg=2.5, seed=41).save(tmp_path / "dropped.png")
    s = studio(lab)
    s.png_info.drop._message(s.png_info.drop, {"event": "file", "name": "dropped.png"}, [path.read_bytes()])
    assert "2.5" in s.png_info.view.value and "41" in s.png_info.view.value
    assert not s.png_info.buttons["inpaint"].disabled  # the dropped picture can be inpainted


def test_fractions_sent_back_by_a_browser_slider_are_read_at_the_sliders_precision(lab):
    s = studio(lab)
    s.sampling.cfg.value = 3.4999999999999996  # what Chromium's slider sent back for a restored CFG 3.5
    s.sampling.strength.value = 0.7500000000000001
    p = s.sampling.apply(Params())
    assert (p.cfg, p.strength) == (3.5, 0.75)
    s.sampling.show(Params(cfg=7.25))  # a ComfyUI recipe's CFG stays as it is, not snapped to 7.0
    assert s.sampling.apply(Params()).cfg == 7.25
