"""Agent code must not end cogscope's process: `os._exit` and `os.abort` raise instead.

cogscope runs operator-written code in its own process: agent files, factories and the tools they
give the agent. `sys.exit()`, `raise SystemExit` and `raise KeyboardInterrupt` are exceptions, and the
registry and the cycle catch them. `os._exit(n)` and `os.abort()` are not: they end the process on the
spot, and with it the web app or the CLI, silently. `install()` replaces both, process-wide, with
functions that raise `ExitRefused` (an ordinary exception: a tool that calls `os._exit(7)` fails like
any other tool and the agent sees the error).

What legitimately calls `os._exit` in this process keeps working:
- a child made by `os.fork()` without exec (multiprocessing's fork start method, `socketserver`'s
  ForkingMixIn, `pty.fork`, `http.server`'s CGI): the guard sees that its pid is not the pid it was
  installed in and ends that child for real;
- interpreter shutdown (`sys.is_finalizing()`);
- cogscope's own deliberate exits, which call `exit_now()` (the original `os._exit`).
(A `subprocess.Popen` child never reaches Python's `os._exit`: its failures are handled in C.)

What the guard cannot stop, from code in the same process: `os.kill(os.getpid(), signal.SIGKILL)`
(or any fatal signal), `signal.raise_signal`, `ctypes` calls into libc's `_exit`/`abort`, a module that
bound `_exit` before the guard was installed (`from posix import _exit`), a segfault in a C extension.
Only running the code in another process stops those (model-written code does run in the sandbox).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import NoReturn

_real_exit = os._exit
_real_abort = os.abort
_lock = threading.Lock()
_installed_pid: int | None = None


class ExitRefused(RuntimeError):
    """Agent code tried to end cogscope's process; str() says what it called."""


def _refuse() -> bool:
    """True when an exit must raise: in the process the guard was installed in, outside shutdown."""
    return os.getpid() == _installed_pid and not sys.is_finalizing()


def _guarded_exit(status: int) -> NoReturn:
    if not _refuse():
        _real_exit(status)
    raise ExitRefused(
        f"os._exit({status!r}) was refused: it would end cogscope's process; "
        "raise an exception or return an error instead"
    )


def _guarded_abort() -> NoReturn:
    if not _refuse():
        _real_abort()
    raise ExitRefused("os.abort() was refused: it would end cogscope's process; raise an exception instead")


# __wrapped__ only (inspect.unwrap reaches the real functions); the guards keep their own names
functools.update_wrapper(_guarded_exit, _real_exit, assigned=(), updated=())
functools.update_wrapper(_guarded_abort, _real_abort, assigned=(), updated=())


def install() -> None:
    """Guard this process (idempotent; cheap). The registry calls it before it runs any agent code."""
    global _installed_pid
    with _lock:
        if _installed_pid == os.getpid() and os._exit is _guarded_exit:
            return
        _installed_pid = os.getpid()
        os._exit = _guarded_exit
        os.abort = _guarded_abort


def installed() -> bool:
    return _installed_pid == os.getpid() and os._exit is _guarded_exit


def exit_now(status: int) -> NoReturn:
    """End the process at once, for real: for cogscope's own deliberate exits (e.g. a second Ctrl-C)."""
    _real_exit(status)
