"""Checks that run before anything starts (Phoenix, a model server, the app), so that a data dir cogscope cannot
write or an app port that is taken is one line that says what to fix, not a traceback half-way through starting.

`check_data_dir` is the one place that decides whether `$COGSCOPE_DATA_DIR` is usable: everything cogscope keeps
(Phoenix's SQLite, the span spool, the signing key, the memory store, sandbox folders) lives under it.
"""

from __future__ import annotations

import errno
import socket
import tempfile
from pathlib import Path

from .errors import UsageError

DATA_DIR_FIX = "set COGSCOPE_DATA_DIR to a writable folder"


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def check_data_dir(path: Path) -> Path:
    """Make `path` (and its parents) when missing and prove a file can be written in it; UsageError otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"data dir {path} is not a folder (it is a file); {DATA_DIR_FIX}")
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)  # new: the user's alone (memories, traces, keys)
    except OSError as e:
        raise UsageError(f"data dir {path} cannot be created ({_reason(e)}); {DATA_DIR_FIX}") from None
    try:
        # root ignores file modes, so only a real write tells (a read-only mount, a full quota, ...)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cogscope-write-check-") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as e:
        raise UsageError(f"data dir {path} is not writable ({_reason(e)}); {DATA_DIR_FIX}") from None
    return path


def check_port_free(host: str, port: int, *, setting: str = "--port or COGSCOPE_PORT") -> None:
    """The app can listen on host:port (what Gradio tries when it starts); UsageError when it cannot."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"cannot listen on {host!r}: it is not an address of this machine ({e})") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Gradio does: a port in TIME_WAIT is free
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is already in use; stop what listens there, or pick another with {setting}"
                ) from None
            raise UsageError(f"cannot listen on {host}:{port} ({_reason(e)}); pick another with {setting}") from None


def needs_data_dir(command: str | None, memory: str | None = None) -> bool:
    """Every command keeps something in the data dir, except serving or seeding a memory store given by path."""
    return not (command in ("mcp-serve", "seed-memory") and memory)
