"""A1111 prompt syntax: weights, tags, schedules (pure), then chunked and weighted embeddings on toy components,
with parity against diffusers' own `encode_prompt` for plain prompts."""

import math
import subprocess
import sys
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import BadInput
from labkit.prompts import (BREAK, LoraTag, encode, encode_schedule, extract_loras, extract_networks, parse_weights,
                            prompt_at, schedule, tokenize_chunks)
from tests.helpers.labs import make_lab

W = 1.1

# ---- parse_weights ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("a red circle", [("a red circle", 1.0)]),
    ("a (red:1.5) circle", [("a ", 1.0), ("red", 1.5), (" circle", 1.0)]),
    ("a (red) circle", [("a ", 1.0), ("red", W), (" circle", 1.0)]),
    ("((red))", [("red", W * W)]),
    ("[red]", [("red", 1 / W)]),
    ("[[red]]", [("red", 1 / W / W)]),
    ("((red:1.3))", [("red", 1.3 * W)]),
    ("(red: 0.5 )", [("red", 0.5)]),
    ("(red:-1)", [("red", -1.0)]),
    ("(a [b] c)", [("a ", W), ("b", W / W), (" c", W)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", W)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.3 * W * W), (" ", W), ("on", W / W), (" a ", W), ("hill", 0.5 * W),
      (", sun, ", W), ("sky", W * W * W * W), (".", W)]),
    ("", [("", 1.0)]),
])
def test_weights_table(text, expected):
    got = parse_weights(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected], rel=1e-12)


@pytest.mark.parametrize("text, expected", [
    (r"\(literal\]", [("(literal]", 1.0)]),
    (r"a \\ b", [("a \\ b", 1.0)]),
    (r"\(a\) (b)", [("(a) ", 1.0), ("b", W)]),
    (r"a\b", [("ab", 1.0)]),  # a backslash before anything else is dropped, as in A1111
])
def test_escapes(text, expected):
    assert parse_weights(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("(unbalanced", [("unbalanced", W)]),  # an unclosed bracket runs to the end
    ("a [b", [("a ", 1.0), ("b", 1 / W)]),
    ("a) b]", [("a) b]", 1.0)]),  # unmatched closers are text
    ("(a:b)", [("a:b", W)]),  # a colon without a number is text
    ("(a:1.2", [("a:1.2", W)]),  # unclosed weighted bracket: plain (x1.1), the colon is text
    ("(a:1.2.3)", [("a:1.2.3", W)]),  # A1111 crashes here; labkit reads it as text
    ("a:1.5) b", [("a:1.5) b", 1.0)]),  # a weight with no open bracket is text
    ("([a)]", [("a", W / W)]),  # crossed brackets close by kind
])
def test_unbalanced_brackets_are_lenient(text, expected):
    got = parse_weights(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_break_is_a_marker_also_inside_brackets():
    assert parse_weights("a cat BREAK a dog") == [("a cat", 1.0), BREAK, ("a dog", 1.0)]
    assert parse_weights("(a BREAK b)") == [("a", W), BREAK, ("b", W)]
    assert parse_weights("BREAKFAST break") == [("BREAKFAST break", 1.0)]  # whole upper-case word only
    assert parse_weights("BREAK") == [BREAK]


def test_overflowing_weight_is_bad_input():
    with pytest.raises(BadInput, match="overflows"):
        parse_weights("(a:" + "9" * 400 + ")")


# ---- LoRA and other extra-network tags -------------------------------------------------------------------


@pytest.mark.parametrize("text, rest, tags", [
    ("a star <lora:outline:0.7>", "a star ", [LoraTag("outline", 0.7, 0.7)]),
    ("<lora:a>, x", ", x", [LoraTag("a", 1.0, 1.0)]),
    ("<lora:a:0.5:0.2>", "", [LoraTag("a", 0.5, 0.2)]),
    ("<lora:a:te=0.3:unet=0.9>", "", [LoraTag("a", 0.3, 0.9)]),
    ("<lora:a:0.4:unet=0>", "", [LoraTag("a", 0.4, 0.0)]),
    ("<lyco:b:-1> c <lora:d:2>", " c ", [LoraTag("b", -1.0, -1.0), LoraTag("d", 2.0, 2.0)]),
    ("a < b > c <lora>", "a < b > c <lora>", []),
])
def test_lora_tags(text, rest, tags):
    assert extract_loras(text) == (rest, tags)


def test_other_tags_are_removed_and_reported():
    assert extract_networks("x <hypernet:h:1> y") == ("x  y", [], ["<hypernet:h:1>"])
    with pytest.warns(UserWarning, match="hypernet"):
        assert extract_loras("x <hypernet:h:1>") == ("x ", [])


@pytest.mark.parametrize("tag", ["<lora:a:abc>", "<lora:a:1:1:8>", "<lora::1>", "<lora:a:inf>", "<lora:a:dyn=4>"])
def test_bad_lora_tags_say_what_to_write(tag):
    with pytest.raises(BadInput, match="lora"):
        extract_loras(tag)


# ---- schedules -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [  # steps = 10
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [b::3]", [(3, "a b"), (10, "a ")]),
    ("a [b:c:0.25]", [(2, "a b"), (10, "a c")]),  # 0.25 * 10 = 2.5 -> step 2
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("([a:b:5]:1.2)", [(5, "(a:1.2)"), (10, "(b:1.2)")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a:b:0]", [(10, "b")]),
    ("[a:b:50]", [(10, "a")]),  # beyond the last step: never switches
    ("[a:b:1.0]", [(10, "a")]),  # a decimal point means a fraction: 1.0 = all steps
    ("x|y [a:b:3]", [(10, "x|y [a:b:3]")]),  # a bare | is not the grammar: no scheduling at all
    ("a \\[b:c:3\\]", [(10, "a \\[b:c:3\\]")]),
    ("a [b:3] \\", [(10, "a [b:3] \\")]),  # a trailing lone backslash: unreadable, unscheduled
])
def test_schedule_table(text, expected):
    assert schedule(text, 10) == expected


