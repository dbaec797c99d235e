"""Real-size SD 1.5 and SDXL architectures (random weights) through the same single-file path as any download.

Runs where CUDA is present (skipped otherwise: a full-size SDXL needs ~14 GB just to build); set
LABKIT_FULLSIZE_CPU=1 to run the SD 1.x / 2.x cases on a CPU (about a minute each and 8 GB of memory).
"""

import os

import numpy as np
import pytest
import torch

CUDA = torch.cuda.is_available()
CPU_OK = os.environ.get("LABKIT_FULLSIZE_CPU") == "1"
CASES = [("sd1", 512, 859_520_964 + 83_653_863 + 123_060_480, None),
         ("sd2", 768, 865_910_724 + 83_653_863 + 340_387_840, "v"),
         ("sdxl", 1024, 2_567_463_684 + 83_653_863 + 123_060_480 + 694_659_840, None),
         ("sdxl-refiner", 1024, 2_259_526_660 + 83_653_863 + 694_659_840, None)]
CPU_FAMILIES = ("sd1", "sd2")


@pytest.mark.gpu
@pytest.mark.parametrize("family, size, n_params, prediction", CASES)
def test_full_size_single_file(family, size, n_params, prediction, tmp_path):
    if not (CUDA or (CPU_OK and family in CPU_FAMILIES)):
        pytest.skip("needs a CUDA device (or LABKIT_FULLSIZE_CPU=1 for sd1/sd2)")
    import labkit
    from labkit.lab import Lab
    from labkit.toy.build import fresh_components

    device, dtype = ("cuda", "float16") if CUDA else ("cpu", "float32")
    components = fresh_components(family, seed=0)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if components.get(name) is not None:
            components[name].half()
    lab = Lab(components, family)
    path = tmp_path / f"{family}-random.safetensors"
    from labkit.export import save_single_file

    layout = {"sd1": "sd1", "sd2": "sd2", "sdxl": "sdxl", "sdxl-refiner": "sdxl-refiner"}[family]
    metadata = {"modelspec.prediction_type": prediction} if prediction else None
    save_single_file(components, layout, path, metadata=metadata)
    del components, lab
    info = labkit.inspect(path)
    assert (info.kind, info.family, info.dtype) == ("checkpoint", family, "float16")
    assert info.prediction == ("v_prediction" if prediction else ("epsilon" if family != "sd2" else None))
    assert info.n_params == n_params  # every weight of the public architecture, under its original key name
    lab = labkit.open(path, device=device, dtype=dtype)
    assert lab.native_size == size
    steps = 2 if CUDA else 1
    if family == "sdxl-refiner":
        from PIL import Image

        r = lab.img2img(Image.new("RGB", (size, size), (120, 60, 30)), "a photo of a cat", steps=steps,
                        sampler="Euler", seed=1, strength=0.5)
    else:
        r = lab.txt2img("a photo of a cat", steps=steps, sampler="Euler", seed=1, width=size, height=size)
    assert r.image.size == (size, size)
    assert np.isfinite(np.asarray(r.image, dtype=np.float64)).all()
    print(family, r.timings)
