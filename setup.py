"""Build hook: a built wheel carries the widgets' browser code as labkit/widgets/ (all else is in pyproject.toml).

The repository's widgets/ folder stays the one copy in git; build_py copies its *.js and *.css into the build
tree, where labkit/ui/mask.py (widget_file) finds them in an installed wheel. Editable installs skip the copy
(setuptools sets editable_mode): labkit then reads widgets/ in the checkout, so an edit shows without reinstalling.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent / "widgets"
PACKAGED = ("labkit", "widgets")  # where the wheel holds them; labkit/ui/mask.py looks there first


class BuildPyWithWidgets(build_py):
    """build_py, then widgets/*.js and *.css copied to labkit/widgets/ in the build tree (not when editable)."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        files = sorted(SOURCE.glob("*.js")) + sorted(SOURCE.glob("*.css"))
        if not files:
            raise FileNotFoundError(f"{SOURCE} holds no *.js or *.css: the wheel would lack the widgets' browser "
                                    f"code; build from a checkout (or an sdist) that has the widgets/ folder.")
        target = Path(self.build_lib, *PACKAGED)
        shutil.rmtree(target, ignore_errors=True)  # a widget deleted from widgets/ must not linger in build/
        self.mkpath(str(target))
        for source in files:
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithWidgets})
