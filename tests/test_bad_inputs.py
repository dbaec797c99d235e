"""Issue #16's bad-input table (tests/helpers/bad_inputs/): every public entry point answers each bad input with a
LabkitError whose message names the fix, raised before any work (no file written, the Labs unchanged), or accepts
the input and converts it correctly; docs/errors.md is what the table gives today."""

import re
from collections import Counter

import pytest

from labkit import LabkitError
from tests.helpers.bad_inputs import all_cases
from tests.helpers.bad_inputs.doc import PAGE, _has_gpu, render
from tests.helpers.bad_inputs.env import Env

CASES = all_cases()
ENTRY_POINTS = {
    "labkit.open", "labkit.inspect", "labkit.read_recipe", "labkit.read_params", "Params", "Lab.txt2img",
    "Lab.img2img", "Lab.inpaint", "Lab.outpaint", "Lab.reproduce", "Lab.save_single_file", "Lab.load_embedding",
    "Lab.encode_prompt", "lab.loras", "labkit.grid", "Result.save", "labkit.lora.train", "labkit.samplers",
    "labkit.tokenizer", "labkit.sweep.generate", "labkit.sweep.notebooks", "lab.controlnets", "ControlUnit",
    "labkit.upscale",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return Env(tmp_path_factory.mktemp("bad_inputs"))


def test_the_table_covers_every_entry_point():
    counts = Counter(case.entry for case in CASES)
    assert len(CASES) >= 150 and ENTRY_POINTS <= set(counts), counts
    assert len({case.id for case in CASES}) == len(CASES), "two cases share a description"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, env):
    if case.cpu_only and _has_gpu():
        pytest.skip("the outcome of a device name depends on the machine's GPUs")
    if case.fix is None:
        case.check(case.call(env), env)
        return
    before = env.state()
    with pytest.raises(LabkitError) as error:
        case.call(env)
    assert isinstance(error.value, case.error), f"{type(error.value).__name__}: {error.value}"
    assert re.search(case.fix, str(error.value), re.S), str(error.value)
    assert env.state() == before, "a refused call wrote a file or changed a Lab"


@pytest.mark.slow
def test_errors_page_is_current(env):
    if _has_gpu():
        pytest.skip("docs/errors.md is written on a machine without a GPU (its device messages say so)")
    assert PAGE.read_text(encoding="utf-8") == render(CASES, env), \
        "docs/errors.md is stale: python -m tests.helpers.bad_inputs.doc"
