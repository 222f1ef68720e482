"""A garbage collection inside a context-variable set crashes CPython before 3.12 (python/cpython#148891): the guard.

`ContextVar.set` and `.reset` copy part of the context's HAMT (its immutable map of variables). An allocation during
that copy can start a garbage collection. If a finalizer run by that collection sets a variable of the same context,
it frees the map being copied, and the interpreter segfaults. A CI run of the suite died so, in OpenTelemetry's
`context.attach` on a cycle's thread, on Python 3.11.7. Python 3.12's collector no longer runs there; CPython's fix
(holding a reference to the map during the copy) is not in 3.11. `install()` closes both halves, on 3.11 only:

- **The set the collection interrupts.** OpenTelemetry's `attach` and `detach` are the sets this process makes
  most, one or two per span. They now run with the collector paused, so no collection can start inside the copy.
  A lock pairs each pause with its resume across threads, so one thread's resume never lands inside another's
  copy. Cost: under a microsecond per span. (A thread that calls `gc.disable()` between another thread's pause
  and resume finds the collector enabled again.)
- **The finalizer that sets a variable.** In this process that is LiteLLM's streamed response
  (`CustomStreamWrapper.__del__`): each streamed call leaves one in a reference cycle, and when the collector ends
  it, it sets two context variables back to their values before the call, even when the call changed nothing
  (LiteLLM stamps them on async calls only; smolagents' calls are sync). The suite's in-process cycles made dozens
  of such sets inside collections, on cycle threads and on the main thread. That no-op set is skipped; what an
  async call stamped is still restored. The patch is put in place by the first collection after LiteLLM is
  imported, before that collection runs any finalizer (nothing here imports LiteLLM, which costs seconds).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Callable
from contextvars import Token
from typing import Any, TypeVar

from opentelemetry import context as context_api
from opentelemetry.context.context import Context, _RuntimeContext

NEEDED = sys.version_info < (3, 12)
_T = TypeVar("_T")
_R = TypeVar("_R")
_lock = threading.RLock()  # re-entrant: a finalizer run by freeing the old map may itself attach or detach


class CollectorPausedContext(_RuntimeContext):
    """OpenTelemetry's runtime context, with no garbage collection while a context variable is set or reset."""

    def __init__(self, inner: _RuntimeContext) -> None:
        self.inner = inner

    def attach(self, context: Context) -> Token[Context]:
        return _paused(self.inner.attach, context)

    def get_current(self) -> Context:
        return self.inner.get_current()

    def detach(self, token: Token[Context]) -> None:
        _paused(self.inner.detach, token)


def _paused(call: Callable[[_T], _R], argument: _T) -> _R:
    """`call(argument)` with the garbage collector paused (left off if it was off)."""
    with _lock:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return call(argument)
        finally:
            if enabled:
                gc.enable()


LITELLM_STREAM = "litellm.litellm_core_utils.streaming_handler"
_STAMPS = ("_own_trace_id", "_pre_call_trace_id", "_own_session_id", "_pre_call_session_id")


def quiet_stream_finalizer(stream_class: Any) -> bool:
    """Make LiteLLM's streamed response skip the context-variable set its finalizer makes when its call stamped
    nothing; returns whether the class is (now) patched."""
    original = stream_class.__dict__.get("__del__")
    if original is None:
        return False
    if getattr(original, "_cogscope_quiet", False):
        return True

    def __del__(self: Any) -> None:
        stamps = [getattr(getattr(self, "logging_obj", None), name, _STAMPS) for name in _STAMPS]
        if _STAMPS not in stamps and stamps[0] == stamps[1] and stamps[2] == stamps[3]:
            return  # the call left both variables as it found them: restoring them is a set that changes nothing
        original(self)

    __del__._cogscope_quiet = True  # type: ignore[attr-defined]
    __del__.__wrapped__ = original  # type: ignore[attr-defined]
    stream_class.__del__ = __del__
    return True


def _stream_class() -> Any:
    """LiteLLM's streamed response class, once LiteLLM has defined it (None before)."""
    return getattr(sys.modules.get(LITELLM_STREAM), "CustomStreamWrapper", None)


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    """A garbage-collection callback: once LiteLLM is imported, quiet its stream finalizer, then stop being called."""
    stream_class = _stream_class() if phase == "start" else None
    if stream_class is None:
        return
    quiet_stream_finalizer(stream_class)
    with contextlib.suppress(ValueError):
        gc.callbacks.remove(_on_collection)


def install() -> bool:
    """Guard this process's OpenTelemetry context (idempotent); returns whether it is guarded."""
    if not NEEDED:
        return False
    runtime: Any = context_api._RUNTIME_CONTEXT
    if not isinstance(runtime, CollectorPausedContext):
        # the same context variable underneath: contexts attached before this keep detaching as before
        context_api._RUNTIME_CONTEXT = CollectorPausedContext(runtime)
    stream_class = _stream_class()
    if stream_class is not None:
        quiet_stream_finalizer(stream_class)
    elif _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)
    return True


def installed() -> bool:
    return isinstance(context_api._RUNTIME_CONTEXT, CollectorPausedContext)
