"""Upscalers: one registry by A1111 name, `labkit.upscale` (exact sizes, model passes as A1111 repeats them, tiles
that blend without seams), model files read safely through spandrel (safetensors; .pth weights-only), spandrel
imported beside a torch without torchvision and nothing of its stand-in left behind, `labkit.inspect` naming an
upscaler's architecture and scale."""

import importlib.util
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import labkit
from labkit.upscalers import registry
from labkit.upscalers.run import feather, tile_starts, tiled


def picture(w=40, h=30, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def esrgan_file(path, scale=4):
    """A small ESRGAN (RRDB) network with random weights, saved as a .pth state dict (what models/ESRGAN holds)."""
    from labkit.upscalers.library import spandrel

    spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)
    torch.save(net.state_dict(), path)
    return path


def test_names_follow_a1111s_order_and_find_the_toy_upscaler():
    names = labkit.upscalers.names()
    assert names[:9] == [*registry.LATENT_MODES, "None", "Lanczos", "Nearest"]
    assert "toy-upscaler" in names and "toy-upscaler" in labkit.upscalers.names(latent=False)


def test_model_files_are_found_in_a1111_and_comfyui_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "ESRGAN").mkdir(parents=True)
    (tmp_path / "models" / "upscale_models").mkdir(parents=True)
    esrgan_file(tmp_path / "models" / "ESRGAN" / "4x-tiny.pth")
    esrgan_file(tmp_path / "models" / "upscale_models" / "2x-tiny.pth", scale=2)
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    esrgan_file(extra / "8x-far.pth", scale=8)
    monkeypatch.setenv(registry.ENV_PATH, str(extra))
    names = labkit.upscalers.names()
    assert {"4x-tiny", "2x-tiny", "8x-far"} <= set(names)
    assert names.index("2x-tiny") < names.index("4x-tiny") < names.index("8x-far")
    assert labkit.upscalers.choose("4x-tiny").path.name == "4x-tiny.pth"


@pytest.mark.parametrize("upscaler", ["Lanczos", "Nearest", "None", "toy-upscaler"])
@pytest.mark.parametrize("scale", [2, 1.5, 3.3])
def test_upscale_gives_the_exact_size(upscaler, scale):
    out = labkit.upscale(picture(), upscaler, scale)
    assert out.size == (int(40 * scale), int(30 * scale)) and out.mode == "RGB"


def test_a_model_runs_as_often_as_needed_then_lanczos_to_the_size(tmp_path):
    path = esrgan_file(tmp_path / "4x.pth")
    model = labkit.load_upscaler(path)
    assert (model.architecture, model.scale) == ("ESRGAN", 4)
    direct = labkit.upscale(picture(), model, 4)
    assert direct.size == (160, 120)
    by_hand = labkit.upscalers.run.run_model(model, picture())
    assert np.array_equal(np.asarray(direct), np.asarray(by_hand))  # one pass, nothing resized
    assert labkit.upscale(picture(), model, 2).size == (80, 60)  # one pass, then Lanczos down
    passes = []
    original = labkit.upscalers.run.run_model
    try:
        labkit.upscalers.run.run_model = lambda *a, **k: passes.append(1) or original(*a, **k)
        assert labkit.upscale(picture(8, 6), model, 16).size == (128, 96)
    finally:
        labkit.upscalers.run.run_model = original
    assert len(passes) == 2  # 4x twice reaches 16x


def test_tiles_blend_without_seams():
    x = torch.rand(1, 3, 100, 130)
    nearest = lambda part: torch.nn.functional.interpolate(part, scale_factor=2, mode="nearest")  # noqa: E731
    assert torch.allclose(tiled(nearest, x, 2, 48, 8), nearest(x), atol=1e-6)  # a pointwise model: exact
    assert tile_starts(100, 48, 8) == [0, 26, 52] and tile_starts(40, 48, 8) == [0]
    ramp = feather(10, 3, first=False, last=False)
    assert ramp[0] == 0.25 and ramp[-1] == 0.25 and ramp[5] == 1 and (ramp > 0).all()


def test_the_toy_upscaler_tiled_matches_one_piece():
    big = picture(96, 80, seed=3).resize((96, 80))
    whole = np.asarray(labkit.upscale(big, "toy-upscaler", 2, tile=512), np.float64)
    tiles = np.asarray(labkit.upscale(big, "toy-upscaler", 2, tile=48, overlap=16), np.float64)
    assert np.abs(whole - tiles).mean() < 0.5 and np.abs(whole - tiles).max() <= 12


def test_the_toy_upscaler_beats_lanczos_on_held_out_scenes():
    from labkit.toy import world
    from labkit.toy.train.upscaler import psnr

    gains = []
    for i in range(12):
        _, _, scene = world.example(1, 5000 + i, 8)
        low, high = scene.render(64), np.asarray(scene.render(128))
        gains.append(psnr(labkit.upscale(low, "toy-upscaler", 2), high) - psnr(low.resize((128, 128),
                                                                                          Image.LANCZOS), high))
    assert np.mean(gains) >= 2.0, gains


def test_pth_files_are_read_weights_only_and_inspected(tmp_path):
    path = esrgan_file(tmp_path / "4x-tiny.pth")
    info = labkit.inspect(path)
    assert (info.kind, info.architecture, info.scale) == ("upscaler", "ESRGAN", 4)
    assert "upscaler · ESRGAN · 4x" in info.summary()


def test_the_shipped_upscaler_is_inspected_from_its_header():
    path = labkit.upscalers.choose("toy-upscaler").path
    info = labkit.inspect(path)
    assert (info.kind, info.architecture, info.scale, info.dtype) == ("upscaler", "RealESRGAN Compact", 2, "float16")
    assert path.stat().st_size < 5 * 2**20


def test_spandrel_leaves_no_torchvision_stand_in_behind():
    labkit.load_upscaler("toy-upscaler")
    assert "spandrel" in sys.modules
    assert "torchvision" not in sys.modules or getattr(sys.modules["torchvision"], "__file__", None)
    if "torchvision" not in sys.modules:
        assert importlib.util.find_spec("torchvision") is None  # diffusers' check still sees none


def test_every_spandrel_upscaler_architecture_imports():
    from labkit.upscalers.library import spandrel

    module = spandrel()
    names = {support.architecture.name for support in module.MAIN_REGISTRY.architectures()}
    assert {"ESRGAN", "RealESRGAN Compact", "SwinIR", "HAT", "DAT", "SPAN"} <= names


def test_bgr_feeds_a_model_blue_first_as_a1111_does(tmp_path):
    model = labkit.load_upscaler(esrgan_file(tmp_path / "4x.pth"))
    source = picture()
    rgb = np.asarray(labkit.upscalers.run.run_model(model, source))
    bgr = np.asarray(labkit.upscalers.run.run_model(model, source, bgr=True))
    flipped = Image.fromarray(np.asarray(source)[:, :, ::-1].copy())
    by_hand = np.asarray(labkit.upscalers.run.run_model(model, flipped))[:, :, ::-1]
    assert np.array_equal(bgr, by_hand) and not np.array_equal(bgr, rgb)  # a random model tells channels apart
