"""The embedded Phoenix: reuse one that answers, or start `phoenix serve` on loopback.

cogscope stops only what it started: a reused or remote Phoenix is never touched. A Phoenix it starts
listens on `host` only, for HTTP and for OTLP over gRPC: Phoenix binds gRPC to every interface
(`[::]`, hard-coded, no setting for it), so cogscope starts it through a small program that rebinds gRPC
to `host` first. It is tied to cogscope by a lifeline (telemetry.children): when cogscope ends, however
it ends (even SIGKILL), Phoenix shuts itself down, unless cogscope detached it (`detach()`: the
`cogscope run` commands leave it running so the trace link they print keeps working).

Storage: SQLite in its working dir, or the PostgreSQL database given as `database_url` (COGSCOPE_DATABASE_URL;
several Phoenix servers may share one). cogscope checks that database before starting Phoenix
(`telemetry.database_url`), so that a wrong URL, password or database ends in one line that says what to fix.

Web pages: the Phoenix cogscope starts answers only its own Host names and refuses requests pages of other origins
make (`telemetry.host_guard`, given to Phoenix through its own setting PHOENIX_FASTAPI_MIDDLEWARE_PATHS). cogscope
checks that the guard is on before it uses that Phoenix: a Phoenix release that no longer reads the setting is
stopped, with one line that says what to do, rather than left open to any page.
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

from . import host_guard
from .children import Lifeline, python_child
from .database_url import DATABASE_URL_ENV, check_database, check_database_url, without_password
from .errors import PhoenixPortTaken, PhoenixStartFailed, PhoenixUnreachable

TRACES_PATH = "/v1/traces"
GRPC_HOST_ENV = "COGSCOPE_PHOENIX_GRPC_HOST"
# Phoenix's setting for middleware of one's own ("file_path:ClassName", comma separated): the host guard goes there
PHOENIX_MIDDLEWARE_ENV = "PHOENIX_FASTAPI_MIDDLEWARE_PATHS"
GUARD_CHECK_HOST = "cogscope-guard-check.invalid"  # a name no page can have: the started Phoenix must refuse it
# Phoenix's own storage variables: the Phoenix cogscope starts stores where cogscope says (database_url), not
# where a stray PHOENIX_SQL_DATABASE_URL or PHOENIX_POSTGRES_* in the environment would send it
_PHOENIX_STORAGE_ENV = ("PHOENIX_SQL_DATABASE_URL", "PHOENIX_SQL_DATABASE_READ_REPLICA_URL")
_PHOENIX_STORAGE_PREFIX = "PHOENIX_POSTGRES_"

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


def phoenix_storage(url: str, timeout: float = 5.0) -> str | None:
    """Where the Phoenix at `url` stores: "sqlite", "postgresql", or None when it does not say."""
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/graphql", json={"query": "{ dbTableStats { tableName } }"}, timeout=timeout
        )
        tables = [row["tableName"] for row in response.json()["data"]["dbTableStats"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    if tables == ["SQLite"]:
        return "sqlite"
    return "postgresql" if tables else None


def base_url_of(endpoint: str) -> str:
    """`http://host:6006/v1/traces` (a collector endpoint) or `http://host:6006` -> `http://host:6006`."""
    endpoint = endpoint.strip().rstrip("/")
    if endpoint.endswith(TRACES_PATH):
        endpoint = endpoint[: -len(TRACES_PATH)]
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as e:
        raise PhoenixUnreachable(
            f"Phoenix endpoint {endpoint[:200]!r} is not a valid URL ({e}); set PHOENIX_COLLECTOR_ENDPOINT like "
            "http://127.0.0.1:6006"
        ) from None
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


def _check_guarded(server: PhoenixServer) -> None:
    """The Phoenix cogscope started refuses a foreign Host; else it is stopped (PhoenixStartFailed, one line)."""
    try:
        status = httpx.get(
            f"{server.url}/arize_phoenix_version", headers={"Host": GUARD_CHECK_HOST}, timeout=10
        ).status_code
    except httpx.HTTPError:
        status = 0
    if status == host_guard.REFUSED:
        return
    server.stop()
    raise PhoenixStartFailed(
        f"the Phoenix cogscope started (arize-phoenix {server.version}) answers requests for any host name: this "
        f"release does not read {PHOENIX_MIDDLEWARE_ENV}, through which cogscope keeps web pages of other sites out "
        "of it (DNS rebinding); install the arize-phoenix version pyproject.toml names, or run a Phoenix of your own "
        "and set PHOENIX_COLLECTOR_ENDPOINT to it"
    )


def ensure_phoenix(
    *,
    working_dir: Path,
    host: str = "127.0.0.1",
    port: int = 6006,
    grpc_port: int | None = None,
    timeout: float = 120.0,
    database_url: str | None = None,
) -> PhoenixServer:
    """Reuse the Phoenix answering at host:port, or start `phoenix serve` there: its SQLite in `working_dir`, or,
    with `database_url` (postgresql://...), in that PostgreSQL database (checked first: PhoenixStartFailed)."""
    url = f"http://{host}:{port}"
    if database_url is not None:
        try:
            database_url = check_database_url(database_url)
        except ValueError as e:
            raise PhoenixStartFailed(str(e)) from None
    running = _running_phoenix(url, database_url)
    if running is not None:
        return running
    if port_in_use(host, port):
        raise PhoenixPortTaken(
            f"port {port} on {host} is taken by something that is not Phoenix; stop it, or set "
            "COGSCOPE_PHOENIX_PORT to a free port"
        )
    if database_url is not None:
        check_database(database_url)
    working_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    working_dir.chmod(0o700)  # Phoenix's SQLite (phoenix.db: every trace) is for the user who runs cogscope only
    env = _phoenix_env(working_dir, host=host, port=port, grpc_port=grpc_port, database_url=database_url)
    server = _spawn_phoenix(url, env, log_path=working_dir / "phoenix.log")
    return _wait_until_up(server, timeout=timeout, database_url=database_url)


def _running_phoenix(url: str, database_url: str | None) -> PhoenixServer | None:
    """The Phoenix already answering at `url` (None: none does); PhoenixPortTaken when it stores in SQLite but
    cogscope was told to store in a database."""
    version = phoenix_version(url)
    if version is None:
        return None
    if database_url is not None and phoenix_storage(url) == "sqlite":
        raise PhoenixPortTaken(
            f"the Phoenix at {url} stores in SQLite, not in {DATABASE_URL_ENV}'s database; stop it (an earlier "
            "`cogscope run` may have left it running) or set COGSCOPE_PHOENIX_PORT to a free port"
        )
    return PhoenixServer(url=url, version=version)


def _phoenix_env(
    working_dir: Path, *, host: str, port: int, grpc_port: int | None, database_url: str | None
) -> dict[str, str]:
    """The environment of the Phoenix cogscope starts: where it listens and stores, and the host guard."""
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_HOST": host,
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port or free_port(host)),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        GRPC_HOST_ENV: host,
    }
    for name in [*_PHOENIX_STORAGE_ENV, *(n for n in env if n.startswith(_PHOENIX_STORAGE_PREFIX))]:
        env.pop(name, None)  # the embedded Phoenix stores where cogscope says: SQLite in working_dir, or database_url
    if database_url is not None:
        env["PHOENIX_SQL_DATABASE_URL"] = database_url
    guard = f"{Path(host_guard.__file__).resolve()}:{host_guard.PHOENIX_GUARD}"
    env[PHOENIX_MIDDLEWARE_ENV] = ",".join(p for p in (env.get(PHOENIX_MIDDLEWARE_ENV, "").strip(), guard) if p)
    return env


