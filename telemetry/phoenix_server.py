"""The embedded Phoenix: reuse one that answers, or start `phoenix serve` on loopback.

cogscope stops only what it started: a reused or remote Phoenix is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .errors import PhoenixPortTaken, PhoenixStartFailed, PhoenixUnreachable

TRACES_PATH = "/v1/traces"


def phoenix_version(url: str, timeout: float = 2.0) -> str | None:
    """Phoenix's version if `url` is a Phoenix server, else None (nothing there, or something else)."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/arize_phoenix_version", timeout=timeout)
    except httpx.HTTPError:
        return None
    text = response.text.strip()
    if response.status_code == 200 and text[:1].isdigit() and len(text) < 40 and "<" not in text:
        return text
    return None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def base_url_of(endpoint: str) -> str:
    """`http://host:6006/v1/traces` (a collector endpoint) or `http://host:6006` -> `http://host:6006`."""
    endpoint = endpoint.strip().rstrip("/")
    if endpoint.endswith(TRACES_PATH):
        endpoint = endpoint[: -len(TRACES_PATH)]
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PhoenixUnreachable(
            f"Phoenix endpoint {endpoint!r} is not an http(s) URL; set PHOENIX_COLLECTOR_ENDPOINT like "
            "http://127.0.0.1:6006"
        )
    return endpoint


@dataclass
class PhoenixServer:
    """A Phoenix that answers at `url`; `process` is set only when cogscope started it."""

    url: str
    version: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def collector_endpoint(self) -> str:
        return self.url + TRACES_PATH

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Phoenix if cogscope started it; a reused Phoenix is left running."""
        if self.process is None or self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def connect_phoenix(endpoint: str) -> PhoenixServer:
    """A Phoenix that is already running (remote or local) at `endpoint`."""
    url = base_url_of(endpoint)
    version = phoenix_version(url, timeout=5.0)
    if version is None:
        raise PhoenixUnreachable(
            f"no Phoenix answers at {url}; start it there or unset PHOENIX_COLLECTOR_ENDPOINT "
            "to let cogscope start its own"
        )
    return PhoenixServer(url=url, version=version)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        with path.open(errors="replace") as f:
            return " | ".join(line.strip() for line in deque(f, maxlen=lines) if line.strip())
    except OSError:
        return ""


def ensure_phoenix(
    *,
    working_dir: Path,
    host: str = "127.0.0.1",
    port: int = 6006,
    grpc_port: int | None = None,
    timeout: float = 120.0,
) -> PhoenixServer:
    """Reuse the Phoenix answering at host:port, or start `phoenix serve` there with its SQLite in `working_dir`."""
    url = f"http://{host}:{port}"
    version = phoenix_version(url)
    if version is not None:
        return PhoenixServer(url=url, version=version)
    if port_in_use(host, port):
        raise PhoenixPortTaken(
            f"port {port} on {host} is taken by something that is not Phoenix; stop it, or set "
            "COGSCOPE_PHOENIX_PORT to a free port"
        )
    working_dir.mkdir(parents=True, exist_ok=True)
    log_path = working_dir / "phoenix.log"
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_HOST": host,
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port or free_port(host)),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    env.pop("PHOENIX_SQL_DATABASE_URL", None)  # the embedded Phoenix always keeps its SQLite in working_dir
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "phoenix.server.main", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches cogscope, which then stops Phoenix itself
        )
    server = PhoenixServer(url=url, version="", process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PhoenixStartFailed(
                f"phoenix serve exited with code {process.returncode} (log: {log_path}): {_tail(log_path)}"
            )
        version = phoenix_version(url, timeout=1.0)
        if version is not None:
            server.version = version
            return server
        time.sleep(0.3)
    server.stop()
    raise PhoenixStartFailed(
        f"phoenix serve did not answer at {url} within {timeout:.0f} s; see {log_path}: {_tail(log_path)}"
    )
