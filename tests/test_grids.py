"""labkit.grids: the pure layout, and X/Y/Z grids over tiny random labs (fields, Prompt S/R, LoRA weights, models)."""

import json

import numpy as np
import pytest
import torch
from tests.helpers.labs import make_lab
from PIL import Image

import labkit
from labkit import BadInput, Params
from labkit.grids import auto_upscale, compose, layout
from labkit.result import Result
from tests.helpers.lora_files import kohya_modules, lora_parts, write

BASE = Params(prompt="a red circle on a blue background", steps=2, sampler="Euler", seed=11)


def px(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def noise_image(seed, size=(16, 12)):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def ink(region) -> int:
    """How many dark (text) pixels a region of a white-background picture holds."""
    return int((px(region).min(axis=2) < 128).sum())


def scaled(image, k):
    return image.resize((image.width * k, image.height * k), Image.Resampling.NEAREST)


def echo(params, **kw):
    """A non-Lab callable grid accepts: its picture is a flat colour from the settings."""
    return Result(images=[Image.new("RGB", (16, 16), (len(params.prompt) * 5 % 256, int(params.cfg * 10), 0))],
                  params=params, seeds=[params.seed])


@pytest.fixture(scope="module")
def lab():
    return make_lab("toy", seed=3)


# ---- layout ----------------------------------------------------------------------------------------------------
def test_compose_puts_each_cell_in_its_box_with_labels_beside_it():
    images = {(xi, yi, zi): noise_image(100 * zi + 10 * yi + xi) for xi in range(3) for yi in range(2) for zi in range(2)}
    labels = (["cfg: 2", "cfg: 7", "cfg: 12"], ["Euler", "DPM++ 2M"], ["model a", "model b"])
    picture = compose(images, *labels, upscale=3)
    plan = layout({i: im.size for i, im in images.items()}, *labels, upscale=3)
    assert picture.size == plan.size
    for index, box in plan.boxes.items():
        assert box[2] - box[0] == 48 and box[3] - box[1] == 36
        assert np.array_equal(px(picture.crop(box)), px(scaled(images[index], 3)))
    b = plan.boxes
    assert b[(0, 0, 0)][0] < b[(1, 0, 0)][0] < b[(2, 0, 0)][0] < b[(0, 0, 1)][0]  # x across, z panels to the right
    assert b[(0, 0, 0)][1] < b[(0, 1, 0)][1] and b[(0, 0, 0)][1] == b[(0, 0, 1)][1]  # y down, panels side by side
    left, top = b[(0, 0, 0)][:2]
    assert left > 0 and top > 0
    for xi in range(3):  # a label above every column, a label left of every row, a title over every panel
        l, t, r, _ = b[(xi, 0, 0)]
        assert ink(picture.crop((l, 0, r, t))) > 0
    for yi in range(2):
        _, t, _, bottom = b[(0, yi, 0)]
        assert ink(picture.crop((0, t, left, bottom))) > 0
    assert ink(picture.crop((0, 0, left, top))) == 0  # the corner above the row labels stays blank
    title = [text_box for lines, text_box in plan.labels if lines == ["model b"]][0]
    assert title[0] >= b[(2, 0, 0)][2] and ink(picture.crop(title)) > 0


def test_layout_without_labels_is_exactly_the_cells():
    sizes = {(xi, 0, 0): (64, 64) for xi in range(4)}
    bare = layout(sizes, upscale=2)
    assert bare.size == (4 * 128, 128) and bare.labels == []
    assert [bare.boxes[(xi, 0, 0)][0] for xi in range(4)] == [0, 128, 256, 384]
    mixed = layout({(0, 0, 0): (64, 64), (1, 0, 0): (32, 16)}, upscale=2)
    assert mixed.boxes[(1, 0, 0)] == (128 + 32, 48, 128 + 96, 80)  # a smaller cell sits centred in its slot
    with_x = layout(sizes, ["a", "b", "c", "d"], upscale=2)
    top = with_x.boxes[(0, 0, 0)][1]
    assert with_x.size == (4 * 128, top + 128) and top > 0


def test_long_labels_wrap_within_their_column():
    plan = layout({(0, 0, 0): (64, 64), (1, 0, 0): (64, 64)}, ["a very long label that cannot fit one line", "b"])
    lines = plan.labels[0][0]
    assert len(lines) > 1 and all(plan.font.getlength(s) <= 64 for s in lines)


def test_auto_upscale_reaches_128_pixels():
    assert [auto_upscale([(s, s)]) for s in (64, 48, 128, 512)] == [2, 3, 1, 1]
    assert auto_upscale([(64, 32), (64, 64)]) == 2


# ---- grids on a lab --------------------------------------------------------------------------------------------
def test_cfg_by_sampler_grid_shares_the_seed_and_varies_only_those_fields(lab):
    g = labkit.grid(lab.txt2img, BASE.replace(seed=-1), x=("cfg", [2.0, 7.0]), y=("Sampler", ["Euler", "DDIM"]),
                    progress=False)
    first = g.results[(0, 0, 0)].params
    assert first.seed != -1 and g.base.seed == first.seed
    for (cfg, sampler, _), r in g.cells():
        assert r.seed == first.seed
        assert r.params == first.replace(cfg=cfg, sampler=sampler)
    assert g.result(x=7.0, y="DDIM").params.cfg == 7.0 and g.result(x=7, y="DDIM").params.sampler == "DDIM"
    direct = lab.txt2img(params=g.result(x=7.0, y="DDIM").params)
    assert np.array_equal(px(direct.image), px(g.result(x=7.0, y="DDIM").image))
    images = [px(r.image) for r in g.results.values()]
    assert not np.array_equal(images[0], images[1])  # cfg changes the picture
    plan = layout({i: r.image.size for i, r in g.results.items()}, *(g.axes[a].labels for a in "xy"), [],
                  upscale=g.upscale)
    assert g.upscale == 2 and g.image.size == plan.size
    for index, box in plan.boxes.items():  # the picture shows each cell's own image where its labels say
        assert np.array_equal(px(g.image.crop(box)), px(scaled(g.results[index].image, 2)))
    assert g.axes["x"].labels == ["cfg: 2", "cfg: 7"] and g.axes["y"].labels == ["sampler: Euler", "sampler: DDIM"]


def test_axes_take_a1111_value_text():
    """("cfg", "2-6 (+2)") is the grid of [2.0, 4.0, 6.0]: the same cells, labels and pictures."""
    text = labkit.grid(echo, BASE, x=("CFG Scale", "2-6 (+2)"), y=("sampler", "Euler, DDIM"), progress=False)
    listed = labkit.grid(echo, BASE, x=("CFG Scale", [2.0, 4.0, 6.0]), y=("sampler", ["Euler", "DDIM"]),
                         progress=False)
    assert text.axes["x"].values == (2.0, 4.0, 6.0) and text.axes["y"].values == ("Euler", "DDIM")
    assert px(text.image).tolist() == px(listed.image).tolist()


def test_img2img_grid_passes_the_image_and_varies_denoising(lab):
    start = noise_image(1, (64, 64))
    g = labkit.grid(lab.img2img, BASE, x=("Denoising", [0.5, 1.0]), image=start, progress=False)
    assert [r.params.strength for _, r in g.cells()] == [0.5, 1.0]
    assert all(r.mode == "img2img" for r in g.results.values())
    assert np.array_equal(px(g.results[(0, 0, 0)].image), px(lab.img2img(start, params=BASE, strength=0.5).image))


def test_prompt_search_and_replace_changes_prompt_and_negative_prompt():
    base = Params(prompt="a red circle", negative_prompt="red blur", seed=5)
    g = labkit.grid(echo, base, x=("Prompt S/R", ["red", "blue", "green"]), y=("cfg", [1, 2]), progress=False)
    assert [g.result(x=c, y=1).params.prompt for c in ("red", "blue", "green")] == \
        ["a red circle", "a blue circle", "a green circle"]
    assert g.result(x="green", y=2).params.negative_prompt == "green blur"
    assert g.axes["x"].labels == ["red", "blue", "green"]
    with pytest.raises(BadInput, match="not in the prompt"):
        labkit.grid(echo, base, x=("Prompt S/R", ["yellow", "blue"]), progress=False)


def test_lora_axis_changes_the_picture_and_restores_the_lora(tmp_path):
    lab = make_lab("toy", seed=4)
    lab.loras.load(write(tmp_path / "ink.safetensors", kohya_modules(lab, "kohya"), lora_parts), weight=0.7)
    lab.loras.disable("ink")
    before = lab.txt2img(params=BASE)
    unet = {k: v.clone() for k, v in lab.components["unet"].state_dict().items()}
    g = labkit.grid(lab.txt2img, BASE, x=("lora:ink", [0.0, 1.0]), progress=False)
    off, on = g.results[(0, 0, 0)], g.results[(1, 0, 0)]
    assert np.array_equal(px(off.image), px(before.image))  # weight 0 is the model itself
    assert np.abs(px(on.image) - px(before.image)).mean() > 0.5
    assert on.params.prompt == BASE.prompt + " <lora:ink:1>" and on.model.loras[0].weight == 1.0
    info = lab.loras.info("ink")
    assert info.weights == (0.7, 0.7) and not info.enabled
    after = lab.components["unet"].state_dict()
    assert all(torch.equal(after[k], v) for k, v in unet.items())  # the LoRA is out of the weights again
    assert np.array_equal(px(lab.txt2img(params=BASE).image), px(before.image))

    calls = []

    def fail_in_second_cell(step, total, latents):
        calls.append(step)
        if len(calls) > BASE.steps:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        labkit.grid(lab.txt2img, BASE, x=("lora:ink", [0.5, 2.0]), on_step=fail_in_second_cell, progress=False)
    info = lab.loras.info("ink")
    assert info.weights == (0.7, 0.7) and not info.enabled
    assert np.array_equal(px(lab.txt2img(params=BASE).image), px(before.image))


def test_model_axis_runs_each_lab_with_the_same_seed():
    a, b = make_lab("toy", seed=1, name="alpha"), make_lab("toy", seed=2, name="beta")
    base = BASE.replace(model="alpha")  # e.g. a recipe read from a file: each Lab records its own name
    g = labkit.grid(a.txt2img, base, x=("model", [a, b]), y=("steps", [1, 2]), progress=False)
    assert g.axes["x"].labels == ["alpha", "beta"]
    beta = g.result(x="beta", y=2)
    assert beta is g.result(x=b, y=2) and beta.params.model == "beta" and beta.model.name == "beta"
    assert beta.params == g.result(x="alpha", y=2).params.replace(model="beta")
    assert np.array_equal(px(beta.image), px(b.txt2img(params=BASE).image))
    assert not np.array_equal(px(beta.image), px(g.result(x="alpha", y=2).image))


def test_bad_axes_raise_bad_input_that_says_what_to_use(lab):
    with pytest.raises(BadInput, match="Unknown axis 'cfg_scale'.*cfg, sampler") as e:
        labkit.grid(echo, BASE, x=("cfg_scale", [1, 2]), progress=False)
    assert "Prompt S/R" in str(e.value) and "lora:<name>" in str(e.value)
    with pytest.raises(BadInput, match="Lab method"):
        labkit.grid(echo, BASE, x=("lora:ink", [0, 1]), progress=False)
    with pytest.raises(BadInput, match="No LoRA named 'ink'"):
        labkit.grid(lab.txt2img, BASE, x=("lora:ink", [0, 1]), progress=False)
    with pytest.raises(BadInput, match="values must be a list"):
        labkit.grid(lab.txt2img, BASE, x=("sampler", b"Euler"), progress=False)
    with pytest.raises(BadInput, match="Axis 'steps'='a-b'.*Write int values as A1111 does"):
        labkit.grid(lab.txt2img, BASE, x=("steps", "a-b"), progress=False)
    with pytest.raises(BadInput, match="same thing"):
        labkit.grid(lab.txt2img, BASE, x=("cfg", [1, 2]), y=("CFG Scale", [3, 4]), progress=False)
    with pytest.raises(BadInput, match="steps=0"):  # checked before the first cell runs
        labkit.grid(lab.txt2img, BASE, x=("steps", [2, 0]), progress=False)
    with pytest.raises(BadInput, match="Nonsense"):
        labkit.grid(lab.txt2img, BASE, x=("sampler", ["Euler", "Nonsense"]), progress=False)
    g = labkit.grid(echo, BASE, x=("cfg", [1, 2]), progress=False)
    with pytest.raises(BadInput, match="cfg: 1, cfg: 2|1, 2"):
        g.result(x=3)


def test_save_writes_axes_and_recipe_and_never_overwrites(tmp_path):
    g = labkit.grid(echo, BASE, x=("cfg", [1.5, 2.5]), y=("Seed", [3, 4]), progress=False)
    path = g.save(tmp_path / "grid.png")
    data = path.read_bytes()
    with Image.open(path) as saved:
        described = json.loads(saved.text["labkit.grid"])
        assert saved.size == g.image.size
    assert described["axes"]["x"] == {"name": "cfg", "values": ["1.5", "2.5"]}
    assert described["axes"]["y"]["values"] == ["3", "4"] and described["base"]["prompt"] == BASE.prompt
    assert labkit.read_params(path) == g.results[(0, 0, 0)].params  # as A1111's grids: the first cell's recipe
    with pytest.raises(BadInput, match="already exists"):
        g.save(path)
    assert path.read_bytes() == data
    assert g._repr_png_().startswith(b"\x89PNG")
