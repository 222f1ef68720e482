"""The heartbeat loop: N cycles at an interval, all in one Phoenix session; Stop ends after the current cycle."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from cogscope.telemetry import Cycle

from .inputs import check_cycles, check_interval
from .runtime import Runtime


def heartbeat_cycles(
    runtime: Runtime, *, cycles: int, interval: float, stop: threading.Event, **cycle_inputs: Any
) -> Iterator[tuple[int, Cycle]]:
    """Yield (number, cycle) for each cycle to run; the caller runs it (and streams its steps).

    `interval` counts from one cycle's start to the next; a cycle longer than the interval is
    followed at once. Setting `stop` ends the loop after the cycle that is running. An interval that is not
    a number of seconds from 0 to a day (nan, inf, negative), or a number of cycles not from 1 to 1,000, is a
    UsageError before the first cycle.
    """
    interval = check_interval(interval, "the interval")
    cycles = check_cycles(cycles, "the number of cycles")
    for number in range(1, cycles + 1):
        if stop.is_set():
            return
        started = time.monotonic()
        yield number, runtime.prepare_cycle(**cycle_inputs)
        if number < cycles:
            stop.wait(max(0.0, started + interval - time.monotonic()))
