"""The classical judge reads toy-world pictures right without sharing code with the generator, and evaluate()
turns a lab's pictures into adherence scores."""

import json
import subprocess
import sys
from itertools import product
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageFilter

import labkit.loading
from labkit.toy import evaluate as ev
from labkit.toy import judge as jd
from labkit.toy import world
from labkit.toy.judge import Verdict, judge, score

COMBOS = list(product(world.SHAPES, world.COLORS, world.BACKGROUNDS))
STYLES = (None, "outlined", "striped")
ATTRIBUTES = ("shape", "color", "background", "style")


def degrade(image, rng, sigma=8.0, blur=0.7):
    """A generated-looking copy: slightly soft (Gaussian blur), then grainy (Gaussian noise of `sigma` levels)."""
    soft = np.asarray(image.filter(ImageFilter.GaussianBlur(blur)), float)
    return Image.fromarray(np.clip(soft + rng.normal(0, sigma, soft.shape), 0, 255).round().astype(np.uint8))


def truth(scene):
    main = scene.objects[0]
    return {"shape": main.shape, "color": main.color, "background": scene.background,
            "style": main.style or "plain"}


def combo_cases(seed, size, noisy=False, style_offset=0):
    """(truth, verdict) for each of the 72 combos, main object 35-75% of the side at a random position; styles
    cycle over the combos, so runs with style offsets 0, 1, 2 give every combo every style."""
    rng = np.random.default_rng(seed)
    cases = []
    for i, (shape, color, background) in enumerate(COMBOS):
        style = STYLES[(i + style_offset) % 3]
        scene = world.sample_scene(rng, style=style, allow_two=False, shape=shape, color=color,
                                   background=background)
        image = scene.render(size)
        cases.append((truth(scene), judge(degrade(image, rng) if noisy else image)))
    return cases


def accuracy(cases, attribute, style=None):
    hits = [getattr(v, attribute) == t[attribute] for t, v in cases if style is None or t["style"] == style]
    return sum(hits) / len(hits)


# ---- independence ------------------------------------------------------------------------------------------

def test_judge_has_its_own_palette_equal_to_the_worlds():
    assert dict(jd.COLORS) == dict(world.COLORS)
    assert dict(jd.BACKGROUNDS) == dict(world.BACKGROUNDS)
    assert set(jd.SHAPES) == set(world.SHAPES)


