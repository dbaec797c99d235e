"""Browser-test fixtures: a headless JupyterLab server on a free localhost port and Debian's Chromium driven by
Playwright (never `playwright install`: nothing is downloaded at run time).

Skipped, with the reason, only when /usr/bin/chromium or the playwright package is missing (`bin/setup`
installs both). Screenshots go to test-artifacts/browser/.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "labkit-browser-test"
# No network here: without these Chromium keeps dialing out (and logging refused connections).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 90  # seconds for the server to answer /api/status (a slow, shared machine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running Jupyter server: `url(path)` gives an address with the token; `root` is its notebook folder."""

    def __init__(self, root: Path, port: int, process, log: Path):
        self.root, self.port, self.process, self.log = root, port, process, log
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={TOKEN}"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def shutdown_kernels(self, path=None) -> None:
        """Stop the kernel of every session (or of the notebook at `path`): closing a page does not."""
        for session in self.api("sessions") or []:
            if path is not None and session.get("path") != path:
                continue
            try:
                self.api(f"sessions/{session['id']}", method="DELETE")
            except OSError:
                pass


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test leaves a screenshot of every open page: test-artifacts/browser/FAILED-<test>-N.png."""
    report = yield
    browser = item.funcargs.get("browser") if hasattr(item, "funcargs") else None
    if report.failed and browser is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pages = [page for context in browser.contexts for page in context.pages]
        for i, page in enumerate(pages):
            try:
                page.screenshot(path=str(ARTIFACTS / f"FAILED-{item.name}-{i}.png"))
            except Exception:  # the page may be gone; the report matters more than the picture
                pass
    return report


@pytest.fixture(scope="session")
def chromium_path():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run bin/setup as root (it runs `apt-get install -y chromium`), "
                    f"or `sudo apt-get install -y chromium`")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: "
                                                      "`.venv/bin/pip install -e '.[dev]'` (bin/setup does)")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.txt")]:
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="session")
def jupyter(chromium_path, tmp_path_factory):
    """JupyterLab (with Notebook 7's pages when `notebook` is installed), headless, offline, fixed token,
    every Jupyter folder (config, data, runtime, settings, workspaces) inside a temporary folder."""
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "notebooks"
    root.mkdir()
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps(
        {"fetchNews": "false", "checkForUpdates": False}))  # no "get Jupyter news?" toast over the screenshots
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_DATA_DIR=str(base / "data"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), JUPYTER_PLATFORM_DIRS="1",
               # torch's OpenMP threads spin-wait: on a 2-core machine busy with other work, 2 threads run the
               # toy model ~100x slower than 1 (measured: 3 s vs 0.015 s per step)
               OMP_NUM_THREADS="1")
    port = free_port()
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    log = base / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(args, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(root, port, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer on port {port} in {START_TIMEOUT} s:\n"
                                f"{server.log_tail()}")
                time.sleep(0.3)
        yield server
    finally:
        try:
            server.shutdown_kernels()
        except OSError:
            pass
        _stop(process)


def _stop(process) -> None:
    """SIGTERM the server's process group (the server then stops its kernels), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def lora_file(jupyter) -> Path:
    """A kohya LoRA for the embedded `toy` model, written here with the helpers tests/test_lora.py uses: random
    rank-4 up/down weights on every attention projection of the toy UNet (enough to change the picture)."""
    import labkit
    from tests.helpers.lora_files import kohya_unet_diffusers, lora_parts, write

    lab = labkit.open("toy")
    modules = [(name, shape) for name, shape in kohya_unet_diffusers(lab) if "_attn" in name]
    assert modules, "the toy UNet has no attention projections?"
    return write(jupyter.root / "browser_style.safetensors", modules, lora_parts, seed=11)
