"""agents.cycle_inputs: the clock and random numbers a cycle reads, recorded, and given back on a replay."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from cogscope.agents import cycle_inputs
from cogscope.agents.cycle_inputs import begin, now, recorded, rng
from cogscope.agents.energy import EnergyLedger, new_cycle_id
from cogscope.agents.store import MemoryStore


def in_a_thread(work: Any, *args: Any) -> Any:
    """Run `work` in a new thread, as a cycle's agent runs (its context starts empty), and return its result."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work(*args)))
    thread.start()
    thread.join()
    return out[0]


def a_cycle(record: dict[str, Any] | None) -> tuple[dict[str, Any], list[datetime], list[int], list[str]]:
    """What a cycle's tools read: three clock readings, three random numbers, two ledger ids, and its record."""
    inputs = begin(record)
    readings = [now() for _ in range(3)]
    numbers = [rng().randrange(10**9) for _ in range(3)]
    ids = [new_cycle_id(), EnergyLedger(MemoryStore(":memory:")).cycle_id]
    return json.loads(json.dumps(inputs.record())), readings, numbers, ids


def test_a_replay_given_the_record_reads_the_same_clock_and_random_numbers():
    record, readings, numbers, ids = in_a_thread(a_cycle, None)
    assert set(record) == {"clock", "seed", "readings"} and isinstance(record["seed"], int)
    clock = datetime.fromisoformat(record["clock"])
    assert [clock + timedelta(microseconds=r) for r in record["readings"]] == readings
    assert len(record["readings"]) == 3 and record["readings"] == sorted(record["readings"])
    assert all(r.tzinfo is not None for r in readings) and readings == sorted(readings)

    again = in_a_thread(a_cycle, record)
    assert again[1:] == (readings, numbers, ids)  # the same readings, numbers and ids, in the same order
    assert again[0] == record  # and a replay records what it was given

    other = in_a_thread(a_cycle, None)  # a new cycle: a new clock start and seed
    assert other[0]["seed"] != record["seed"] and other[2] != numbers and other[3] != ids


def test_past_the_recorded_readings_the_clock_goes_on_from_the_last_one():
    record = {"clock": "2024-06-10T09:00:00+00:00", "seed": 7, "readings": [5_000_000]}

    def read() -> list[datetime]:
        begin(record)
        return [now(), now()]

    first, second = in_a_thread(read)
    assert first == datetime(2024, 6, 10, 9, 0, 5, tzinfo=timezone.utc)
    assert second >= first  # never back in time, though the real time since the start is shorter


def test_outside_a_cycle_the_real_clock_and_an_unseeded_random():
    def outside() -> tuple[datetime, datetime, datetime, Any]:
        before = datetime.now(timezone.utc)
        read = now()
        return before, read, datetime.now(timezone.utc), cycle_inputs.current()

    before, read, after, current = in_a_thread(outside)
    assert before <= read <= after and current is None
    assert in_a_thread(rng) is cycle_inputs._UNSEEDED


def test_a_malformed_record_gives_fresh_inputs():
    for bad in ({"clock": "yesterday", "seed": 1}, {"seed": 1}, {"clock": "2024-06-10T09:00:00", "seed": "x"}, []):
        assert recorded(bad) is None  # type: ignore[arg-type]
        assert in_a_thread(lambda b=bad: begin(b).given) == ()
    naive = recorded({"clock": "2024-06-10T09:00:00", "seed": 3, "readings": [1]})
    assert naive is not None and naive.clock.tzinfo is timezone.utc and naive.given == (1,)
