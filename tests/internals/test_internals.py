"""labkit.internals: the teaching helpers the tutorial notebooks import, on tiny random-weight labs."""

import numpy as np
import pytest
import torch
from PIL import Image

from labkit.internals import convergence, img2img, latents, loop, plots, schedules, text


def picture(size=64):
    """A small deterministic test picture: a red disc on blue."""
    y, x = np.mgrid[:size, :size]
    disc = (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 4) ** 2
    pixels = np.where(disc[..., None], [220, 40, 30], [30, 60, 200]).astype(np.uint8)
    return Image.fromarray(pixels)


# ---- the loop by hand equals the pipeline ------------------------------------------------------------------

@pytest.mark.parametrize("lab_name", ["sd_lab", "xl_lab"])
@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M"])
@pytest.mark.parametrize("negative", ["", "blurry"])
def test_manual_loop_equals_pipeline(request, lab_name, sampler, negative):
    lab = request.getfixturevalue(lab_name)
    settings = dict(negative_prompt=negative, steps=5, cfg=6.5, seed=7, sampler=sampler)
    steps_seen = []
    mine = loop.sample(lab, "a red circle", **settings, on_step=lambda i, total, x: steps_seen.append(i))
    theirs = loop.pipeline_latents(lab, "a red circle", **settings)
    assert mine.shape == theirs.shape == (1, 4, 8, 8)
    assert (mine - theirs).abs().max().item() <= 1e-5
    assert steps_seen == list(range(5))
    # and the guidance scale matters: cfg 1 (no CFG batch) gives other latents
    plain = loop.sample(lab, "a red circle", **{**settings, "cfg": 1.0})
    assert (plain - mine).abs().max().item() > 1e-3


@pytest.mark.parametrize("lab_name", ["sd_lab", "xl_lab"])
def test_manual_loop_no_cfg_size_and_prompt_schedule(request, lab_name):
    lab = request.getfixturevalue(lab_name)
    settings = dict(steps=4, cfg=1.0, seed=1, sampler="Euler", schedule="Karras", width=48, height=64)
    mine = loop.sample(lab, "a [red:blue:0.5] circle", **settings)
    theirs = loop.pipeline_latents(lab, "a [red:blue:0.5] circle", **settings)
    assert mine.shape == (1, 4, 8, 6)
    assert (mine - theirs).abs().max().item() <= 1e-5


@pytest.mark.parametrize("sampler", ["Euler a", "Heun", "DPM2 a"])
def test_manual_loop_equals_pipeline_for_ancestral_and_second_order_samplers(sd_lab, sampler):
    """Step noise from the seed's generator after the initial noise; schedules counted in sampler steps."""
    settings = dict(steps=4, cfg=5.0, seed=3, sampler=sampler)
    mine = loop.sample(sd_lab, "a [red:blue:0.5] circle", **settings)
    theirs = loop.pipeline_latents(sd_lab, "a [red:blue:0.5] circle", **settings)
    assert (mine - theirs).abs().max().item() <= 1e-5


def test_image_from_matches_txt2img_image(sd_lab):
    settings = dict(steps=3, cfg=5.0, seed=2, sampler="Euler")
    image = loop.image_from(sd_lab, loop.sample(sd_lab, "a circle", **settings))
    reference = sd_lab.txt2img("a circle", **settings).image
    assert image.size == reference.size
    assert np.abs(np.asarray(image, int) - np.asarray(reference, int)).max() <= 1


# ---- schedules -----------------------------------------------------------------------------------------------

