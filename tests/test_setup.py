"""The setup contract: light import, environment.yml in sync with pyproject.toml, scripts wired together."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def test_import_is_light():
    code = "import sys, time; t = time.perf_counter(); import labkit; dt = time.perf_counter() - t; " \
           "print(dt, 'torch' in sys.modules, 'diffusers' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["False", "False", "False"]


def _requirement_names(reqs):
    return {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].lower(): r for r in reqs}


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = [r for r in pip if not r.startswith("-e")]
    assert _requirement_names(listed) == _requirement_names(wanted)  # same names with the same bounds
    assert f"python>={project['requires-python'].removeprefix('>=')}" in env["dependencies"]


def test_every_dependency_has_a_lower_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]:
        assert ">=" in req, req


def test_setup_installs_every_extra():
    """The test environment has every optional extra (labkit[ray], labkit[tables]), so their tests run in CI."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    setup = (ROOT / "bin" / "setup").read_text()
    wanted = ",".join(project["optional-dependencies"])
    assert f'-e ".[{wanted}]"' in setup


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "bin/test" in readme.split("\n## ")[0]  # the opening section names both commands
    assert "bin/lab" in readme.split("\n## ")[0]
    assert "exec bin/test" in (ROOT / ".ci" / "run").read_text()
    assert 'torch==2.13.0' in (ROOT / "bin" / "setup").read_text()


def test_setup_installs_spandrel_without_its_torchvision_requirement():
    from labkit.upscalers.library import REQUIREMENT

    assert f'--no-deps "{REQUIREMENT}"' in (ROOT / "bin" / "setup").read_text()
    assert REQUIREMENT in (ROOT / "environment.yml").read_text()