def test_old_timelines_read_numbers_below_one_as_fractions():
    assert schedule("[a:b:1.0]", 10, old_timelines=True) == [(1, "a"), (10, "b")]
    assert schedule("[a:b:0.5]", 10, old_timelines=True) == schedule("[a:b:0.5]", 10) == [(5, "a"), (10, "b")]


def test_alternation_changes_every_step():
    assert schedule("[fe|]male", 4) == [(1, "female"), (2, "male"), (3, "female"), (4, "male")]
    assert [t for _, t in schedule("[a|b|c] [x:y:2]", 4)] == ["a x", "b x", "c y", "a y"]
    assert [t for _, t in schedule("[a|(b:1.1)]", 3)] == ["a", "(b:1.1)", "a"]


def test_prompt_at_counts_sampler_steps_from_zero_like_a1111():
    entries = schedule("[cat:dog:2]", 4)
    assert [prompt_at(entries, i) for i in range(4)] == ["cat", "cat", "cat", "dog"]
    assert [prompt_at(schedule("[a|b]", 5), i) for i in range(5)] == ["a", "a", "b", "a", "b"]


def test_schedule_needs_steps():
    with pytest.raises(BadInput):
        schedule("a", 0)


# ---- properties: arbitrary text never breaks the parsers --------------------------------------------------

FRAGMENTS = st.sampled_from(list("ab ,:|()[]<>\\.0123456789-\n") + ["BREAK", "lora", "<lora:x:0.5>", "hypernet",
                                                                     "1e400", "é", "9" * 320])
PROMPTS = st.one_of(st.text(max_size=60), st.lists(FRAGMENTS, max_size=40).map("".join))