def test_schedule_table_against_formulas(sd_lab):
    table = schedules.schedule_table(sd_lab)
    config = sd_lab.scheduler_config
    assert config["beta_schedule"] == "scaled_linear"
    n = config["num_train_timesteps"]
    betas = np.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, n) ** 2
    a = np.cumprod(1 - betas)
    np.testing.assert_allclose(table["betas"], betas, rtol=1e-6)
    np.testing.assert_allclose(table["alphas_cumprod"], a, rtol=1e-5)
    np.testing.assert_allclose(table["sigmas"], np.sqrt((1 - a) / a), rtol=1e-4)  # diffusers keeps float32
    np.testing.assert_allclose(table["snr"], 1 / table["sigmas"] ** 2, rtol=1e-9)
    np.testing.assert_allclose(table["log_snr"], np.log(table["snr"]), rtol=1e-9, atol=1e-12)
    assert np.all(np.diff(table["sigmas"]) > 0) and np.all(np.diff(table["log_snr"]) < 0)
    assert len(table["timesteps"]) == n
    # a config dict works too, and gives the same table
    np.testing.assert_array_equal(schedules.schedule_table(dict(config))["betas"], table["betas"])


def test_sampler_sigmas_karras_vs_uniform(sd_lab):
    sigma_max = schedules.schedule_table(sd_lab)["sigmas"][-1]
    uniform = schedules.sampler_sigmas(sd_lab, "Euler", "Uniform", 10)
    karras = schedules.sampler_sigmas(sd_lab, "Euler", "Karras", 10)
    assert len(uniform) == len(karras) == 11
    assert not np.allclose(uniform, karras)
    for sigmas in (uniform, karras):
        assert sigmas[0] == pytest.approx(sigma_max, rel=1e-3)
        assert sigmas[-1] == 0 and np.all(np.diff(sigmas) < 0)
    assert karras[5] < uniform[5]  # Karras spends more steps at low noise
    # A1111's DDIM: grid 1, 101, ..., 901; a UNet call at each point above t = 1, the run ending at t = 1
    ddim = schedules.sampler_sigmas(sd_lab, "DDIM", "Automatic", 10)
    assert len(ddim) == 10 and ddim[-1] == pytest.approx(0.0413, abs=1e-4) and np.all(np.diff(ddim) < 0)


def test_forward_noise(sd_lab):
    images, noised = schedules.forward_noise(sd_lab, picture(), [0, 500, 999], seed=0)
    assert len(images) == 3 and images[0].size == (64, 64)
    assert noised.shape == (3, 4, 8, 8)
    x0 = latents.encode(sd_lab, picture())
    a = schedules.schedule_table(sd_lab)["alphas_cumprod"]
    # x_t = sqrt(a) x0 + sqrt(1 - a) noise: recover the same noise from each t
    noise = [(noised[i] - a[t] ** 0.5 * x0[0]) / (1 - a[t]) ** 0.5 for i, t in enumerate([0, 500, 999])]
    assert torch.allclose(noise[1], noise[2], atol=1e-4)
    assert (noised[2] - x0[0]).std() > (noised[0] - x0[0]).std()


# ---- img2img -------------------------------------------------------------------------------------------------

def test_start_step_formula():  # A1111: t_enc = int(min(strength, 0.999) * steps); t_enc + 1 steps run
    assert img2img.start_step(20, 0.75) == 4  # 16 steps run
    assert img2img.start_step(20, 1.0) == 0
    assert img2img.start_step(10, 0.33) == 6  # int(3.3) = 3, 4 steps run
    assert img2img.start_step(7, 0.5) == 3


@pytest.mark.parametrize("steps, strength, sampler", [(10, 0.5, "Euler"), (7, 0.75, "DPM++ 2M"),
                                                      (6, 1.0, "Euler"), (5, 0.6, "Heun")])
def test_timesteps_run_equal_formula(sd_lab, steps, strength, sampler):
    seen = img2img.timesteps_run(sd_lab, steps, strength, sampler=sampler)
    expected = img2img.expected_timesteps(sd_lab, steps, strength, sampler=sampler)
    scheduler = schedules.scheduler_for(sd_lab, sampler, steps)
    assert torch.equal(seen, expected)
    assert torch.equal(expected, scheduler.timesteps[img2img.start_step(steps, strength) * scheduler.order:])
    assert len(seen) == (steps - img2img.start_step(steps, strength)) * scheduler.order - (scheduler.order - 1)


# ---- text ----------------------------------------------------------------------------------------------------

