"""How the commands stop: Ctrl-C and signals, turned into KeyboardInterrupt or an event the command waits on."""

from __future__ import annotations

import _thread
import threading
from typing import Any

STOPPING = threading.Event()  # set once a command has begun to stop (its KeyboardInterrupt arrived)


def on_interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C as KeyboardInterrupt, also when a shell started us in the background with SIGINT ignored.

    Python swallows an exception raised while it runs a weakref callback ("Exception ignored in ..."), which is
    where a signal lands now and then during imports; so if nothing has begun to stop 2 s later, interrupt again."""
    if not STOPPING.is_set():
        timer = threading.Timer(2.0, lambda: None if STOPPING.is_set() else _thread.interrupt_main())
        timer.daemon = True
        timer.start()
    raise KeyboardInterrupt


def set_later(event: threading.Event) -> None:
    """Set `event` from a signal handler: from another thread, since the main thread may be inside
    `event.wait()` holding the event's lock, and setting it there would deadlock (SIGTERM then never stops us)."""
    threading.Thread(target=event.set, name="signal-stop", daemon=True).start()
