"""A real JupyterLab on a free port, driven by Debian's Chromium through Playwright (no browser download)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _serve(root: Path, module: str, extra: list[str]):
    """Start a Jupyter server app on a free port with a clean workspace and no news toasts."""
    notebooks, settings, workspaces = root / "notebooks", root / "settings", root / "workspaces"
    for d in (notebooks, settings, workspaces):
        d.mkdir()
    plugin = settings / "@jupyterlab" / "apputils-extension"
    plugin.mkdir(parents=True)
    (plugin / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                          "checkForUpdates": False}))
    port = _free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
         "--ServerApp.token=", "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={notebooks}",
         *[arg.format(settings=settings, workspaces=workspaces) for arg in extra]],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{module} exited: {(root / 'server.log').read_text()[-2000:]}") from None
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError(f"{module} did not start within 90 s")
    return proc, url, notebooks, log


def _stop(proc, log) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """(base_url, notebook_dir) of a JupyterLab 4 server."""
    root = tmp_path_factory.mktemp("lab")
    proc, url, notebooks, log = _serve(root, "jupyterlab", [
        "--LabApp.expose_app_in_browser=True", "--LabApp.user_settings_dir={settings}",
        "--LabApp.workspaces_dir={workspaces}"])
    yield url, notebooks
    _stop(proc, log)
    shutil.rmtree(root / "workspaces", ignore_errors=True)


@pytest.fixture(scope="session")
def notebook7(tmp_path_factory):
    """(base_url, notebook_dir) of a Jupyter Notebook 7 server."""
    pytest.importorskip("notebook")
    root = tmp_path_factory.mktemp("nb7")
    proc, url, notebooks, log = _serve(root, "notebook", [
        "--JupyterNotebookApp.user_settings_dir={settings}", "--JupyterNotebookApp.workspaces_dir={workspaces}"])
    yield url, notebooks
    _stop(proc, log)
