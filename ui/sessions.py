"""What runs in each browser session (or API client) of the app: the record Stop reaches.

One `RunningCycles` per app, owned by its `Runtime` (ui.runtime): keyed by (user, session), so Stop reaches only
one's own cycle or loop, and a record is dropped once nothing of it runs or waits (a server that stays up for
months serves many sessions; every API client is one)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from cogscope.telemetry import Cycle

from .slots import Ticket


def user_of(request: Any) -> str | None:
    """The signed-in user's name of a Gradio request (None when the app asks for no log-in)."""
    return getattr(request, "username", None) or None


def session_of(request: Any) -> str:
    """The session id a Gradio request's cycles are traced under."""
    session_hash = getattr(request, "session_hash", None) if request is not None else None
    return f"ui-{session_hash}" if session_hash else "ui"


def key_of(request: Any) -> tuple[str, str]:
    """(user, session): whose record a request reaches."""
    return (user_of(request) or "", session_of(request))


@dataclass
class Running:
    """What runs in one session now: a cycle, its place in line or slot, a heartbeat loop's stop."""

    cycle: Cycle | None = None
    ticket: Ticket | None = None  # its place in line, or its slot (ui.slots)
    loop_stop: threading.Event | None = None

    @property
    def idle(self) -> bool:
        return self.cycle is None and self.ticket is None and self.loop_stop is None


@dataclass
class RunningCycles:
    """The records of every session of one app, each reached through its (user, session) key."""

    _records: dict[tuple[str, str], Running] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def get(self, request: Any) -> Running | None:
        """The session's record, or None when nothing of it runs or waits."""
        with self._lock:
            return self._records.get(key_of(request))

    def enter(self, request: Any, *, cycle: Cycle | None = None, loop_stop: threading.Event | None = None) -> Running:
        """The session's record, with what now runs in it set at once (so it is never forgotten in between)."""
        with self._lock:
            running = self._records.setdefault(key_of(request), Running())
            if cycle is not None:
                running.cycle = cycle
            if loop_stop is not None:
                running.loop_stop = loop_stop
            return running

    def forget(self, request: Any, running: Running) -> None:
        """Drop the session's record once nothing of it runs or waits (Stop finds nothing either way)."""
        with self._lock:
            key = key_of(request)
            if running.idle and self._records.get(key) is running:
                del self._records[key]
