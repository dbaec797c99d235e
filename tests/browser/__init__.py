"""Real-browser tests of the Studio widget (JupyterLab 4 and Notebook 7, headless Chromium). A package, so that
its conftest does not take the module name `conftest` that tests/*.py import helpers from."""
