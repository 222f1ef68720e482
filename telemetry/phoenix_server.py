"""The embedded Phoenix: reuse one that answers, or start `phoenix serve` on loopback.

cogscope stops only what it started: a reused or remote Phoenix is never touched. A Phoenix it starts
listens on `host` only, for HTTP and for OTLP over gRPC: Phoenix binds gRPC to every interface
(`[::]`, hard-coded, no setting for it), so cogscope starts it through a small program that rebinds gRPC
to `host` first. It is tied to cogscope by a lifeline (telemetry.children): when cogscope ends, however
it ends (even SIGKILL), Phoenix shuts itself down, unless cogscope detached it (`detach()`: the
`cogscope run` commands leave it running so the trace link they print keeps working).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .children import Lifeline, python_child
from .errors import PhoenixPortTaken, PhoenixStartFailed, PhoenixUnreachable

TRACES_PATH = "/v1/traces"
GRPC_HOST_ENV = "COGSCOPE_PHOENIX_GRPC_HOST"

# Run in the Phoenix process before Phoenix: its gRPC server binds `[::]:PORT`; make that `HOST:PORT`.
_BIND_GRPC = f"""
import os as _os
import grpc.aio._server as _grpc_server

def _cogscope_bind(add_port, host=_os.environ.pop({GRPC_HOST_ENV!r})):
    host = f"[{{host}}]" if ":" in host else host
    def bound(self, address, *args, **kwargs):
        return add_port(self, host + ":" + address.rpartition(":")[2], *args, **kwargs)
    return bound

_grpc_server.Server.add_insecure_port = _cogscope_bind(_grpc_server.Server.add_insecure_port)
_grpc_server.Server.add_secure_port = _cogscope_bind(_grpc_server.Server.add_secure_port)
"""


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


class PhoenixServer:
    """A Phoenix that answers at `url`; `process` is set only when cogscope started it (and has not detached it)."""

    def __init__(
        self,
        url: str,
        version: str,
        process: subprocess.Popen[bytes] | None = None,
        log_path: Path | None = None,
        lifeline: Lifeline | None = None,
    ) -> None:
        self.url = url
        self.version = version
        self._process = process
        self.log_path = log_path
        self.lifeline = lifeline
        self.pid = process.pid if process is not None else None
        self._stopped = False

    def __repr__(self) -> str:
        return f"PhoenixServer(url={self.url!r}, version={self.version!r}, pid={self.pid}, tied={self.tied})"

    @property
    def collector_endpoint(self) -> str:
        return self.url + TRACES_PATH

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    @process.setter
    def process(self, value: subprocess.Popen[bytes] | None) -> None:
        if value is None:
            self.detach()  # forgetting the process cogscope started means leaving it running
        self._process = value

    @property
    def started_here(self) -> bool:
        return self._process is not None

    @property
    def tied(self) -> bool:
        """Stops when cogscope ends (a Phoenix cogscope started and did not detach)."""
        return self.lifeline is not None and not self.lifeline.detached and self._process is not None

    def detach(self) -> None:
        """Leave the Phoenix cogscope started running after cogscope ends; `stop()` no longer stops it."""
        if self.lifeline is not None:
            self.lifeline.detach()
        self._process = None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Phoenix if cogscope started it; a reused or detached Phoenix is left running."""
        process = self._process
        if process is None or self._stopped:
            return
        self._stopped = True
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self.lifeline is not None:
            self.lifeline.close()


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
        GRPC_HOST_ENV: host,
    }
    env.pop("PHOENIX_SQL_DATABASE_URL", None)  # the embedded Phoenix always keeps its SQLite in working_dir
    lifeline = Lifeline()
    try:
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                python_child("phoenix.server.main", ["serve"], setup=_BIND_GRPC),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches cogscope, which then stops Phoenix itself
                **lifeline.popen_kwargs(env),
            )
    except BaseException:
        lifeline.close()
        raise
    lifeline.started()
    server = PhoenixServer(url=url, version="", process=process, log_path=log_path, lifeline=lifeline)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lifeline.close()
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
