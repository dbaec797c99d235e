import pytest
import torch

from labkit import noise


def test_a1111_cpu_is_per_image_seed_plus_i():
    batch = noise.initial_noise(42, 3, (4, 8, 8), "a1111-cpu")
    assert batch.shape == (3, 4, 8, 8) and batch.dtype == torch.float32
    for i in range(3):
        torch.manual_seed(42 + i)
        assert torch.equal(batch[i], torch.randn((4, 8, 8)))


def test_comfy_draws_the_batch_from_one_generator():
    batch = noise.initial_noise(7, 2, (4, 8, 8), "comfy")
    torch.manual_seed(7)
    assert torch.equal(batch, torch.randn((2, 4, 8, 8)))
    assert not torch.equal(batch[1], noise.initial_noise(8, 1, (4, 8, 8), "a1111-cpu")[0])
    assert noise.batch_seeds(7, 2, "comfy") == [7, 7] and noise.batch_seeds(7, 2, "a1111-cpu") == [7, 8]


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the fallback without CUDA")
def test_gpu_mode_falls_back_with_a_message():
    mode, note = noise.effective_mode("a1111-gpu")
    assert mode == "a1111-cpu" and "CUDA" in note and "noise='a1111-cpu'" in note
    assert noise.effective_mode("comfy") == ("comfy", None)


def test_seed_resolution():
    assert noise.resolve_seed(5) == 5
    seeds = {noise.resolve_seed(-1) for _ in range(5)}
    assert all(0 <= s <= noise.MAX_SEED for s in seeds) and len(seeds) > 1
    with pytest.raises(noise.BadInput):
        noise.resolve_seed(-7)
