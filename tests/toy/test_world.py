"""The toy world: deterministic pictures, exact palette, styles, captions that parse back, masks and edges."""

import re
import subprocess
import sys
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFilter

from labkit.errors import BadInput
from labkit.toy import world
from labkit.toy.world import (BACKGROUNDS, COLORS, SHAPES, STYLES, Obj, Scene, canonical_caption, dataset,
                              inpaint_mask, parse_prompt, prompt_set, sample_scene, to_images, to_tensor_batch)

COMBOS = list(product(SHAPES, COLORS, BACKGROUNDS))
ALL_STYLES = (None, *STYLES)


def one(shape="square", color="red", background="white", size=0.6, style=None, cx=0.5, cy=0.5):
    return Scene((Obj(shape, color, cx, cy, size, style),), background)


def pixels(image):
    return np.asarray(image).astype(int)


def binary(mask_image):
    return np.asarray(mask_image) > 127


def two_object_scenes(n, seed=0):
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, style=ALL_STYLES[i % 3], p_two=1.0) for i in range(n)]


# ---- determinism -------------------------------------------------------------------------------------------

def test_same_seed_gives_identical_pixels_and_captions():
    mix = {None: 1, "outlined": 1, "striped": 1}
    a, b = list(dataset(12, seed=5, style_mix=mix)), list(dataset(12, seed=5, style_mix=mix))
    assert [im.tobytes() for im, _, _ in a] == [im.tobytes() for im, _, _ in b]
    assert [(c, s) for _, c, s in a] == [(c, s) for _, c, s in b]
    c = list(dataset(12, seed=6, style_mix=mix))
    assert all(x[0].tobytes() != y[0].tobytes() for x, y in zip(a, c))
    assert world.example(5, 7, style_mix=mix)[1] == a[7][1]  # item i depends only on (seed, i)


def test_sample_scene_uses_only_the_given_rng():
    first = [sample_scene(np.random.default_rng(3)) for _ in range(2)]
    np.random.seed(0)
    assert first[0] == first[1] == sample_scene(np.random.default_rng(3))


# ---- palette and styles ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,color,background", COMBOS)
def test_object_and_background_have_the_palette_colors(shape, color, background):
    scene = one(shape, color, background)
    rgb = pixels(scene.render(64))
    deep_inside = binary(scene.mask(64).filter(ImageFilter.MinFilter(5)))
    assert deep_inside.sum() > 100
    assert np.abs(rgb[deep_inside].mean(axis=0) - COLORS[color]).max() < 1.0
    for corner in (rgb[:6, :6], rgb[:6, -6:], rgb[-6:, :6], rgb[-6:, -6:]):
        assert (corner == BACKGROUNDS[background]).all()


@pytest.mark.parametrize("shape", ["circle", "square"])
@pytest.mark.parametrize("background", list(BACKGROUNDS))
def test_outlined_is_hollow_and_plain_is_filled(shape, background):
    plain = pixels(one(shape, "blue", background, size=0.7).render(64))
    outlined = one(shape, "blue", background, size=0.7, style="outlined")
    rgb, inside = pixels(outlined.render(64)), binary(outlined.mask(64))
    assert (plain[32, 32] == COLORS["blue"]).all()
    assert (rgb[32, 32] == BACKGROUNDS[background]).all()
    inked = (np.abs(rgb - BACKGROUNDS[background]).sum(axis=2) > 30) & inside
    assert 0.1 < inked.sum() / inside.sum() < 0.4  # a visible ring, not a fill
    assert (rgb[32, 3:61] == COLORS["blue"]).all(axis=1).sum() >= 4  # the ring crosses the middle row twice


@pytest.mark.parametrize("shape", SHAPES)
def test_outlined_covers_much_less_than_plain(shape):
    def ink_share(style):
        scene = one(shape, "green", "black", size=0.7, style=style)
        rgb, inside = pixels(scene.render(64)), binary(scene.mask(64))
        return ((np.abs(rgb - BACKGROUNDS["black"]).sum(axis=2) > 30) & inside).sum() / inside.sum()

    assert ink_share(None) > 0.97
    assert ink_share("outlined") < 0.7