def _spawn_phoenix(url: str, env: dict[str, str], *, log_path: Path) -> PhoenixServer:
    """Start `phoenix serve`, tied to cogscope by a lifeline, its output in `log_path`; not yet answering."""
    lifeline = Lifeline()
    try:
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                python_child("phoenix.server.main", ["serve"], setup=_BIND_GRPC),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches cogscope, which then stops Phoenix itself
                umask=0o077,  # phoenix.db and what else Phoenix writes: mode 600
                **lifeline.popen_kwargs(env),
            )
    except BaseException:
        lifeline.close()
        raise
    lifeline.started()
    return PhoenixServer(url=url, version="", process=process, log_path=log_path, lifeline=lifeline)


def _wait_until_up(server: PhoenixServer, *, timeout: float, database_url: str | None) -> PhoenixServer:
    """Wait for the Phoenix just started to answer (and check its host guard); PhoenixStartFailed, with the end of
    its log, when it exits or does not answer within `timeout` s."""
    process, log_path, lifeline = server.process, server.log_path, server.lifeline
    assert process is not None and log_path is not None and lifeline is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lifeline.close()
            raise PhoenixStartFailed(
                f"phoenix serve exited with code {process.returncode} (log: {log_path}): "
                + without_password(_tail(log_path), database_url)
            )
        version = phoenix_version(server.url, timeout=1.0)
        if version is not None:
            server.version = version
            _check_guarded(server)
            return server
        time.sleep(0.3)
    server.stop()
    raise PhoenixStartFailed(
        f"phoenix serve did not answer at {server.url} within {timeout:.0f} s; see {log_path}: "
        + without_password(_tail(log_path), database_url)
    )
