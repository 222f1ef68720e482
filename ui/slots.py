"""Room for cycles on one shared cogscope: each cycle takes a slot of its lane, or waits in line for one.

What limits a cycle is what it waits on, so there are two lanes:

- **api**: cycles whose calls go to a remote API. They mostly wait on the network, so many run side by side
  (`COGSCOPE_MAX_CYCLES`, default 64).
- **local**: cycles on the bundled CPU model only. Their calls queue at the model server, one at a time; a lane of
  their own keeps them from taking the slots API cycles need (`COGSCOPE_MAX_LOCAL_CYCLES`, default 4).

A waiting cycle knows its place in line (`Ticket.position`), can leave the line (`Ticket.cancel`, the Stop
button), and is admitted in the order it asked. Nothing else waits here: replays, the step-through and the
Dashboard never take a slot.

    ticket = slots.ask(API, owner="ana", label="heartbeat")
    while not ticket.wait(1.0):
        show(ticket.position())          # 1: next in line
    try:
        ...run the cycle...
    finally:
        ticket.release()
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

API = "api"
LOCAL = "local"
LANES = (API, LOCAL)

WAITING, RUNNING, DONE, CANCELLED = "waiting", "running", "done", "cancelled"


@dataclass(eq=False)
class Ticket:
    """One cycle's place: waiting in line, running in a slot, or done."""

    slots: Slots = field(repr=False)
    lane: str
    owner: str  # who asked (the signed-in user; "" for the operator)
    session: str  # the browser session or API client that asked
    label: str  # what runs, e.g. the agent's name
    number: int  # order of asking
    asked_at: float = field(default_factory=time.time)
    state: str = WAITING

    def position(self) -> int:
        """1 for the next in line, 2 for the one after, ...; 0 once running (or done)."""
        return self.slots._position(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until admitted (True), cancelled (False) or `timeout` seconds have passed (False)."""
        return self.slots._wait(self, timeout)

    def cancel(self) -> bool:
        """Leave the line; True when the ticket was still waiting (a running cycle is stopped otherwise)."""
        return self.slots._cancel(self)

    def release(self) -> None:
        """Give the slot back (or leave the line): call once the cycle is over, whatever happened."""
        self.slots._release(self)

    @property
    def waiting(self) -> bool:
        return self.state == WAITING


class Slots:
    """FIFO admission per lane, bounded by each lane's limit; thread-safe."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        unknown = set(limits) - set(LANES)
        if unknown:
            raise ValueError(f"unknown lane(s) {sorted(unknown)}; lanes: {LANES}")
        self.limits = {lane: int(limits.get(lane, 1)) for lane in LANES}
        if min(self.limits.values()) < 1:
            raise ValueError("every lane needs at least 1 slot")
        self._changed = threading.Condition()
        self._tickets: list[Ticket] = []  # waiting and running, in order of asking
        self._numbers = itertools.count(1)

    # -- asking --------------------------------------------------------------------------------------------
    def ask(self, lane: str, *, owner: str = "", session: str = "", label: str = "") -> Ticket:
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; lanes: {LANES}")
        with self._changed:
            ticket = Ticket(self, lane, owner, session, label, next(self._numbers))
            self._tickets.append(ticket)
            self._admit()
            return ticket

    def _admit(self) -> None:  # with the lock held
        for lane in LANES:
            running = sum(1 for t in self._tickets if t.lane == lane and t.state == RUNNING)
            for ticket in self._tickets:
                if running >= self.limits[lane]:
                    break
                if ticket.lane == lane and ticket.state == WAITING:
                    ticket.state = RUNNING
                    running += 1
        self._changed.notify_all()

    def _position(self, ticket: Ticket) -> int:
        with self._changed:
            if ticket.state != WAITING:
                return 0
            ahead = [t for t in self._tickets if t.lane == ticket.lane and t.state == WAITING]
            return ahead.index(ticket) + 1

    def _wait(self, ticket: Ticket, timeout: float | None) -> bool:
        with self._changed:
            self._changed.wait_for(lambda: ticket.state != WAITING, timeout=timeout)
            return ticket.state == RUNNING

    def _cancel(self, ticket: Ticket) -> bool:
        with self._changed:
            if ticket.state != WAITING:
                return False
            ticket.state = CANCELLED
            self._tickets.remove(ticket)
            self._admit()
            return True

    def _release(self, ticket: Ticket) -> None:
        with self._changed:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            if ticket.state in (WAITING, RUNNING):
                ticket.state = CANCELLED if ticket.state == WAITING else DONE
            self._admit()

    # -- looking -------------------------------------------------------------------------------------------
    def running(self, lane: str) -> int:
        with self._changed:
            return sum(1 for t in self._tickets if t.lane == lane and t.state == RUNNING)

    def waiting(self, lane: str) -> int:
        with self._changed:
            return sum(1 for t in self._tickets if t.lane == lane and t.state == WAITING)

    def tickets(self) -> list[Ticket]:
        """Every cycle running or waiting, in order of asking (a copy)."""
        with self._changed:
            return list(self._tickets)