def test_judge_imports_neither_the_world_nor_torch():
    code = ("import sys, labkit.toy.judge; "
            "print(sorted(m for m in sys.modules if m.startswith(('labkit.toy.world', 'torch', 'diffusers'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "world" not in Path(jd.__file__).read_text()


# ---- accuracy on the world's renders -----------------------------------------------------------------------

@pytest.mark.parametrize("seed,size,style_offset", [(0, 64, 0), (1, 64, 1), (2, 64, 2), (3, 128, 0)])
def test_clean_renders_are_read_right(seed, size, style_offset):
    cases = combo_cases(seed, size, style_offset=style_offset)
    assert accuracy(cases, "color") == 1.0
    assert accuracy(cases, "background") == 1.0
    assert accuracy(cases, "shape") >= 0.97
    for style in ("plain", "outlined", "striped"):
        assert accuracy(cases, "style", style) >= 0.95, style


@pytest.mark.parametrize("seed,style_offset", [(10, 0), (11, 1)])
def test_noisy_soft_renders_are_still_read_right(seed, style_offset):
    cases = combo_cases(seed, 64, noisy=True, style_offset=style_offset)
    for attribute in ATTRIBUTES:
        assert accuracy(cases, attribute) >= 0.95, attribute


@pytest.mark.parametrize("noisy", [False, True])
def test_silhouettes_match_the_drawn_masks(noisy):
    """The silhouette (what toy-controlnet's IoU reads) on the world's own pictures: about 1 on clean renders, still
    high on soft, grainy copies, for every shape, color and background."""
    rng = np.random.default_rng(5)
    ious = []
    for shape, color, background in COMBOS:
        scene = world.Scene([world.Obj(shape, color, 0.5, 0.47, 0.45)], background)
        picture = degrade(scene.render(64), rng) if noisy else scene.render(64)
        mask, found = np.asarray(scene.mask(64)) > 127, jd.silhouette(picture)
        ious.append((mask & found).sum() / (mask | found).sum())
    assert min(ious) >= (0.8 if noisy else 0.9) and np.mean(ious) >= (0.9 if noisy else 0.97)


def test_two_object_scenes_report_the_main_object():
    rng = np.random.default_rng(5)
    cases = []
    for i in range(60):
        scene = world.sample_scene(rng, style=STYLES[i % 3], p_two=1.0)
        image = scene.render(64)
        cases.append((truth(scene), judge(degrade(image, rng) if i % 2 else image)))
    for attribute in ATTRIBUTES:
        assert accuracy(cases, attribute) >= 0.95, attribute
    assert np.mean([v.objects == 2 for _, v in cases]) >= 0.95


def test_a_small_square_beside_a_large_star_leaves_the_star_main():
    # the square has more pixels, but the star is drawn in the larger box
    scene = world.Scene((world.Obj("star", "blue", 0.3, 0.5, 0.45), world.Obj("square", "red", 0.78, 0.5, 0.3)),
                        "gray")
    v = judge(scene.render(64))
    assert (v.shape, v.color, v.objects) == ("star", "blue", 2)


def test_neighbours_joined_by_soft_edges_are_told_apart():
    # 2.6 px apart (the world's smallest gap), blurred: the faint halo between them joins them at first sight
    scene = world.Scene((world.Obj("square", "red", 0.28, 0.5, 0.45), world.Obj("circle", "yellow", 0.695, 0.5, 0.3)),
                        "white")
    v = judge(scene.render(64).filter(ImageFilter.GaussianBlur(1.0)))
    assert (v.shape, v.color, v.objects) == ("square", "red", 2)
    assert v.extent > 0.95


def test_features_match_the_ideal_figures():
    def features(shape):
        return judge(world.Scene((world.Obj(shape, "green", size=0.8),), "black").render(128))

    assert features("square").extent > 0.95
    assert abs(features("circle").extent - np.pi / 4) < 0.03
    assert features("triangle").bottom_share > 0.7 and features("triangle").top_width < 0.3
    assert features("star").solidity < 0.65 and features("circle").solidity > 0.9
    assert 0.05 < features("circle").object_fraction < 0.6


def test_half_tones_do_not_flip_the_color():
    # on white, red's half-tone (233, 143, 143) is nearer orange than red
    scene = world.Scene((world.Obj("square", "red", size=0.7, style="striped"),), "white")
    v = judge(scene.render(64))
    assert (v.color, v.style) == ("red", "striped")


def test_large_pictures_and_arrays_are_accepted():
    scene = world.Scene((world.Obj("triangle", "yellow", 0.4, 0.6, 0.5, "outlined"),), "black")
    big, array = judge(scene.render(256)), judge(np.asarray(scene.render(64)))
    assert (big.shape, big.color, big.style) == (array.shape, array.color, array.style) == \
           ("triangle", "yellow", "outlined")
    with pytest.raises(labkit.BadInput, match="RGB"):
        judge(np.zeros((8, 8)))


def cut(image, background, rows, columns):
    """A copy of the picture with the background painted over rows x columns (a gap cut into a stroke)."""
    pixels = np.array(image)
    pixels[rows, columns] = world.BACKGROUNDS[background]
    return Image.fromarray(pixels)


def outline_with_gap(shape, background, rows, size=64, x=0.5, y=0.5):
    """An outlined purple `shape` (70 % of the side), softened, with `rows` (of a 64 px picture) of its left half
    painted over with the background; and the same picture without the gap."""
    scene = world.Scene((world.Obj(shape, "purple", x, y, 0.7, "outlined"),), background)
    whole = scene.render(size).filter(ImageFilter.GaussianBlur(0.7 * size / 64))
    k = size // 64
    return cut(whole, background, slice(rows.start * k, rows.stop * k), slice(0, round(x * size))), whole


@pytest.mark.parametrize("background", list(world.BACKGROUNDS))
@pytest.mark.parametrize("shape", list(world.SHAPES))
def test_an_outline_with_a_gap_is_still_an_outline_of_its_shape(shape, background):
    # 4 rows of the left half erased at mid-height: the ring no longer encloses anything, as in generated outlines
    # with a faint stretch; the eye closes such gaps, and so does the judge
    image, whole = outline_with_gap(shape, background, slice(32, 36))
    ink = np.linalg.norm(np.asarray(image, float) - world.BACKGROUNDS[background], axis=2) > 20
    assert jd.fill_holes(ink).sum() < ink.sum() * 1.05  # the premise: nothing left to fill
    v, before = judge(image), judge(image, close_gaps=False)
    assert (v.shape, v.color, v.style) == (shape, "purple", "outlined")
    assert before.style != "outlined"  # what the judge read before it closed gaps
    assert v.object_fraction == pytest.approx(judge(whole).object_fraction, abs=0.01)  # shrunk back after growing


def test_gaps_close_up_to_twice_gap_and_in_large_pictures():
    assert jd.GAP * 64 == 5
    for rows, closed in ((slice(27, 37), True), (slice(25, 38), False)):  # 10 and 13 rows
        v = judge(outline_with_gap("square", "gray", rows)[0])
        assert (v.style == "outlined") == closed, rows
    big = judge(outline_with_gap("star", "white", slice(32, 36), size=128)[0])
    assert (big.shape, big.style) == ("star", "outlined")


def test_a_gapped_outline_near_the_border_is_not_glued_to_it():
    # 3 px from the top and left border, an 8-row gap: closing it takes a disk wider than that margin
    image, whole = outline_with_gap("square", "black", slice(28, 36), x=0.4, y=0.4)
    v = judge(image)
    assert (v.shape, v.style) == ("square", "outlined")
    assert v.object_fraction == pytest.approx(judge(whole).object_fraction, abs=0.01)


def test_a_filled_neighbour_is_not_taken_into_a_gapped_outline():
    ring = world.Obj("square", "blue", 0.38, 0.5, 0.6, "outlined")
    neighbour = world.Obj("square", "blue", 0.85, 0.5, 0.22)
    alone = judge(cut(world.Scene((ring,), "gray").render(64), "gray", slice(30, 34), slice(0, 24)))
    image = cut(world.Scene((ring, neighbour), "gray").render(64), "gray", slice(30, 34), slice(0, 24))
    v = judge(image)
    assert (v.shape, v.style) == ("square", "outlined")
    assert v.object_fraction == pytest.approx(alone.object_fraction, abs=0.005)


@pytest.mark.parametrize("style", [None, "striped"])
def test_notched_filled_and_striped_objects_are_not_read_as_outlines(style):
    for shape in world.SHAPES:
        scene = world.Scene((world.Obj(shape, "green", size=0.7, style=style),), "white")
        v = judge(cut(scene.render(64), "white", slice(30, 34), slice(0, 36)))
        assert v.style == (style or "plain"), shape


def test_a_gap_wider_than_the_bridge_stays_open():
    # an outlined square with its whole top side erased is a "U": not bridged, not read as an outline
    scene = world.Scene((world.Obj("square", "blue", 0.5, 0.5, 0.7, "outlined"),), "gray")
    v = judge(cut(scene.render(64), "gray", slice(0, 24), slice(0, 64)))
    assert v.style != "outlined" and v.color == "blue"


def test_within_is_a_disk_dilation():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    assert jd.within(mask, 2).sum() == 13 and jd.within(mask, 1).sum() == 5
    assert jd.within(mask, 2)[4, 2] and not jd.within(mask, 2)[2, 2]
    edge = np.zeros((5, 5), bool)
    edge[0, 0] = True
    assert jd.within(edge, 1).sum() == 3  # clipped at the picture's border


def test_hand_labels_cover_the_outline_evaluation_and_are_counted_right():
    import importlib.util

    path = Path(__file__).parents[2] / "benchmarks" / "judge_vs_eye.py"
    spec = importlib.util.spec_from_file_location("judge_vs_eye", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    labels = json.loads(bench.LABELS.read_text())["labels"]
    assert sorted((row["prompt"], row["seed"]) for row in labels) == \
           sorted(product(ev.prompt_set(style="outlined"), range(3)))
    eyes = [eye for row in labels for eye in row["labellers"]]
    assert {len(row["labellers"]) for row in labels} == {2}
    assert {eye["style"] for eye in eyes} <= {*bench.SEEN_AS_OUTLINE, "ambiguous", "not outlined"}
    assert {eye["shape"] for eye in eyes} <= {*world.SHAPES, None}
    rows = [{"prompt": "an outlined red star on a gray background",
             "labellers": [{"shape": "star", "style": "broken outline"}, {"shape": "star", "style": "ambiguous"}]},
            {"prompt": "an outlined red circle on a gray background",
             "labellers": [{"shape": None, "style": "ambiguous"}, {"shape": "circle", "style": "outlined"}]}]
    found = [SimpleNamespace(shape="star", style="plain"), SimpleNamespace(shape="star", style="outlined")]
    counts = bench.agreement(rows, found, 0)
    assert (counts["eye shape right"], counts["judge shape right"], counts["shape verdicts agree"]) == (1, 1, 2)
    assert (counts["eye sees an outline"], counts["eye sees an outline or maybe"], counts["judge says outlined"],
            counts["style verdicts agree"]) == (1, 2, 1, 0)
    assert bench.agreement(rows, found, 1)["style verdicts agree"] == 2
    assert bench.between_labellers(rows) == {"shape verdicts agree": 1, "style verdicts agree": 0}


# ---- nothing there, and scoring ----------------------------------------------------------------------------

def test_blank_and_speck_pictures_have_no_object():
    rng = np.random.default_rng(0)
    grain = np.clip(128 + rng.normal(0, 8, (64, 64, 3)), 0, 255).astype(np.uint8)
    speck = np.full((64, 64, 3), 15, np.uint8)
    speck[30:33, 30:33] = (220, 40, 40)
    for image, background in ((Image.new("RGB", (64, 64), (245, 245, 245)), "white"),
                              (Image.fromarray(grain), "gray"), (Image.fromarray(speck), "black")):
        v = judge(image)
        assert (v.background, v.color, v.shape, v.style, v.objects) == (background, None, None, None, 0)
        assert score(v, {"shape": "circle", "background": background}) == {"shape": False, "background": True}


def test_score_checks_only_what_was_asked():
    image = world.Scene((world.Obj("circle", "orange", size=0.6),), "gray").render(64)
    assert score(image, {"shape": "circle", "color": "orange", "background": "gray", "style": "plain"}) == \
           {"shape": True, "color": True, "background": True, "style": True}
    assert score(image, {"shape": "star", "color": "orange", "background": None, "style": None}) == \
           {"shape": False, "color": True}
    assert score(image, {"style": "striped"}) == {"style": False}
    assert score(judge(image), {"color": "red"}) == {"color": False}  # a Verdict is accepted too
    assert isinstance(judge(image), Verdict) and judge(image).as_dict()["color"] == "orange"


def test_labelling_and_hole_filling():
    mask = np.zeros((9, 9), bool)
    mask[1:4, 1:4] = True       # a block
    mask[5:8, 5:8] = True       # a ring...
    mask[6, 6] = False          # ...with a one-pixel hole
    mask[4, 4] = True           # touches both only diagonally
    labels = jd.label(mask)
    assert len(np.unique(labels[mask])) == 3 and (labels[~mask] == -1).all()
    filled = jd.fill_holes(mask)
    assert filled[6, 6] and filled.sum() == mask.sum() + 1
    assert jd.depth(filled)[6, 6] == pytest.approx(2.0)


# ---- evaluate ----------------------------------------------------------------------------------------------

class FakeLab:
    """Stands in for a Lab: "generates" by drawing the parsed prompt with the world, softened and grainy.
    `wrong_color=True` draws the next palette color instead of the one asked."""

    name = "fake"

    def __init__(self, wrong_color=False):
        self.wrong_color = wrong_color
        self.calls = []

    def txt2img(self, prompt, seed=0, batch_size=1, steps=20, cfg=7.0, sampler="Euler", refiner=None):
        self.calls.append({"prompt": prompt, "seed": seed, "batch_size": batch_size, "steps": steps,
                           "refiner": refiner})
        seeds = [seed + i for i in range(batch_size)]
        return SimpleNamespace(images=[self.draw(prompt, s) for s in seeds], seeds=seeds)

    def draw(self, prompt, seed):
        asked = world.parse_prompt(prompt)
        color = asked["color"]
        if self.wrong_color:
            names = list(world.COLORS)
            color = names[(names.index(color) + 1) % len(names)]
        rng = np.random.default_rng([seed, len(prompt)])
        scene = world.sample_scene(rng, style=asked["style"], allow_two=False, shape=asked["shape"], color=color,
                                   background=asked["background"])
        return degrade(scene.render(64), rng)


def few_prompts():
    return (ev.prompt_set()[::4] + ev.prompt_set(style="outlined")[1::12]
            + ev.prompt_set(style="striped")[2::12])


def test_prompt_set_and_wanted():
    prompts = ev.prompt_set()
    assert len(prompts) == 72 and prompts[0] == "a red circle on a white background"
    assert ev.wanted("a striped blue star on a gray background") == \
           {"shape": "star", "color": "blue", "background": "gray", "style": "striped"}
    assert ev.wanted("a red circle")["style"] == "plain" and ev.wanted("a red circle")["background"] is None


def test_evaluate_scores_a_faithful_lab_high_and_batches_seeds():
    lab, prompts = FakeLab(), few_prompts()
    scores = ev.evaluate(lab, prompts=prompts, seeds=(0, 1), steps=3)
    assert scores["count"] == 2 * len(prompts) == 2 * 30
    for key in ("color", "shape", "background", "style", "overall"):
        assert scores[key] >= 0.95, key
    assert len(scores["failures"]) == round((1 - scores["overall"]) * scores["count"])
    assert scores["model"] == "fake" and scores["seconds"] >= 0
    assert all(c["seed"] == 0 and c["batch_size"] == 2 and c["steps"] == 3 for c in lab.calls)
    assert [c["prompt"] for c in lab.calls] == prompts


def test_evaluate_scores_a_wrong_color_lab_low():
    scores = ev.evaluate(FakeLab(wrong_color=True), prompts=few_prompts(), seeds=(0,))
    assert scores["color"] <= 0.3
    assert scores["shape"] >= 0.95 and scores["overall"] <= 0.3
    assert all("color" in f["wrong"] for f in scores["failures"])
    failure = scores["failures"][0]
    assert failure["verdict"]["color"] != failure["wanted"]["color"] and failure["seed"] == 0


def test_non_consecutive_seeds_are_split_into_batches():
    lab = FakeLab()
    scores = ev.evaluate(lab, prompts=["a red square on a black background"], seeds=(0, 1, 5), refiner=lab)
    assert [(c["seed"], c["batch_size"]) for c in lab.calls] == [(0, 2), (5, 1)]
    assert all(c["refiner"] is lab for c in lab.calls)
    assert scores["count"] == 3 and scores["settings"]["refiner"] == "fake"
    with pytest.raises(labkit.BadInput, match="style"):
        ev.evaluate(lab, prompts=["a red square"], style="outlined")


def test_results_file_is_merged_not_clobbered(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"other-model": {"color": 0.5}}))
    prompts = ["a green triangle on a white background", "a blue circle on a gray background"]
    ev.evaluate(FakeLab(), prompts=prompts, seeds=(0,), out=path)
    ev.evaluate(FakeLab(wrong_color=True), prompts=prompts, seeds=(0, 1), out=path)  # same key: replaced
    table = json.loads(path.read_text())
    assert table["other-model"] == {"color": 0.5}
    assert table["fake"]["count"] == 4 and table["fake"]["color"] == 0.0 and table["fake"]["failed"] == 4
    assert "failures" not in table["fake"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, like any saved file


def test_evaluate_opens_a_model_by_name_and_the_cli_prints_a_table(monkeypatch, tmp_path, capsys):
    opened, prompts = [], few_prompts()[:5]
    monkeypatch.setattr(labkit.loading, "open", lambda name: opened.append(name) or FakeLab())
    monkeypatch.setattr(ev, "prompt_set", lambda style=None: prompts)
    out = tmp_path / "scores.json"
    scores = ev.main(["toy", "--seeds", "2", "--out", str(out), "--steps", "4"])
    assert opened == ["toy"] and scores["model"] == "toy" and scores["count"] == 10
    assert json.loads(out.read_text())["toy"]["settings"]["steps"] == 4
    printed = capsys.readouterr().out
    assert printed.startswith("toy: 10 pictures") and "color" in printed and "overall" in printed


def test_sample_grid_is_a_labelled_contact_sheet():
    prompts = ["a red circle on a white background", "a blue star on a black background",
               "a long prompt: an outlined green triangle on a gray background"]
    sheet = ev.sample_grid(FakeLab(), prompts, seed=3, columns=2, scale=2)
    cell = 128 + 4
    assert sheet.width == 2 * cell and sheet.height > 2 * cell
    pixels = np.asarray(sheet)
    expected = np.asarray(FakeLab().draw(prompts[1], 3).resize((128, 128), Image.NEAREST))
    assert (pixels[2:130, cell + 2:cell + 130] == expected).all()
    caption = pixels[131:sheet.height // 2, 2:130]
    assert (caption < 100).any()  # dark text under the first picture


def test_inpaint_grid_shows_each_task_before_mask_and_after():
    class FakeInpaintLab:
        def __init__(self):
            self.calls = []

        def inpaint(self, image, mask, prompt, seed=0, mask_blur=4, **kw):
            self.calls.append((prompt, seed, mask_blur, kw))
            return SimpleNamespace(image=Image.new("RGB", image.size, (0, 0, 255)))

    lab = FakeInpaintLab()
    sheet = ev.inpaint_grid(lab, n=2, seed=5, columns=3, steps=4)
    (image, mask, prompt, color), second = ev.inpaint_cases(2)
    assert [c[:2] for c in lab.calls] == [(prompt, 5), (second[2], 6)]  # the fidelity tasks, seed + i
    assert lab.calls[0][2:] == (4, {"steps": 4}) and color in prompt
    cell = 128 + 4
    pixels = np.asarray(sheet)
    assert sheet.width == 3 * cell and sheet.height > 2 * cell
    assert (pixels[2:130, 2:130] == np.asarray(image.resize((128, 128), Image.NEAREST))).all()
    assert (pixels[2:130, cell + 2:cell + 130] == np.asarray(mask.convert("RGB").resize((128, 128), Image.NEAREST))).all()
    assert (pixels[2:130, 2 * cell + 2:2 * cell + 130] == (0, 0, 255)).all()


def test_evaluate_with_loras_tags_every_prompt_and_keys_the_results(tmp_path):
    lab, prompt = FakeLab(), "an outlined red star on a black background"
    path = tmp_path / "scores.json"
    scores = ev.evaluate(lab, prompts=[prompt], seeds=(0,), loras={"outline": 0.8}, out=path)
    assert [c["prompt"] for c in lab.calls] == [prompt + " <lora:outline:0.8>"]  # active for that call only
    assert scores["count"] == 1 and scores["style"] == 1.0  # judged against the prompt without its tag
    assert scores["settings"]["loras"] == {"outline": 0.8}
    assert list(json.loads(path.read_text())) == ["fake <lora:outline:0.8>"]
    assert ev.result_key("toy", None, "outlined", {"outline": 1.0}) == "toy <lora:outline:1> (outlined)"
    assert ev.lora_tags({"a": 1.0, "b": -0.5}) == " <lora:a:1> <lora:b:-0.5>" and ev.lora_tags(None) == ""


def test_lora_command_line_argument():
    assert ev.lora_arg("outline") == ("outline", 1.0) and ev.lora_arg("stripes:0.5") == ("stripes", 0.5)
    with pytest.raises(labkit.BadInput, match="NAME:WEIGHT"):
        ev.lora_arg("outline:strong")


def test_grid_prompts_show_every_shape_and_background():
    asked = [ev.wanted(p) for p in ev.grid_prompts(style="striped")]
    assert len(asked) == 12 and {a["style"] for a in asked} == {"striped"}
    assert {a["shape"] for a in asked} == set(world.SHAPES)
    assert {a["background"] for a in asked} == set(world.BACKGROUNDS)
