"""The built wheel works outside the checkout: package data, the widgets' browser code, the shipped LoRAs.

Builds run offline with the project venv's own setuptools, from a temporary copy of the build inputs (so no
build/ or egg-info is left in the checkout, and no stale build/ leaks in). Installs go into fresh virtual
environments that see the project venv's third-party packages through a .pth file holding its site-packages path:
a plain path line adds that folder to sys.path without running the .pth files inside it, so the project's
editable labkit finder stays inactive and `import labkit` can only find the labkit under test.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "labkit", "widgets")
WIDGETS = ("mask_canvas.js", "mask_canvas.css", "hotkeys.js", "pictures.js", "pictures.css")
DOCS = ("labkit/toy/README.md", "labkit/toy/logs/", "labkit/toy/samples/")  # kept out of the wheel on purpose

WHEEL_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
import labkit
from labkit.ui.mask import MaskCanvas, widget_file

checkout = Path(sys.argv[1]).resolve()
package = Path(labkit.__file__).resolve().parent
venv = Path(sys.prefix).resolve()
assert package.is_relative_to(venv), f"labkit imported from {package}, not from the new venv {venv}"
assert not package.is_relative_to(checkout), f"labkit imported from the checkout {package}"
assert not [m for m in sys.modules if m.startswith("__editable__")], "the project venv's editable finder ran"

canvas = MaskCanvas()
for name, code in (("mask_canvas.js", canvas._esm), ("mask_canvas.css", canvas._css)):
    assert widget_file(name) == package / "widgets" / name, f"{name} read from {widget_file(name)}"
    assert code.encode() == (checkout / "widgets" / name).read_bytes(), f"packaged {name} differs from widgets/"

lab = labkit.open("toy")
settings = dict(steps=2, width=64, height=64, seed=3)
plain = lab.txt2img("a red circle on a blue background", **settings)
pixels = np.asarray(plain.image, dtype=np.float32)  # (64, 64, 3)
assert pixels.shape == (64, 64, 3) and pixels.std() > 5, f"blank picture: std {pixels.std():.2f}"

found = lab.loras.find("outline")
assert found.parent == package / "toy" / "loras", f"the shipped LoRA 'outline' was found at {found}"
styled = lab.txt2img("a red circle on a blue background <lora:outline:1>", **settings)
names = [lora.name for lora in styled.model.loras]
change = np.abs(np.asarray(styled.image, dtype=np.float32) - pixels).mean()
assert names == ["outline"] and change > 1, f"<lora:outline:1> applied {names}, changed pixels by {change:.2f}"
print(json.dumps({"std": float(pixels.std()), "lora_change": float(change)}))
"""

EDITABLE_SCRIPT = r"""
import sys
from pathlib import Path
import labkit
from labkit.ui.mask import MaskCanvas, widget_file

source = Path(sys.argv[1]).resolve()
assert Path(labkit.__file__).resolve().parent == source / "labkit", f"labkit imported from {labkit.__file__}"
assert widget_file("mask_canvas.js") == source / "widgets" / "mask_canvas.js", widget_file("mask_canvas.js")
assert MaskCanvas()._esm.endswith("// edited after install\n"), "the editable install did not read widgets/ live"
"""


