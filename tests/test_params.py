import pytest

from labkit import BadInput, LabkitError, Params


def test_defaults_are_a1111s():
    p = Params()
    assert (p.steps, p.cfg, p.sampler, p.schedule, p.clip_skip, p.seed) == (20, 7.0, "DPM++ 2M", "Automatic", 1, -1)
    assert p.validate() is p


def test_frozen_and_replace():
    p = Params(prompt="a red circle")
    with pytest.raises(Exception):
        p.steps = 3
    q = p.replace(steps=3)
    assert (q.steps, q.prompt, p.steps) == (3, "a red circle", 20)


def test_unknown_setting_lists_valid_names():
    with pytest.raises(BadInput, match="Valid settings: prompt"):
        Params().replace(stepz=3)


@pytest.mark.parametrize("change, fix", [
    ({"width": 65}, "use 64"), ({"height": 101}, "use 104"), ({"steps": 0}, "at least 1 step"),
    ({"strength": 0.0}, r"outside \(0, 1\]"), ({"strength": 1.5}, r"outside \(0, 1\]"),
    ({"switch_at": 1.0}, r"outside \(0, 1\)"), ({"switch_at": 0}, r"outside \(0, 1\)"),
    ({"batch_size": 0}, "at least 1"), ({"noise": "gpu"}, "not one of"), ({"clip_skip": 0}, "counts from 1"),
])
def test_bad_settings_name_the_fix(change, fix):
    with pytest.raises(BadInput, match=fix) as err:
        Params(**change).validate()
    assert isinstance(err.value, LabkitError)


def test_dict_round_trip():
    p = Params(prompt="x", seed=5, width=64, height=64)
    assert Params.from_dict({**p.to_dict(), "extra": 1}) == p
