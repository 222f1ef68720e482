"""Every cycle names the state it started from, and every re-run runs on a scratch copy of it (ui/cycle_state.py).

The pure tests run a cycle under an in-memory exporter with cogscope's own ReplayModel (recorded outputs, no LLM).
The e2e tests record real cycles of the three built-in agents through the scripted LLM and a real Phoenix, then
replay and fork them, roll the live store back and forward, and give each bad input once; the live memory store is
read with sqlite3 before and after, table by table."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from cogscope.telemetry import Cycle, CycleSpec, setup_tracing
from cogscope.telemetry.tracing import uninstrument

DONE = {"role": "assistant", "content": 'Thought: done.\n<code>\nfinal_answer("ok")\n</code>'}


def _one_cycle(checkpoint: Any) -> tuple[Any, dict[str, Any]]:
    """(the result, the root span's attributes) of a one-step cycle run with `checkpoint`."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from smolagents import CodeAgent
    from smolagents.monitoring import LogLevel

    from cogscope.telemetry.replay import ReplayModel

    exporter = InMemorySpanExporter()
    tracing = setup_tracing(endpoint="http://127.0.0.1:1/v1/traces", project_name="t", batch=False, exporter=exporter)
    try:
        agent = CodeAgent(tools=[], model=ReplayModel([DONE], tracing=tracing), verbosity_level=LogLevel.OFF)
        result = Cycle(agent, "Decide.", spec=CycleSpec("heartbeat"), tracing=tracing, checkpoint=checkpoint).run()
        (root,) = [span for span in exporter.get_finished_spans() if span.parent is None]
    finally:
        uninstrument()
        tracing.provider.shutdown()
    return result, dict(root.attributes or {})


def test_the_checkpoint_names_the_state_on_the_root_span_and_a_failing_one_costs_only_the_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, str]] = []

    def keep(cycle_id: str) -> str:
        calls.append((cycle_id, threading.current_thread().name))
        return "m0123abcd.7"

    result, root = _one_cycle(keep)
    assert result.status == "ok" and result.state == "m0123abcd.7"
    assert root["cogscope.state"] == "m0123abcd.7"
    assert calls == [(result.cycle_id, f"cycle-{result.cycle_id[:8]}")]  # once, in the cycle's worker thread

    def locked(cycle_id: str) -> str:
        raise RuntimeError("cannot write the memory store: database is locked")

    with caplog.at_level(logging.WARNING, logger="cogscope.state"):
        result, root = _one_cycle(locked)
    assert result.status == "ok" and result.final_answer == "ok" and result.state is None
    assert "cogscope.state" not in root
    (warning,) = [r for r in caplog.records if r.name == "cogscope.state"]
    assert "was not kept" in warning.getMessage() and "database is locked" in warning.getMessage()
