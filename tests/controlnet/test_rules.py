"""A1111's ControlNet rules, each against a hand-written reference of the extension's code (read from
Mikubill/sd-webui-controlnet: scripts/hook.py, scripts/controlnet.py, internal_controlnet/external_code.py)."""

import pytest

from labkit.controlnet.hook import ControlHook
from labkit.controlnet.units import CONTROL_MODES, active, layer_scales, uncond_gets_control


def a1111_active(sampling_step, total, start, end):
    # hook.py: guidance_stopped = percent < start or percent > end, percent = sampling_step / total_sampling_steps
    percent = sampling_step / total
    return not (percent < start or percent > end)


def a1111_sampling_steps_seen(steps, second_order):
    """The `state.sampling_step` each model call sees in A1111: k-diffusion calls the callback (which sets it to
    i) after the first model call of step i; a second-order sampler's second call (none on the last step) follows
    that callback."""
    seen, state = [], 0
    for i in range(steps):
        seen.append(state)  # first call of step i
        state = i  # callback({'i': i})
        if second_order and i < steps - 1:
            seen.append(state)  # second call
    return seen


@pytest.mark.parametrize("start, end", [(0.0, 1.0), (0.2, 0.5), (0.0, 0.5), (0.35, 0.35), (0.5, 1.0), (1.0, 1.0)])
@pytest.mark.parametrize("steps", [1, 7, 20])
@pytest.mark.parametrize("order", [1, 2])
def test_a_unit_acts_in_the_calls_a1111_lets_it_act_in(start, end, steps, order):
    seen = a1111_sampling_steps_seen(steps, order == 2)
    expected = [a1111_active(s, steps, start, end) for s in seen]
    hook = ControlHook([], steps, cfg=False, order=order)
    got = []
    for _ in seen:
        got.append(active(hook.step, steps, start, end))
        hook.calls += 1
    assert got == expected


def test_a1111s_rule_keeps_a_unit_longer_than_diffusers_rule():
    # diffusers: keep while i / N >= start and (i + 1) / N <= end (pipeline_controlnet.py controlnet_keep)
    steps, end = 20, 0.5
    diffusers = [i for i in range(steps) if (i + 1) / steps <= end]
    seen = a1111_sampling_steps_seen(steps, False)
    a1111 = [i for i, s in enumerate(seen) if a1111_active(s, steps, 0.0, end)]
    assert diffusers == list(range(10)) and a1111 == list(range(12))  # steps 0-9 vs 0-11, as the report said


def a1111_scales(mode, weight, is_sdxl):
    scales = [weight] * 13
    if mode != "Balanced":  # soft_injection = control_mode != BALANCED
        scales = [weight * (0.825 ** float(12 - i)) for i in range(13)]
    return scales[:10] if is_sdxl else scales


@pytest.mark.parametrize("mode", CONTROL_MODES)
@pytest.mark.parametrize("weight", [0.0, 0.6, 1.0, 2.0])
def test_per_residual_scales_are_the_extensions(mode, weight):
    assert layer_scales(mode, weight, 13) == pytest.approx(a1111_scales(mode, weight, False))
    assert layer_scales(mode, weight, 10, xl=True) == pytest.approx(a1111_scales(mode, weight, True))
    if mode != "Balanced":
        assert layer_scales(mode, 1.0, 10, xl=True)[-1] == pytest.approx(0.825 ** 3)  # SDXL's middle: 0.56


def test_only_controlnet_is_more_important_keeps_the_control_off_the_negative_prompt():
    # cfg_injection = control_mode == CONTROL
    assert [uncond_gets_control(m) for m in CONTROL_MODES] == [True, True, False]
