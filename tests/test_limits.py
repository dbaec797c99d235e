"""labkit.limits: a run's estimated time and memory, and the Lab's limits on them (issue #16)."""

import time

import pytest

from labkit import Limits, Params, TooLarge
from labkit.limits import check, estimate, weight_bytes


def sized(**changes):
    return Params(**{"steps": 4, "sampler": "Euler", "width": 64, "height": 64, "seed": 1, **changes})


def test_the_estimate_grows_with_steps_batch_and_size(sd_lab):
    base = estimate(sd_lab, sized())
    for bigger in (sized(steps=8), sized(batch_size=2), sized(width=128, height=128)):
        grown = estimate(sd_lab, bigger)
        assert grown.seconds > base.seconds and grown.memory >= base.memory
    assert base.memory > sd_lab.weight_bytes == weight_bytes(sd_lab.components) > 0
    assert estimate(sd_lab, sized(sampler="Heun")).seconds > base.seconds  # two UNet passes per step
    assert estimate(sd_lab, sized(strength=0.5), "img2img").seconds < base.seconds  # img2img runs steps x strength


def test_a_run_over_the_limit_is_refused_with_the_estimate_and_the_fix(sd_lab):
    sd_lab.limits = Limits(max_seconds=1e-6, max_memory_gb=1e-6)
    try:
        with pytest.raises(TooLarge, match=r"estimated at .*over the time limit .* memory limit .*lab.limits = "
                                           r"labkit.Limits\(max_seconds=.*max_memory_gb="):
            check(sd_lab, sized())
        with pytest.raises(TooLarge):
            sd_lab.txt2img("x", steps=2, sampler="Euler", seed=1)
        sd_lab.limits = Limits(max_seconds=None, max_memory_gb=None)  # no time limit; memory: the device's
        assert check(sd_lab, sized(steps=10**6)) is not None
        sd_lab.limits = None  # no check at all
        assert check(sd_lab, sized(steps=10**9, width=8192, height=8192)) is None
    finally:
        sd_lab.limits = Limits()


def test_the_toy_estimate_is_within_a_factor_of_ten_of_a_run(sd_lab):
    """The toy rows are calibrated on this kind of machine; a shared CPU's noise fits in the factor."""
    sd_lab.txt2img("a red circle", **{"steps": 2, "sampler": "Euler", "seed": 1})  # warm up
    start = time.perf_counter()
    sd_lab.txt2img("a red circle", steps=8, sampler="Euler", seed=1, width=128, height=128)
    took = time.perf_counter() - start
    guess = estimate(sd_lab, sized(steps=8, width=128, height=128)).seconds
    assert took / 10 < guess < took * 10, (guess, took)



def test_the_weight_count_follows_a_change_of_dtype():
    import torch

    from tests.helpers.labs import make_lab

    lab = make_lab("toy")
    full = lab.weight_bytes
    assert full == weight_bytes(lab.components) and lab.weight_bytes == full  # counted once, then the same answer
    encoder = lab.components["text_encoder"]
    encoder_bytes = sum(t.numel() * t.element_size() for t in (*encoder.parameters(), *encoder.buffers()))
    encoder.to(torch.float16)  # halves the text encoder's floating-point weights
    assert lab.weight_bytes == weight_bytes(lab.components) < full
    assert full - lab.weight_bytes <= encoder_bytes // 2