def environment() -> dict:
    """Offline, and nothing from the test run's own PYTHONPATH (which may point at the checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PIP_NO_INDEX": "1",
                  "PIP_DISABLE_PIP_VERSION_CHECK": "1", "OMP_NUM_THREADS": "1"}


def run(args, cwd, timeout=300) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=environment(), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copy_sources(dest: Path) -> Path:
    dest.mkdir()
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def new_venv(path: Path) -> Path:
    """A bare venv (no pip: the project's pip installs into it) seeing the project venv's packages."""
    run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent)
    python = path / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=path).strip()
    (Path(purelib) / "project-venv.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    return python


def pip_install(python: Path, *args, cwd):
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", *args], cwd=cwd)


def checkout_files() -> set:
    """The files of labkit/ in the checkout that labkit reads at run time (the wheel must hold exactly these)."""
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "labkit").rglob("*") if p.is_file()}
    return {f for f in files if "__pycache__" not in f and not f.endswith(".pyc") and not f.startswith(DOCS)}


@pytest.fixture(scope="module")
def work():
    with tempfile.TemporaryDirectory(prefix="labkit-wheel-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def wheel(work):
    source = copy_sources(work / "src")
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", work / "dist"], cwd=source)
    (built,) = (work / "dist").glob("labkit-*.whl")
    return built


def test_wheel_holds_the_runtime_files_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        absent = [name for name in WIDGETS if f"labkit/widgets/{name}" not in names]
        assert not absent, f"the wheel lacks labkit/widgets/{absent}: setup.py's build hook did not copy widgets/"
        for name in WIDGETS:
            packaged = archive.read(f"labkit/widgets/{name}")
            assert packaged == (ROOT / "widgets" / name).read_bytes(), f"labkit/widgets/{name} differs from widgets/"
    package = {n for n in names if n.startswith("labkit/")}
    expected = checkout_files() | {f"labkit/widgets/{name}" for name in WIDGETS}
    assert not expected - package, f"missing from the wheel (add to package-data): {sorted(expected - package)}"
    assert not package - expected, f"unexpected in the wheel: {sorted(package - expected)}"
    junk = [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "tests/" in n
            or Path(n).name.startswith("test_") or Path(n).name == "conftest.py"]
    assert not junk, f"junk in the wheel: {junk}"
    others = {n.split("/")[0] for n in names} - {"labkit"}
    assert len(others) == 1 and min(others).endswith(".dist-info"), f"the wheel installs more than labkit: {others}"


def test_sdist_holds_what_building_the_wheel_needs(work, wheel):
    source = work / "src"
    run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(work / 'sdist')!r})"],
        cwd=source)
    (sdist,) = (work / "sdist").glob("labkit-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    needed = {"pyproject.toml", "setup.py", "README.md"} | {f"widgets/{name}" for name in WIDGETS} | checkout_files()
    assert not needed - names, f"missing from the sdist: {sorted(needed - names)}"


def test_installed_wheel_works_outside_the_checkout(work, wheel):
    python = new_venv(work / "venv")
    pip_install(python, "--no-compile", wheel, cwd=work)
    package = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work)
                   .strip()) / "labkit"
    with zipfile.ZipFile(wheel) as archive:
        packed = {n for n in archive.namelist() if n.startswith("labkit/")}
    installed = {p.relative_to(package.parent).as_posix() for p in package.rglob("*") if p.is_file()}
    assert installed == packed, f"installed files differ from the wheel: {sorted(installed ^ packed)}"

    outside = work / "elsewhere"  # neither the checkout nor the build copy: only the venv's labkit is importable
    outside.mkdir()
    script = outside / "check_wheel.py"
    script.write_text(WHEEL_SCRIPT)
    result = json.loads(run([python, script, ROOT], cwd=outside).splitlines()[-1])
    assert result["std"] > 5 and result["lora_change"] > 1, result


def test_editable_install_reads_widgets_from_the_checkout(work):
    """setup.py's hook copies nothing for `pip install -e .`: labkit reads widgets/ in the checkout, so an edit
    there shows without reinstalling."""
    source = copy_sources(work / "editable-src")
    python = new_venv(work / "editable-venv")
    pip_install(python, "--no-build-isolation", "-e", source, cwd=work)
    with open(source / "widgets" / "mask_canvas.js", "a") as js:
        js.write("// edited after install\n")
    script = work / "check_editable.py"
    script.write_text(EDITABLE_SCRIPT)
    run([python, script, source], cwd=work)
    assert not (source / "labkit" / "widgets").exists(), "the editable install copied widgets/ into labkit/"