@pytest.mark.parametrize("background", list(BACKGROUNDS))
def test_striped_alternates_rows_of_color_and_half_tone(background):
    column = pixels(one("square", "purple", background, size=0.6, style="striped").render(64))[14:50, 32]
    is_color = (column == COLORS["purple"]).all(axis=1)
    is_half = (column == world.half_tone("purple", background)).all(axis=1)
    assert (is_color | is_half).all()  # the silhouette stays whole: no background rows inside
    assert 0.4 < is_color.mean() < 0.6
    assert np.count_nonzero(np.diff(is_color.astype(int))) >= 8  # many stripes
    plain = pixels(one("square", "purple", background, size=0.6).render(64))[14:50, 32]
    assert (plain == COLORS["purple"]).all()


def test_half_tone_differs_from_both_color_and_background():
    for color, background in product(COLORS, BACKGROUNDS):
        half = np.array(world.half_tone(color, background))
        assert np.abs(half - COLORS[color]).sum() > 40
        assert np.abs(half - BACKGROUNDS[background]).sum() > 40


# ---- captions ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scene,expected", [
    (one("circle", "red", "white"), "a red circle on a white background"),
    (one("star", "orange", "gray"), "an orange star on a gray background"),
    (one("star", "red", "black", style="outlined"), "an outlined red star on a black background"),
    (one("square", "yellow", "white", style="striped"), "a striped yellow square on a white background"),
    (Scene((Obj("circle", "red", 0.3, 0.5, 0.4), Obj("square", "blue", 0.75, 0.5, 0.3)), "white"),
     "a red circle and a blue square on a white background"),
])
def test_canonical_caption(scene, expected):
    assert canonical_caption(scene) == expected
    assert scene.caption(0) == expected


OBJECT = (r"an? (small |large |big )?((outlined|striped) )?(red|orange|yellow|green|blue|purple) "
          r"(circle|square|triangle|star)")
POSITION = r"( (in the (top|bottom) (left|right)|at the (top|bottom)|on the (left|right)|in the center) of| on)"
GRAMMAR = re.compile(rf"{OBJECT}(( and {OBJECT} on)|{POSITION}) a (white|black|gray) background")


def articles_ok(text):
    pairs = re.findall(r"\b(an?) (\w+)", text)
    return bool(pairs) and all((article == "an") == (word[0] in "aeiou") for article, word in pairs)


def test_every_combo_and_style_has_a_grammatical_caption():
    for (shape, color, background), style in product(COMBOS, ALL_STYLES):
        text = canonical_caption(one(shape, color, background, style=style))
        assert GRAMMAR.fullmatch(text), text
        assert articles_ok(text), text
        assert text.endswith(" on a " + background + " background")


def test_variant_captions_are_grammatical_and_varied():
    rng = np.random.default_rng(1)
    scenes = [sample_scene(rng, style=ALL_STYLES[i % 3]) for i in range(300)]
    captions = [text for scene in scenes for text in scene.captions()]
    for text in captions:
        assert GRAMMAR.fullmatch(text), text
        assert articles_ok(text), text
    for word in ("small", "large", "big", " and ", "in the top left", "on the left", "in the center", " of a "):
        assert any(word in text for text in captions), word
    assert all(s.caption(rng) in s.captions() for s in scenes)


def test_size_and_position_words_are_true():
    assert "a small red circle" in one("circle", size=0.36).captions()[1]
    assert one("circle", size=0.7).captions()[1:3] == ("a large red circle on a white background",
                                                       "a big red circle on a white background")
    assert one("circle", size=0.5, cx=0.4).captions() == ("a red circle on a white background",)  # no clear words
    top_left = one("circle", size=0.36, cx=0.22, cy=0.22).captions()
    assert "a red circle in the top left of a white background" in top_left
    assert "a small red circle in the top left of a white background" in top_left
    assert "a red circle on the right of a white background" in one("circle", size=0.4, cx=0.75).captions()


# ---- parse_prompt ------------------------------------------------------------------------------------------

def test_parse_recovers_every_canonical_caption():
    for (shape, color, background), style in product(COMBOS, ALL_STYLES):
        parsed = parse_prompt(canonical_caption(one(shape, color, background, style=style)))
        assert (parsed["shape"], parsed["color"], parsed["background"], parsed["style"]) == \
            (shape, color, background, style)


