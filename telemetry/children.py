"""Child servers that never outlive cogscope, however it ends: Ctrl-C, SIGTERM, SIGHUP, SIGKILL, a crash.

cogscope starts two servers of its own: Phoenix and the bundled model's llama.cpp server. Two ties:

- `spawn_tied()`: the kernel sends the child a signal (SIGKILL by default) the moment cogscope dies
  (`prctl(PR_SET_PDEATHSIG)`, set in the child between fork and exec). Linux sends it when the *thread*
  that forked the child ends, not the process: Gradio runs handlers on pooled worker threads that end
  when idle, which would take the model server with them. So every child is forked by one long-lived
  thread of cogscope's own ("cogscope-spawner"), whatever thread asks. Right after the prctl the child
  checks that its parent is still cogscope: if cogscope died in between, the child kills itself.
  The tie cannot be released.

- `Lifeline`: for a Python server started through `python_child()`, a pipe whose read end a thread of
  the child watches. End of file means every copy of the write end is closed, i.e. cogscope is gone,
  however it ended; the child then stops itself (SIGTERM: a graceful shutdown; a hard exit after a grace
  period). Unlike PDEATHSIG this tie can be released: `detach()` writes one byte that tells the child to
  stop watching, so it keeps running after cogscope (the Phoenix `cogscope run` leaves running so the
  trace link it printed keeps working). One limit: a process that cogscope forks *without* exec
  (multiprocessing's fork start method) inherits the write end and keeps the child alive while it lives;
  `subprocess` children do not (cogscope's pipe ends are not inheritable).

Both need Linux; elsewhere `spawn_tied` spawns an untied child.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
PR_SET_PDEATHSIG = 1
LIFELINE_FD_ENV = "COGSCOPE_LIFELINE_FD"
LIFELINE_GRACE_ENV = "COGSCOPE_LIFELINE_GRACE_S"
DETACH = b"d"


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()  # looked up here, never in a freshly forked child


class _Spawner:
    """One long-lived daemon thread that forks every tied child (PDEATHSIG follows the forking thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def run(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._pid = os.getpid()  # after a fork the thread is gone: start a new one
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._serve, args=(self._jobs,), name="cogscope-spawner")
                self._thread.daemon = True
                self._thread.start()
            future: concurrent.futures.Future[T] = concurrent.futures.Future()
            self._jobs.put((job, future))
        return future.result()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]) -> None:
        while True:
            job, future = jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as e:  # noqa: B036 handed to the caller, whatever it is
                future.set_exception(e)


_spawner = _Spawner()


def _die_with(parent: int, death_signal: int, then: Callable[[], Any] | None) -> Callable[[], None]:
    prctl = _PRCTL

    def preexec() -> None:  # runs in the child, between fork and exec
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
            if os.getppid() != parent:  # cogscope died before the prctl took effect
                os.kill(os.getpid(), signal.SIGKILL)
        if then is not None:
            then()

    return preexec


def spawn_tied(
    argv: Sequence[str], *, death_signal: int = signal.SIGKILL, **popen_kwargs: Any
) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(argv, **popen_kwargs)`, forked by the spawner thread, killed when cogscope dies."""
    preexec = _die_with(os.getpid(), death_signal, popen_kwargs.pop("preexec_fn", None))
    return _spawner.run(lambda: subprocess.Popen(list(argv), preexec_fn=preexec, **popen_kwargs))


# -- the lifeline -------------------------------------------------------------------------------
# Prepended to a Python child's `-c` program: a thread that waits for the end of the pipe.
_LIFELINE_WATCH = f"""
import os as _os, signal as _signal, threading as _threading, time as _time

def _cogscope_lifeline(fd, grace):
    while True:
        try:
            data = _os.read(fd, 1)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if data == {DETACH!r}:
            _os.close(fd)  # detached: this server keeps running after cogscope
            return
        if not data:
            break
    _os.kill(_os.getpid(), _signal.SIGTERM)  # cogscope is gone: shut down gracefully ...
    _time.sleep(grace)
    _os._exit(3)  # ... or not at all

_threading.Thread(
    target=_cogscope_lifeline,
    args=(int(_os.environ.pop({LIFELINE_FD_ENV!r})), float(_os.environ.pop({LIFELINE_GRACE_ENV!r}, "20"))),
    name="cogscope-lifeline",
    daemon=True,
).start()
"""

# Appended: run `python -c PROGRAM MODULE ARGS...` as `python -m MODULE ARGS...` would.
_RUN_MODULE = """
import runpy as _runpy, sys as _sys
_sys.argv = _sys.argv[1:]
_runpy.run_module(_sys.argv[0], run_name="__main__", alter_sys=True)
"""


def python_child(module: str, args: Sequence[str] = (), *, setup: str = "") -> list[str]:
    """argv that runs `python -m module args` with the lifeline watcher (and `setup` code) first."""
    return [sys.executable, "-c", _LIFELINE_WATCH + setup + _RUN_MODULE, module, *args]


class Lifeline:
    """The write end of the pipe a `python_child` watches; cogscope holds it for as long as it lives."""

    def __init__(self, grace_s: float = 20.0) -> None:
        self._read, self._write = os.pipe()  # neither end is inheritable: only the child gets the read end
        self.grace_s = grace_s
        self.detached = False

    def popen_kwargs(self, env: dict[str, str]) -> dict[str, Any]:
        """What to add to Popen(...) so the child receives the read end."""
        env = {**env, LIFELINE_FD_ENV: str(self._read), LIFELINE_GRACE_ENV: str(self.grace_s)}
        return {"env": env, "pass_fds": (self._read,)}

    def started(self) -> None:
        """The child has its copy of the read end: close ours."""
        if self._read >= 0:
            os.close(self._read)
            self._read = -1

    def detach(self) -> None:
        """Let the child outlive cogscope. The byte is in the pipe before the write returns: no race."""
        if self.detached or self._write < 0:
            return
        self.detached = True
        try:
            os.write(self._write, DETACH)
        except OSError:  # the child is gone already
            pass
        self.close()

    def close(self) -> None:
        """Cut the lifeline: an attached child stops itself."""
        self.started()
        if self._write >= 0:
            os.close(self._write)
            self._write = -1
