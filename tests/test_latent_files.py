"""ComfyUI .latent files: written as SaveLatent writes them, read as LoadLatent reads them (VAE-native values)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

import labkit
from labkit import BadInput, UnsupportedFile

SCALE = 0.8402  # the toy VAE's scaling factor


def test_write_then_read_gives_the_latents_back_and_comfy_sees_vae_native_values(tmp_path):
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 3  # UNet space
    path = labkit.write_latent(latents, tmp_path / "a.latent", SCALE, metadata={"prompt": "{}"})
    stored = load_file(str(path))
    assert set(stored) == {"latent_tensor", "latent_format_version_0"} and stored["latent_format_version_0"].numel() == 0
    assert torch.allclose(stored["latent_tensor"], latents / SCALE)  # what ComfyUI's LoadLatent uses as is
    assert torch.allclose(labkit.read_latent(path, SCALE), latents)
    with pytest.raises(BadInput, match="already exists"):
        labkit.write_latent(latents, path, SCALE)


def test_old_comfy_files_without_the_marker_were_scaled_by_sd1s_factor(tmp_path):
    native = torch.ones(1, 4, 8, 8)
    save_file({"latent_tensor": native * 0.18215}, str(tmp_path / "old.latent"))
    assert torch.allclose(labkit.read_latent(tmp_path / "old.latent", SCALE), native * SCALE)


def test_result_latents_round_trip_through_a_latent_file(sd_lab, tmp_path):
    r = sd_lab.txt2img("a red circle", seed=1, steps=3, sampler="Euler")
    scale = sd_lab.components["vae"].config.scaling_factor
    back = labkit.read_latent(labkit.write_latent(r.latents, tmp_path / "r.latent", scale), scale)
    assert torch.allclose(back, r.latents) and sd_lab.decode(back)[0].tobytes() == r.image.tobytes()


@pytest.mark.parametrize("name, error", [("x.png", BadInput), ("x.safetensors", BadInput)])
def test_bad_names_and_files(tmp_path, name, error):
    with pytest.raises(error, match=".latent"):
        labkit.write_latent(torch.zeros(1, 4, 8, 8), tmp_path / name, SCALE)
    save_file({"other": torch.zeros(1)}, str(tmp_path / "y.latent"))
    with pytest.raises(UnsupportedFile, match="not a ComfyUI latent"):
        labkit.read_latent(tmp_path / "y.latent", SCALE)
    with pytest.raises(BadInput, match="tensor"):
        labkit.write_latent([[1.0]], tmp_path / "z.latent", SCALE)