def test_parse_recovers_every_variant_of_sampled_scenes():
    rng = np.random.default_rng(2)
    for i in range(300):
        scene = sample_scene(rng, style=ALL_STYLES[i % 3])
        for text in scene.captions():
            parsed = parse_prompt(text)
            assert parsed["background"] == scene.background, text
            assert [(o["shape"], o["color"], o["style"]) for o in parsed["objects"]] == \
                [(o.shape, o.color, o.style) for o in scene.objects], text
            for found, obj in zip(parsed["objects"], scene.objects):
                assert found["size"] in (None, *(world.SIZE_WORDS[w] for w in world.size_words(obj))), text
                assert found["position"] in (None, world.position_name(obj)), text


def test_parse_out_of_world_prompts():
    empty = parse_prompt("a photo of a cat")
    assert empty == {"shape": None, "color": None, "style": None, "size": None, "position": None,
                     "background": None, "objects": []}
    odd = parse_prompt("a red circle on a blue background")
    assert (odd["shape"], odd["color"], odd["background"]) == ("circle", "red", None)
    messy = parse_prompt("A (Big:1.2) Purple STAR, grey background <lora:outline:0.7>")
    assert (messy["shape"], messy["color"], messy["size"], messy["background"], messy["style"]) == \
        ("star", "purple", "large", "gray", None)


# ---- prompt set --------------------------------------------------------------------------------------------

def test_prompt_set_covers_all_72_combos():
    prompts = prompt_set()
    assert prompts == prompt_set() and len(prompts) == 72
    found = [(p["shape"], p["color"], p["background"]) for p in map(parse_prompt, prompts)]
    assert found == COMBOS
    varied = prompt_set(n_per=3, seed=1, style="outlined")
    assert len(varied) == 216 and len(set(varied)) > 150
    parsed = list(map(parse_prompt, varied))
    assert [(p["shape"], p["color"], p["background"]) for p in parsed] == [c for c in COMBOS for _ in range(3)]
    assert all(p["style"] == "outlined" for p in parsed)


# ---- geometry: sizes, masks, edges -------------------------------------------------------------------------

@pytest.mark.parametrize("shape,area", [("circle", np.pi / 4), ("square", 1.0), ("triangle", 0.5)])
@pytest.mark.parametrize("size", [0.4, 0.7])
def test_mask_area_matches_the_shape(shape, area, size):
    mask = binary(one(shape, size=size).mask(64))
    expected = area * (size * 64) ** 2
    assert abs(mask.sum() - expected) / expected < 0.06  # binarizing moves the border by up to half a pixel


@pytest.mark.parametrize("shape", SHAPES)
def test_mask_covers_exactly_the_drawn_object(shape):
    scene = one(shape, "yellow", "white", size=0.5, cx=0.4, cy=0.6)
    drawn = np.abs(pixels(scene.render(64)) - BACKGROUNDS["white"]).sum(axis=2) > 0
    mask = binary(scene.mask(64))
    assert not (mask & ~drawn).any()  # every mask pixel shows the object
    assert not (drawn & ~binary(inpaint_mask(scene, 64, grow=1))).any()  # the object lies within mask + 1 px


def test_star_is_upright_with_five_points():
    mask = binary(one("star", size=0.75).mask(256))
    rows = np.flatnonzero(mask.any(axis=1))
    top = mask[rows[0]]
    assert abs(np.flatnonzero(top).mean() - 127.5) < 2  # a single tip on top, centered
    assert np.count_nonzero(np.diff(mask[rows[-1]].astype(int))) == 4  # two feet at the bottom
    radius = 0.75 * 256 / 2
    cy = 128 + radius * (1 - np.cos(np.pi / 5)) / 2
    angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    ring = mask[(cy + 0.8 * radius * np.sin(angles)).astype(int), (128 + 0.8 * radius * np.cos(angles)).astype(int)]
    assert np.count_nonzero(np.diff(np.r_[ring, ring[0]].astype(int)) == 1) == 5  # five arms


