"""Cross-attention capture (labkit.internals.attention) on tiny random SD1- and SDXL-layout labs."""

import numpy as np
import pytest
import torch
from tests.helpers.labs import make_lab

from labkit.errors import BadInput
from labkit.internals.attention import (RecordingProcessor, capture, maps_for, plot_token_maps, prompt_tokens,
                                        token_maps)

PROMPT = "a red circle"
RUN = dict(steps=3, cfg=7.0, seed=1, width=64, height=64)


def run(lab, prompt=PROMPT, **overrides):
    """(Result, final latents (B, 4, h, w)) of a short txt2img."""
    seen = {}

    def on_step(step, total, latents):
        seen["latents"] = latents.clone()

    r = lab.txt2img(prompt, on_step=on_step, **{**RUN, **overrides})
    return r, seen["latents"]


def recorded(lab, prompt=PROMPT, **kwargs):
    """(store, Result, latents) of a short txt2img inside capture."""
    per_step = kwargs.pop("per_step", False)
    with capture(lab, per_step=per_step) as store:
        r, latents = run(lab, prompt, **kwargs)
    return store, r, latents


@pytest.fixture(params=["sd", "xl"])
def lab(request, sd_lab, xl_lab):
    return {"sd": sd_lab, "xl": xl_lab}[request.param]


def test_capture_does_not_change_the_picture(lab):
    """Same latents up to float rounding: random toy UNets with CFG 7 reach |latents| ~ 50, so the bound is
    relative (1e-5 of the largest value); diffusers' own explicit AttnProcessor differs from its default
    (SDPA) by as much."""
    again, plain = run(lab)
    store, r, latents = recorded(lab)
    assert (latents - plain).abs().max() <= 1e-5 * plain.abs().max()
    diff = (torch.tensor(np.asarray(r.image), dtype=torch.int16) - torch.tensor(np.asarray(again.image), dtype=torch.int16)).abs().max()
    assert diff <= 1  # at most one 8-bit level from float rounding
    assert store.layers  # and it did record


def test_only_cross_attention_is_swapped_and_everything_comes_back(lab):
    unet = lab.components["unet"]
    before = unet.attn_processors
    with capture(lab):
        during = unet.attn_processors
        for name, processor in during.items():
            if ".attn2." in name:
                assert isinstance(processor, RecordingProcessor)
            else:
                assert processor is before[name]  # self-attention keeps its very processor
    after = unet.attn_processors
    assert all(after[name] is before[name] for name in before)
    assert not unet._forward_pre_hooks


def test_processors_come_back_after_an_error(sd_lab):
    unet = sd_lab.components["unet"]
    before = unet.attn_processors
    def stop(step, total, latents):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        with capture(sd_lab):
            sd_lab.txt2img(PROMPT, on_step=stop, **RUN)  # fails in the middle of the run
    assert all(unet.attn_processors[name] is p for name, p in before.items())
    assert not unet._forward_pre_hooks


def test_a_processor_it_cannot_reproduce_is_refused(sd_lab):
    class Custom:  # e.g. an IP-Adapter processor: other math
        def __call__(self, attn, hidden_states, **kwargs):
            return hidden_states

    unet = sd_lab.components["unet"]
    before = unet.attn_processors
    name = next(n for n in before if ".attn2." in n)
    unet.set_attn_processor({**before, name: Custom()})
    try:
        with pytest.raises(BadInput, match="Custom"):
            with capture(sd_lab):
                pass
    finally:
        unet.set_attn_processor(dict(before))
    with capture(sd_lab):  # nested captures would record into the wrong store
        with pytest.raises(BadInput, match="already inside"):
            with capture(sd_lab):
                pass


def test_each_layer_records_probabilities_over_77_tokens(lab):
    store, _, _ = recorded(lab)
    sizes = set()
    for layer in store.layers:
        assert ".attn2" in layer
        maps = store.sums[layer]
        pictures, tokens, h, w = maps.shape
        assert (pictures, tokens) == (1, 77) and h == w and 8 % h == 0
        assert store.counts[layer] == RUN["steps"]
        mean = store.mean(layer)  # (77, h, w)
        assert torch.allclose(mean.sum(0), torch.ones(h, w), atol=1e-5)
        sizes.add(h)
    assert len(sizes) >= 2  # attention at several resolutions


def test_token_maps_cover_the_picture(lab):
    store, _, _ = recorded(lab)
    maps = token_maps(store)
    assert maps.shape == (77, 64, 64)
    assert torch.allclose(maps.sum(0), torch.ones(64, 64), atol=1e-5)  # averaging keeps a distribution
    assert token_maps(store, size=32, layers=["up_blocks"]).shape == (77, 32, 32)
    with pytest.raises(BadInput, match="matches none"):
        token_maps(store, layers="nowhere")
    with pytest.raises(BadInput, match="per_step"):
        token_maps(store, steps=[0])


def test_per_step_maps(sd_lab):
    store, _, _ = recorded(sd_lab, per_step=True)
    layer = store.layers[0]
    assert sorted(store.by_step[layer]) == [0, 1, 2]
    first, last = token_maps(store, steps=[0]), token_maps(store, steps=[2])
    assert not torch.allclose(first, last)
    assert torch.allclose(token_maps(store, steps=range(3)), token_maps(store), atol=1e-6)