@settings(max_examples=300, deadline=None)
@given(PROMPTS, st.integers(1, 30))
def test_parsers_accept_any_text(text, steps):
    try:
        pieces = parse_weights(text)
        assert all(p == BREAK or (isinstance(p[0], str) and math.isfinite(p[1])) for p in pieces)
    except BadInput as e:
        assert "overflows" in str(e)
    entries = schedule(text, steps)
    ends = [end for end, _ in entries]
    assert ends == sorted(set(ends)) and ends[-1] == steps and ends[0] >= 1
    assert all(isinstance(t, str) for _, t in entries)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rest, tags = extract_loras(text)
        assert len(rest) <= len(text) and all(math.isfinite(t.te_weight) for t in tags)
    except BadInput:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="abc xyz,.!?", max_size=50))
def test_plain_text_passes_through(text):
    assert parse_weights(text) == [(text, 1.0)]
    assert schedule(text, 7) == [(7, text)]
    assert extract_loras(text) == (text, [])


def test_import_does_not_load_torch():
    code = "import sys, labkit.prompts; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- chunks ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The toy encoders' matrices are tiny: one thread avoids spin-waiting on busy shared cores (~100x here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sd():
    return make_lab("toy", name="prompts-sd")


@pytest.fixture(scope="module")
def xl():
    return make_lab("toy-xl", name="prompts-xl")


@pytest.fixture(scope="module")
def refiner():
    return make_lab("toy-xl-refiner", name="prompts-refiner")


def ids_of(tok, word):
    return tok(word, add_special_tokens=False).input_ids


def body(chunk):
    """The prompt tokens of a chunk (between BOS and the first EOS)."""
    return chunk.ids[1:chunk.ids.index(49407)]


def test_a_100_token_prompt_makes_two_chunks(sd):
    tok = sd.components["tokenizer"]
    red, = ids_of(tok, "red")
    chunks = tokenize_chunks(tok, "red " * 100)
    assert [len(c.ids) for c in chunks] == [77, 77]
    assert body(chunks[0]) == [red] * 75 and body(chunks[1]) == [red] * 25
    assert chunks[1].ids[:1] == [49406] and chunks[1].ids[26:] == [49407] * 51
    assert encode(sd, "red " * 100)["prompt_embeds"].shape == (1, 154, 64)


def test_a_chunk_breaks_after_the_last_comma_within_20_tokens(sd):
    tok = sd.components["tokenizer"]
    red, comma, blue = (ids_of(tok, w)[0] for w in ("red", ",", "blue"))
    text = "red " * 70 + ", " + "blue " * 10
    first, second = tokenize_chunks(tok, text)
    assert body(first) == [red] * 70 + [comma] and body(second) == [blue] * 10
    first, second = tokenize_chunks(tok, text, backtrack=0)  # A1111 with the option off: a hard cut at 75
    assert body(first) == [red] * 70 + [comma] + [blue] * 4 and body(second) == [blue] * 6
    far = "red " * 50 + ", " + "blue " * 40  # the comma is 25 tokens back: too far, hard cut
    assert len(body(tokenize_chunks(tok, far)[0])) == 75


def test_break_starts_a_new_chunk(sd, xl):
    tok = sd.components["tokenizer"]
    chunks = tokenize_chunks(tok, "a red circle BREAK a blue square")
    assert [body(c) for c in chunks] == [ids_of(tok, "a red circle"), ids_of(tok, "a blue square")]
    assert [body(c) for c in tokenize_chunks(tok, "BREAK a")] == [[], ids_of(tok, "a")]  # A1111: empty first
    assert len(tokenize_chunks(tok, "a BREAK")) == 1
    assert encode(xl, "a red circle BREAK a blue square")["prompt_embeds"].shape == (1, 154, 160)


def test_weights_follow_their_tokens(sd):
    tok = sd.components["tokenizer"]
    chunk, = tokenize_chunks(tok, "a (red:1.5) [circle]")
    assert chunk.weights[:5] == pytest.approx([1.0, 1.0, 1.5, 1 / W, 1.0]) and set(chunk.weights[4:]) == {1.0}
    literal, = tokenize_chunks(tok, "a (red:1.5)", emphasis="None")  # A1111 "None": brackets are text
    assert ids_of(tok, "(")[0] in literal.ids and set(literal.weights) == {1.0}