def test_triangle_is_upright():
    mask = binary(one("triangle", size=0.75).mask(64))
    widths = mask.sum(axis=1)[mask.any(axis=1)]
    assert widths[0] <= 3 and widths[-1] >= 44 and (np.diff(widths) >= 0).all()


def test_single_objects_have_recognizable_sizes_and_varied_positions():
    rng = np.random.default_rng(4)
    scenes = [sample_scene(rng, allow_two=False) for _ in range(300)]
    sizes = np.array([s.objects[0].size for s in scenes])
    assert sizes.min() >= 0.35 and sizes.max() <= 0.75 and sizes.std() > 0.08
    centers = np.array([(s.objects[0].cx, s.objects[0].cy) for s in scenes])
    assert centers.std(axis=0).min() > 0.04
    for s in scenes:
        o = s.objects[0]
        assert min(o.cx, o.cy) - o.size / 2 >= 0 and max(o.cx, o.cy) + o.size / 2 <= 1
    assert {s.objects[0].shape for s in scenes} == set(SHAPES)
    assert {s.objects[0].color for s in scenes} == set(COLORS)
    assert {s.background for s in scenes} == set(BACKGROUNDS)


def test_two_objects_stay_apart_and_the_second_is_smaller():
    scenes = two_object_scenes(200)
    assert all(len(s.objects) == 2 for s in scenes)
    for scene in scenes:
        main, second = scene.objects
        assert second.size < main.size and second.color != main.color
        for o in scene.objects:  # wholly inside the image
            assert min(o.cx, o.cy) - o.size / 2 >= 0 and max(o.cx, o.cy) + o.size / 2 <= 1
        a, b = binary(scene.mask(64, 0)), binary(scene.mask(64, 1))
        assert (a & b).sum() <= 0.01 * b.sum()
        drawn = np.abs(pixels(scene.render(64)) - BACKGROUNDS[scene.background]).sum(axis=2) > 0
        assert (drawn & b).sum() > (0.25 if second.style == "outlined" else 0.9) * b.sum()  # visible, not hidden


def test_inpaint_mask_grows_the_object_mask():
    scene = one("circle", size=0.5)
    mask, grown = binary(scene.mask(64)), binary(inpaint_mask(scene, 64, grow=3))
    assert not (mask & ~grown).any() and grown.sum() > mask.sum() + 100
    assert (binary(inpaint_mask(scene, 64, grow=0)) == mask).all()


def test_edges_follow_the_drawn_borders():
    scene = one("circle", "green", "gray", size=0.6)
    edges, mask = binary(scene.edges(64)), scene.mask(64)
    band = binary(mask.filter(ImageFilter.MaxFilter(3))) & ~binary(mask.filter(ImageFilter.MinFilter(3)))
    assert edges.sum() > 50 and not (edges & ~band).any()
    striped = binary(one("circle", "green", "gray", size=0.6, style="striped").edges(64))
    outlined = binary(one("circle", "green", "gray", size=0.6, style="outlined").edges(64))
    assert striped.sum() > 2 * edges.sum() and outlined.sum() > 1.5 * edges.sum()


# ---- arrays and API ----------------------------------------------------------------------------------------

def test_tensor_batch_is_in_minus_one_to_one_and_round_trips():
    images = [im for im, _, _ in dataset(4, seed=0, size=32)]
    batch = to_tensor_batch(images)
    assert batch.shape == (4, 3, 32, 32) and batch.dtype == np.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert [im.tobytes() for im in to_images(batch)] == [im.tobytes() for im in images]


def test_style_mix_sets_the_style_of_every_object():
    assert all(o.style == "striped" for _, _, s in dataset(20, seed=1, style_mix="striped") for o in s.objects)
    styles = {s.objects[0].style for _, _, s in dataset(60, seed=1, style_mix={None: 1, "outlined": 1})}
    assert styles == {None, "outlined"}


def test_bad_input_names_the_options():
    with pytest.raises(BadInput, match="circle"):
        Obj("hexagon", "red")
    with pytest.raises(BadInput, match="white"):
        one(background="blue")
    with pytest.raises(BadInput, match="outlined"):
        list(dataset(1, style_mix="wavy"))


def test_import_is_light():
    code = "import sys, labkit.toy.world; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"