def test_maps_for_returns_the_prompt_words_in_order(lab):
    store, _, _ = recorded(lab)
    pairs = maps_for(lab, store, "a (red:1.2) circle <lora:x:0.5>")
    assert [word for word, _ in pairs] == ["a", "red", "circle"]
    maps = token_maps(store)
    assert all(torch.equal(m, maps[i + 1]) for i, (_, m) in enumerate(pairs))  # positions 1.. after BOS


def test_maps_for_warns_about_long_prompts_and_refuses_schedules(sd_lab):
    assert [p for p, _ in prompt_tokens(sd_lab, "a circle")] == [1, 2]
    with pytest.warns(UserWarning, match="first only"):
        tokens = prompt_tokens(sd_lab, "circle " * 80)
    assert len(tokens) == 75
    with pytest.raises(BadInput, match="changes during the run"):
        prompt_tokens(sd_lab, "a [red:blue:0.5] circle")


def test_plot_has_the_picture_and_one_panel_per_token(sd_lab):
    from matplotlib.figure import Figure

    store, r, _ = recorded(sd_lab)
    pairs = maps_for(sd_lab, store, PROMPT)
    fig = plot_token_maps(r.image, pairs, columns=2)
    assert fig._repr_png_()[:4] == b"\x89PNG"  # shows as a picture in a notebook, without pyplot
    assert isinstance(fig, Figure) and len(fig.axes) == 1 + len(pairs)
    assert [ax.get_title() for ax in fig.axes] == ["picture", "a", "red", "circle"]


def test_maps_differ_between_prompts(sd_lab):
    red = token_maps(recorded(sd_lab, "a red circle")[0])
    blue = token_maps(recorded(sd_lab, "a blue square")[0])
    assert (red - blue).abs().max() > 1e-3


def test_batches_record_each_picture_of_the_conditional_half(sd_lab):
    single = recorded(sd_lab)[0]
    for cfg in (7.0, 1.0):  # with CFG the batch is [negative, positive]; without, just the pictures
        store = recorded(sd_lab, batch_size=2, cfg=cfg)[0]
        assert all(m.shape[0] == 2 for m in store.sums.values())
        assert not torch.allclose(token_maps(store, picture=0), token_maps(store, picture=1))
    batch = recorded(sd_lab, batch_size=2)[0]  # picture 0 has the single run's seed
    assert torch.allclose(token_maps(batch, picture=0), token_maps(single), atol=1e-4)
    with pytest.raises(BadInput, match="picture"):
        token_maps(batch, picture=2)


@pytest.mark.parametrize("family", ["toy", "toy-xl"])
def test_maps_match_an_independent_computation_with_a_dominant_token(family):
    """Rig every cross-attention layer so that all pixels attend alike and "red" wins: the query is a constant
    (to_q: zero weight, a bias of another size in each head) and the keys are k_t = 1 (x_red . x_t) (to_k: rank
    one), so each head's scores order the tokens by x_red . x_t, largest for red itself. The recorded maps must equal
    softmax(q_h . K_h * scale) averaged over heads, computed here from the weights and the positive prompt's
    embeddings (the negative half of the CFG batch would give other maps)."""
    from labkit.prompts import encode

    lab = make_lab(family, seed=3)
    red = 2  # position of "red" after BOS and "a"
    context = encode(lab, PROMPT)["prompt_embeds"][0]  # (77, D)
    expected = {}
    with torch.no_grad():
        for name, module in lab.components["unet"].named_modules():
            if name.endswith("attn2"):
                heads, inner = module.heads, module.to_k.out_features
                module.to_k.weight.copy_(torch.ones(inner, 1) * context[red])  # (C, D)
                module.to_q.weight.zero_()
                sharpness = torch.linspace(0.5, 2.0, heads).repeat_interleave(inner // heads)  # one per head
                module.to_q.bias = torch.nn.Parameter(sharpness * (heads / inner) ** 0.5)  # (C,)
                k = module.to_k(context).view(77, heads, -1).transpose(0, 1)  # (heads, 77, d)
                q = module.to_q.bias.view(heads, 1, -1)  # (heads, 1, d): the same at every pixel
                expected[name] = ((q @ k.transpose(1, 2))[:, 0] * module.scale).softmax(-1).mean(0)  # (77,)
    store, _, _ = recorded(lab, negative_prompt="a blue square", steps=2)
    assert set(store.layers) == set(expected)
    for layer, probs in expected.items():
        got = store.mean(layer)  # (77, h, w)
        assert torch.allclose(got, probs[:, None, None].expand_as(got), atol=1e-5)
        assert probs.argmax() == red
    assert token_maps(store).mean((1, 2)).argmax() == red
    assert max(maps_for(lab, store, PROMPT), key=lambda pair: pair[1].mean())[0] == "red"


def test_a_wide_picture_gives_wide_maps(xl_lab):
    store, r, _ = recorded(xl_lab, width=64, height=32, steps=2)
    assert store.image_size == (32, 64) == r.image.size[::-1]
    assert {tuple(m.shape[-2:]) for m in store.sums.values()} == {(2, 4), (1, 2)}  # latent 4x8 halved, quartered
    assert token_maps(store).shape == (77, 32, 64)