# ---- emphasis --------------------------------------------------------------------------------------------------


def test_no_norm_scales_only_the_weighted_tokens(sd):
    plain = encode(sd, "a red circle")["prompt_embeds"]
    weighted = encode(sd, "a (red:1.5) circle", emphasis="No norm")["prompt_embeds"]
    changed = (weighted != plain).any(dim=-1)[0]  # (77,)
    assert changed.nonzero().flatten().tolist() == [2]  # BOS, a, red
    torch.testing.assert_close(weighted[0, 2], plain[0, 2] * 1.5)


def test_original_emphasis_restores_the_mean(xl):
    # xl: its penultimate hidden states have a clear mean (the toy SD's final layer norm, untrained, centres it at 0)
    plain = encode(xl, "a red circle")["prompt_embeds"]
    original = encode(xl, "a (red:1.5) circle")["prompt_embeds"]
    no_norm = encode(xl, "a (red:1.5) circle", emphasis="No norm")["prompt_embeds"]
    drift = abs(no_norm.mean().item() - plain.mean().item())
    assert drift > 1e-6 and abs(original.mean().item() - plain.mean().item()) < drift / 100
    for cols in (slice(0, 64), slice(64, 160)):  # A1111 normalises each encoder's chunk on its own
        p, n = plain[..., cols], no_norm[..., cols]
        torch.testing.assert_close(original[..., cols], n * (p.mean() / n.mean()))
    assert torch.equal(encode(xl, "a (red:1.5) circle", emphasis="Ignore")["prompt_embeds"], plain)
    with pytest.raises(BadInput):
        encode(xl, "a", emphasis="strong")


# ---- parity with diffusers for plain prompts ----------------------------------------------------------------


def diffusers_embeds(lab, prompt, negative, clip_skip=None):
    with torch.no_grad():
        out = lab.pipe.encode_prompt(prompt=prompt, device="cpu", num_images_per_prompt=1,
                                     do_classifier_free_guidance=True, negative_prompt=negative, clip_skip=clip_skip)
    names = ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
    return {k: v for k, v in zip(names, out) if v is not None}


PROMPT = "a red circle on a blue background, soft light"


def assert_same(mine, theirs):
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key


def test_sd_parity(sd):
    assert_same(encode(sd, PROMPT, "blurry, dark"), diffusers_embeds(sd, PROMPT, "blurry, dark"))
    assert_same(encode(sd, PROMPT), diffusers_embeds(sd, PROMPT, None))


