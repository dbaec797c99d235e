"""The bad-input table of issue #16: every public entry point fed inputs it must refuse with a LabkitError whose
message names the fix (raised before any work, nothing written, the Lab untouched), or accept and convert
correctly. tests/test_bad_inputs.py runs it; `python -m tests.helpers.bad_inputs` writes docs/errors.md from it, and
a test checks that the page is what the table gives today.

A case is a `Case`: the entry point, the input in words, `call(env)`, and either `fix` (a regex that the message
must match: a phrase of the fix) with the error class, or `check(result, env)` for an input that must work.
"""

from collections.abc import Callable
from dataclasses import dataclass

from labkit import BadInput


@dataclass(frozen=True)
class Case:
    entry: str  # the public entry point, as docs/errors.md groups them
    what: str  # the input, as a user would write it
    call: Callable  # call(env) -> result
    fix: str | None = None  # regex matched against the message (None: the call must work)
    error: type = BadInput
    check: Callable | None = None  # check(result, env) for calls that must work
    note: str = ""  # what the doc says about a call that works
    cpu_only: bool = False  # the outcome holds where torch has no GPU (device cases)

    @property
    def id(self) -> str:
        return f"{self.entry}: {self.what}"


def refuses(entry: str, what: str, call, fix: str, error=BadInput, cpu_only: bool = False) -> Case:
    return Case(entry, what, call, fix=fix, error=error, cpu_only=cpu_only)


def works(entry: str, what: str, call, check, note: str) -> Case:
    return Case(entry, what, call, check=check, note=note)


def all_cases() -> list[Case]:
    from . import controlnets, files, generate, hires, other, params, recipes, sweeps

    return [*params.CASES, *files.CASES, *generate.CASES, *recipes.CASES, *other.CASES, *sweeps.CASES,
            *controlnets.CASES, *hires.CASES]
