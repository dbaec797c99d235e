"""docs/errors.md, written from the bad-input table: each entry point's refused inputs with the error and its
message as labkit gives it today, and the inputs it accepts and converts. tests/test_bad_inputs.py checks that the
page is current; regenerate it with

    HF_HUB_OFFLINE=1 .venv/bin/python -m tests.helpers.bad_inputs.doc      # writes docs/errors.md
"""

import inspect
import os
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[3]
PAGE = ROOT / "docs" / "errors.md"

INTRO = """# Errors: what labkit says, and what to do

Every error labkit raises on purpose is a `labkit.LabkitError`, raised before any work starts (no file written,
the Lab unchanged), and its message names the fix. This page is written from the bad-input table of the tests
(`tests/helpers/bad_inputs/`): each line below is a call from that table with the message labkit gives for it
today (`tests/test_bad_inputs.py` fails when the page and the code disagree; regenerate it with
`python -m tests.helpers.bad_inputs.doc`). Paths show as `<folder>`; the Labs are the embedded toy models.

## The kinds of error

{kinds}

## Limits: how big a run may be

Before any work, a Lab estimates a run's time and memory (`labkit.limits`: one small row per model family,
latent pixels x batch x steps; calibrated on the toy models and on published figures for full size) and refuses
a run over `lab.limits` with `TooLarge`, whose message gives the estimate. Raise the limit for one Lab with
`lab.limits = labkit.Limits(max_seconds=..., max_memory_gb=...)` (defaults: one hour, the device's memory), or
turn the check off with `lab.limits = None`. A grid of more than 200 cells runs only with `confirm=True`.
The examples below ran with `labkit.Limits(max_seconds=3600, max_memory_gb=16)`.

## CFG below 1

CFG exactly 1 is the prompt's prediction alone in every tool. Below 1 the tools part: diffusers (and so labkit)
turns guidance off at CFG <= 1, so labkit draws CFG 1's picture for any CFG in [0, 1], while A1111 and ComfyUI
extrapolate toward the negative prompt (CFG 0 is the negative prompt's prediction alone). A Result made with CFG
below 1 says so in its notes; the recipe keeps the value asked for. A negative CFG is refused.
"""


def kinds() -> str:
    import labkit.errors as errors

    rows = []
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.LabkitError):
            base = ", ".join(b.__name__ for b in cls.__bases__ if b is not Exception)
            doc = " ".join(cls.__doc__.split())
            rows.append(f"- `{name}`{f' ({base})' if base else ''}: {doc}")
    return "\n".join(sorted(rows, key=lambda row: (not row.startswith("- `LabkitError`"), row)))


def normalise(text: str, root: Path) -> str:
    """A message with the machine's paths and versions replaced, so the page is the same everywhere."""
    for path, label in ((str(root), "<folder>"), (str(ROOT), "<labkit>"), (os.getcwd(), "<cwd>"),
                        (str(Path.home()), "~")):
        text = text.replace(path, label)
    text = re.sub(r"/tmp/[^\s,:')]+", "<tmp>", text)
    text = re.sub(r"0x[0-9a-f]{6,}", "0x...", text)  # object addresses
    return re.sub(r"torch \d+\.\d+[^\s)]*", "torch <version>", text)


def outcome(case, env) -> tuple[str, str]:
    """(kind, text): the error's class and message, or "works" and what labkit does with the input."""
    from labkit import LabkitError

    try:
        result = case.call(env)
    except LabkitError as error:
        return type(error).__name__, normalise(str(error), env.root)
    case.check(result, env)
    return "works", case.note


def render(cases, env) -> str:
    sections, order = {}, []
    for case in cases:
        if case.cpu_only and _has_gpu():
            continue
        if case.entry not in sections:
            order.append(case.entry)
        sections.setdefault(case.entry, []).append((case, *outcome(case, env)))
    parts = [INTRO.format(kinds=kinds())]
    for entry in order:
        parts.append(f"## `{entry}`\n")
        refused = [(c, k, t) for c, k, t in sections[entry] if k != "works"]
        accepted = [(c, k, t) for c, k, t in sections[entry] if k == "works"]
        parts += [f"- `{c.what}` → **{k}**: {_quoted(t)}" for c, k, t in refused]
        if accepted:
            parts.append("\nAccepted and converted:\n")
            parts += [f"- `{c.what}`: {t}." for c, k, t in accepted]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _quoted(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def _has_gpu() -> bool:
    from labkit.devices import available

    return available() != ["cpu"]


def main() -> None:
    from . import all_cases
    from .env import Env

    with tempfile.TemporaryDirectory() as folder:
        PAGE.write_text(render(all_cases(), Env(Path(folder))), encoding="utf-8")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
