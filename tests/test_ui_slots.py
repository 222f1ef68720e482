"""ui.slots: cycles take a slot of their lane in the order they asked, wait in line past the limit, and can leave
the line; the lanes do not hold each other up."""

from __future__ import annotations

import threading

import pytest

from cogscope.ui.slots import API, LOCAL, Slots


def test_past_the_limit_cycles_wait_in_the_order_they_asked():
    slots = Slots({API: 2, LOCAL: 1})
    first, second, third, fourth = (slots.ask(API, owner=o) for o in ("ana", "bo", "cy", "di"))
    assert (first.position(), second.position()) == (0, 0)  # running
    assert (third.position(), fourth.position()) == (1, 2)
    assert not third.wait(0.05)
    second.release()
    assert third.wait(0.05) and third.position() == 0
    assert fourth.position() == 1 and slots.running(API) == 2 and slots.waiting(API) == 1
    first.release()
    third.release()
    assert fourth.wait(0.05)
    assert [t.owner for t in slots.tickets()] == ["di"]


def test_a_waiting_cycle_leaves_the_line_and_the_next_moves_up():
    slots = Slots({API: 1, LOCAL: 1})
    running = slots.ask(API)
    leaving, staying = slots.ask(API), slots.ask(API)
    assert staying.position() == 2
    assert leaving.cancel() and leaving.state == "cancelled"
    assert not leaving.wait(0.01)  # a cancelled ticket is never admitted
    assert staying.position() == 1
    assert not running.cancel()  # a running cycle is stopped, not cancelled
    running.release()
    assert staying.wait(0.05)
    leaving.release()  # releasing twice, or after a cancel, changes nothing
    assert slots.running(API) == 1


def test_cycles_on_the_bundled_model_do_not_take_api_slots():
    slots = Slots({API: 1, LOCAL: 1})
    local = slots.ask(LOCAL)
    local_waiting = slots.ask(LOCAL)
    api = slots.ask(API)
    assert local.position() == 0 and local_waiting.position() == 1
    assert api.position() == 0  # the bundled model's line does not hold up an API cycle


def test_a_waiter_wakes_as_soon_as_a_slot_frees():
    slots = Slots({API: 1, LOCAL: 1})
    running = slots.ask(API)
    waiting = slots.ask(API)
    admitted = threading.Event()
    thread = threading.Thread(target=lambda: waiting.wait(10) and admitted.set())
    thread.start()
    running.release()
    thread.join(10)
    assert admitted.is_set()


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="at least 1 slot"):
        Slots({API: 0, LOCAL: 1})
    with pytest.raises(ValueError, match="unknown lane"):
        Slots({"gpu": 1})
    with pytest.raises(ValueError, match="unknown lane"):
        Slots({API: 1}).ask("gpu")


def test_a_sessions_record_of_what_runs_is_dropped_once_nothing_runs() -> None:
    """A server up for months serves many sessions (every API client is one): their records must not pile up."""
    import threading
    from types import SimpleNamespace

    from cogscope.ui import run_tab
    from cogscope.ui.sessions import RunningCycles

    ana = SimpleNamespace(username="ana", session_hash="s-ana")
    bo = SimpleNamespace(username="bo", session_hash="s-bo")
    runtime = SimpleNamespace(running=RunningCycles())  # what Stop reads of the app's Runtime
    stop = threading.Event()
    running = runtime.running.enter(ana, loop_stop=stop)
    assert len(runtime.running) == 1
    # bo's Stop neither reaches ana's loop nor leaves a record
    assert run_tab.stop(bo, runtime=runtime) == "Nothing is running."
    assert len(runtime.running) == 1 and not stop.is_set()
    runtime.running.forget(ana, running)  # the loop still runs: kept
    assert run_tab.stop(ana, runtime=runtime) == "⏹ Stopping the loop after the current cycle ..."
    assert stop.is_set()
    running.loop_stop = None
    runtime.running.forget(ana, running)  # nothing runs or waits any more: dropped
    assert len(runtime.running) == 0
    assert run_tab.stop(ana, runtime=runtime) == "Nothing is running."