def test_sd_clip_skip_2_is_the_normed_penultimate_layer(sd):
    tok, te = sd.components["tokenizer"], sd.components["text_encoder"]
    ids = tok(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = te.final_layer_norm(te(ids, output_hidden_states=True).hidden_states[-2])  # (1, 77, 64)
    got = encode(sd, PROMPT, clip_skip=2)["prompt_embeds"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(got, encode(sd, PROMPT)["prompt_embeds"])
    with pytest.raises(BadInput, match="clip_skip"):
        encode(sd, PROMPT, clip_skip=0)


def test_xl_parity_and_zero_empty_negative(xl):
    assert_same(encode(xl, PROMPT, "blurry, dark"), diffusers_embeds(xl, PROMPT, "blurry, dark"))
    mine = encode(xl, PROMPT)
    assert_same(mine, diffusers_embeds(xl, PROMPT, None))  # force_zeros_for_empty_prompt
    assert not mine["negative_prompt_embeds"].any() and not mine["negative_pooled_prompt_embeds"].any()
    assert encode(xl, PROMPT, zero_empty_negative=False)["negative_prompt_embeds"].any()
    ours = encode(xl, PROMPT, clip_skip=2)["prompt_embeds"]
    assert torch.equal(ours, diffusers_embeds(xl, PROMPT, "x", clip_skip=1)["prompt_embeds"])  # diffusers' 1


def test_refiner_parity_does_not_zero_the_empty_negative(refiner):
    mine = encode(refiner, PROMPT)
    assert mine["prompt_embeds"].shape == (1, 77, 96) and mine["pooled_prompt_embeds"].shape == (1, 96)
    assert_same(mine, diffusers_embeds(refiner, PROMPT, ""))  # refiner config: force_zeros_for_empty_prompt False
    assert mine["negative_prompt_embeds"].any()
    assert_same(encode(refiner.components, PROMPT, "blurry"), diffusers_embeds(refiner, PROMPT, "blurry"))


def test_textual_inversion_tokens_expand_like_diffusers():
    lab = make_lab("toy", seed=1, name="prompts-ti")  # its own Lab: loading a token changes the tokenizer
    tok, te = lab.components["tokenizer"], lab.components["text_encoder"]
    lab.pipe.load_textual_inversion(torch.randn(3, 64), token="<shape>", text_encoder=te, tokenizer=tok)
    prompt = "a <shape> on a (blue:1.0) background"
    assert_same(encode(lab, prompt, "x"), diffusers_embeds(lab, prompt.replace("(blue:1.0)", "blue"), "x"))
    first, second = tokenize_chunks(tok, "red " * 74 + "<shape>")  # three vectors never split across chunks
    assert len(body(first)) == 74 and body(second) == tok.convert_tokens_to_ids(["<shape>", "<shape>_1", "<shape>_2"])


# ---- long prompts: padding, pooled ----------------------------------------------------------------------------


def test_the_shorter_prompt_is_padded_with_empty_chunks(xl):
    out = encode(xl, "red " * 100, "blurry")
    assert out["prompt_embeds"].shape == out["negative_prompt_embeds"].shape == (1, 154, 160)
    neg = out["negative_prompt_embeds"]
    assert torch.equal(neg[:, :77], encode(xl, "blurry", "x")["prompt_embeds"])
    assert torch.equal(neg[:, 77:], encode(xl, "", "x")["prompt_embeds"])
    zeros = encode(xl, "red " * 100)["negative_prompt_embeds"]
    assert zeros.shape == (1, 154, 160) and not zeros.any()


def test_pooled_comes_from_the_first_chunk(xl):
    long = encode(xl, "red " * 75 + "blue " * 30, "x", batch_size=2)
    short = encode(xl, "red " * 75, "x")
    assert long["pooled_prompt_embeds"].shape == (2, 96) and long["prompt_embeds"].shape == (2, 154, 160)
    assert torch.equal(long["pooled_prompt_embeds"][1:], short["pooled_prompt_embeds"])


def test_lora_tags_are_not_encoded(sd):
    assert torch.equal(encode(sd, "a cat <lora:x:0.5>")["prompt_embeds"], encode(sd, "a cat ")["prompt_embeds"])


# ---- per-step schedules ---------------------------------------------------------------------------------------


def test_encode_schedule_gives_one_dict_per_step(sd):
    steps = encode_schedule(sd, "a [red:blue:0.5] circle", "[dark|]", steps=4)
    assert len(steps) == 4
    negs = ["dark", "dark", "", "dark"]  # alternation, counted from step 0 as A1111 does
    for i, neg in enumerate(negs):
        text = "a red circle" if i <= 2 else "a blue circle"
        assert_same(steps[i], encode(sd, text, neg))
    assert steps[0] is steps[1] and steps[2] is not steps[1]
    long = encode_schedule(sd, "[red:" + "blue " * 80 + ":1]", steps=3)  # all steps share one chunk count
    assert long[0]["prompt_embeds"].shape == long[2]["prompt_embeds"].shape == (1, 154, 64)
    assert torch.equal(long[0]["prompt_embeds"][:, :77], encode(sd, "red")["prompt_embeds"])