def test_token_table_weights_and_positions(sd_lab):
    rows = text.token_table(sd_lab, "a (red:1.5) circle")
    words = [r for r in rows if r["position"] in (1, 2, 3)]
    assert [r["token"] for r in words] == ["a</w>", "red</w>", "circle</w>"]
    assert [r["weight"] for r in words] == [1.0, 1.5, 1.0]
    assert rows[0]["position"] == 0 and rows[0]["token"] == "<|startoftext|>"
    assert rows[-1]["token"] == "<|endoftext|>" and len(rows) == 5
    assert all(r["chunk"] == 0 for r in rows)
    assert len(text.token_table(sd_lab, "a (red:1.5) circle", padding=True)) == 77
    two = text.token_table(sd_lab, "a red circle BREAK a blue square")
    assert [r["chunk"] for r in two if r["position"] == 1] == [0, 1]


def test_embeddings_and_clip_skip(sd_lab, xl_lab):
    z, pooled = text.embeddings(sd_lab, "a red circle")
    assert z.shape == (77, sd_lab.components["text_encoder"].config.hidden_size) and pooled is None
    zx, pooledx = text.embeddings(xl_lab, "a red circle")
    widths = sum(xl_lab.components[k].config.hidden_size for k in ("text_encoder", "text_encoder_2"))
    assert zx.shape == (77, widths) and pooledx.ndim == 1
    similarity = text.clip_skip_change(sd_lab, "a red circle")
    assert similarity.shape == (77,)
    assert similarity.min() < 0.999 and np.all(similarity <= 1 + 1e-5)
    assert not np.allclose(text.embeddings(sd_lab, "a red circle", clip_skip=2)[0].numpy(), z.numpy())


# ---- latents -------------------------------------------------------------------------------------------------

def test_encode_decode_round_trip(sd_lab):
    image = picture()
    z = latents.encode(sd_lab, image)
    assert z.shape == (1, 4, 8, 8)
    lab_z = sd_lab.encode_image(image, sd_lab.params(width=64, height=64))
    assert torch.allclose(z, lab_z, atol=1e-4)  # Lab's input tensor is channels-last: conv rounding differs
    assert latents.decode(sd_lab, z).size == (64, 64)
    psnr = latents.round_trip_psnr(sd_lab, image)
    assert np.isfinite(psnr) and psnr > 0


def test_channels_image_size():
    z = torch.randn(1, 4, 8, 6)
    strip = latents.channels_image(z, tile=64, gap=4)
    side_h, side_w = 64, 48  # zoom 8
    assert strip.size == (4 * (side_w + 4) - 4, side_h + 14) and strip.mode == "L"
    first = np.asarray(strip)[:side_h, :side_w]
    assert first.min() == 0 and first.max() == 255  # each channel stretched to black..white


# ---- convergence ---------------------------------------------------------------------------------------------

def test_distance_to_reference_decreases_for_euler(sd_lab):
    steps = [2, 4, 8, 16]
    distances = convergence.distance_to_reference(sd_lab, "a red circle", "Euler", steps, reference_steps=48)
    assert len(distances) == len(steps)
    assert all(a > b for a, b in zip(distances, distances[1:]))
    assert convergence.distance_to_reference(sd_lab, "a red circle", "Euler", [48], reference_steps=48) == [0.0]


# ---- plots ---------------------------------------------------------------------------------------------------

def test_plots_return_figures(sd_lab):
    from matplotlib.figure import Figure

    fig = plots.plot_schedule(schedules.schedule_table(sd_lab))
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    fig = plots.plot_sigmas({"Uniform": np.linspace(14, 0, 5), "Karras": np.geomspace(14, 0.03, 5)})
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2
    fig = plots.plot_convergence({"Euler": ([2, 4, 8], [1, 0.5, 0.25]), "DPM++ 2M": ([2, 4, 8], [1, 0.2, 0.05]),
                                  "Heun": ([2, 4, 8], [0.8, 0.1, 0.01])})
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3
    fig = plots.show_images([picture(16)] * 5 + [Image.new("L", (16, 16))], titles=list("abcdef"), columns=4)
    assert len(fig.axes) == 6 and fig.axes[5].get_title() == "f"
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
