"""What a cycle reads besides the memory store: the clock and random numbers, recorded and given back on replay.

A tool (cogscope's or yours) reads the time and draws random numbers here instead of `time.time()` and `random`:

    from cogscope.agents.cycle_inputs import now, rng

    stamp = now().isoformat()          # a timezone-aware datetime, in UTC
    pick = rng().choice(["a", "b"])    # a random.Random

During a cycle cogscope runs, both come from the cycle's inputs (`begin`): the clock starts at the time the cycle
started and each reading's offset from that start is recorded; `rng()` is one `random.Random` seeded with the
cycle's seed. cogscope records them on the cycle's root span (`cogscope.inputs`, `record()`), and a replay or fork
begins with the recorded ones (`begin(recorded)`): the same start, the same readings in the same order, the same
seed. Outside a cycle, `now()` is the real clock and `rng()` an unseeded Random.

The inputs live in a context variable, set in the thread that runs the agent (tools run there, managed agents too).
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

MAX_READINGS = 1_000  # clock readings recorded per cycle; later ones are read from the real clock, unrecorded
_UNSEEDED = random.Random()


@dataclass
class CycleInputs:
    """One cycle's clock and seed; `given`: the clock readings (microseconds from `clock`) a replay gives back."""

    clock: datetime  # when the cycle started, timezone-aware UTC
    seed: int
    given: tuple[int, ...] = ()
    readings: list[int] = field(default_factory=list)  # each reading's offset from `clock`, in microseconds
    _started: float = field(default_factory=time.monotonic, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def now(self) -> datetime:
        """The next clock reading: the recorded one on a replay, else the start plus the time elapsed."""
        with self._lock:
            index = len(self.readings)
            if index < len(self.given):
                offset = self.given[index]
            else:
                elapsed = round((time.monotonic() - self._started) * 1_000_000)
                offset = max(elapsed, self.readings[-1] if self.readings else 0)  # never back in time
            if index < MAX_READINGS:
                self.readings.append(offset)
        return self.clock + timedelta(microseconds=offset)

    def rng(self) -> random.Random:
        return self._random

    def record(self) -> dict[str, Any]:
        """What the root span records (`cogscope.inputs`, as JSON): the clock's start, the seed, the readings."""
        with self._lock:
            readings = list(self.readings)
        return {"clock": self.clock.isoformat(), "seed": self.seed, "readings": readings}


_current: ContextVar[CycleInputs | None] = ContextVar("cogscope_cycle_inputs", default=None)


def recorded(record: Mapping[str, Any] | None) -> CycleInputs | None:
    """The inputs a root span recorded (`record()`'s shape), to give back; None when missing or malformed (a trace
    is untrusted input: a replay then reads the real clock, and its report names the clock if that shows)."""
    if not isinstance(record, Mapping):
        return None
    try:
        clock = datetime.fromisoformat(str(record["clock"]))
        seed = int(record["seed"])
        given = tuple(int(r) for r in record.get("readings") or ())[:MAX_READINGS]
    except (KeyError, TypeError, ValueError):
        return None
    if clock.tzinfo is None:
        clock = clock.replace(tzinfo=timezone.utc)
    return CycleInputs(clock=clock, seed=seed, given=given)


def begin(record: Mapping[str, Any] | None = None) -> CycleInputs:
    """Start a cycle's inputs in this thread's context: the recorded ones given back (a replay), else a fresh
    clock and seed. Returns them; their `record()` is what the cycle's root span records."""
    inputs = recorded(record) or CycleInputs(clock=datetime.now(timezone.utc), seed=secrets.randbits(63))
    _current.set(inputs)
    return inputs


def current() -> CycleInputs | None:
    """The inputs of the cycle running in this context, if any."""
    return _current.get()


def now() -> datetime:
    """The time, timezone-aware in UTC: during a cycle, recorded and given back on replay; else the real clock."""
    inputs = _current.get()
    return datetime.now(timezone.utc) if inputs is None else inputs.now()


def rng() -> random.Random:
    """Random numbers: during a cycle, a Random seeded with the cycle's recorded seed; else an unseeded one."""
    inputs = _current.get()
    return _UNSEEDED if inputs is None else inputs.rng()
