"""The span writer (telemetry.writer) on a real spool: spans leave the agent's thread at once, a finished cycle is on
disk at once, an unfinished one within the delay, `pending` counts what is still in memory, and nothing is lost to
a failing exporter or to shutdown."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from cogscope.telemetry import Spool, free_port, setup_tracing
from cogscope.telemetry.tracing import Tracing
from cogscope.telemetry.writer import SpanWriter

from .helpers import wait_until


@pytest.fixture
def tracing(tmp_path: Path) -> Iterator[Tracing]:
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"  # nothing listens: what is written stays in the spool
    tracing = setup_tracing(endpoint=dead, project_name="writer", spool=Spool.in_dir(tmp_path))
    yield tracing
    tracing.shutdown()


def _spooled(tracing: Tracing, trace_id: str) -> int:
    assert tracing.spool is not None
    return tracing.spool.pending(trace_id)


def test_a_finished_cycle_is_written_at_once_and_pending_counts_it_meanwhile(tracing: Tracing):
    assert tracing.writer is not None
    tracing.writer.delay_s = 3600  # only the end of the cycle can make the writer write
    tracer = tracing.tracer()
    with tracer.start_as_current_span("heartbeat.cycle") as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        for number in range(3):
            with tracer.start_as_current_span(f"Step {number + 1}"):
                pass
        # three spans ended: queued in memory, not on disk, and counted as pending all the same
        assert tracing.writer.queued(root.get_span_context().trace_id) == 3
        assert _spooled(tracing, trace_id) == 0
        assert tracing.pending(trace_id) == 3
    # the root ended: all four went to disk
    wait_until(lambda: _spooled(tracing, trace_id) == 4, timeout=30, interval=0.02, what="4 spans on disk")
    assert tracing.pending(trace_id) == 4  # on disk now, still not in Phoenix


def test_spans_of_a_cycle_still_running_reach_disk_within_the_delay(tracing: Tracing):
    assert tracing.writer is not None
    tracing.writer.delay_s = 0.2
    tracer = tracing.tracer()
    with tracer.start_as_current_span("heartbeat.cycle") as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        with tracer.start_as_current_span("Step 1"):
            pass
        # the cycle goes on (a model thinking for a minute): its finished step is on disk meanwhile
        wait_until(lambda: _spooled(tracing, trace_id) == 1, timeout=30, interval=0.02, what="1 span on disk")
        assert tracing.writer.queued(root.get_span_context().trace_id) == 0


def test_written_waits_for_one_trace_and_flush_for_all(tracing: Tracing):
    assert tracing.writer is not None
    tracing.writer.delay_s = 3600
    tracer = tracing.tracer()
    ids = []
    for _ in range(2):
        with tracer.start_as_current_span("heartbeat.cycle") as root:
            ids.append(format(root.get_span_context().trace_id, "032x"))
            with tracer.start_as_current_span("Step 1"):
                pass
    assert tracing.written(ids[0], timeout=30)
    assert _spooled(tracing, ids[0]) == 2
    assert tracing.flush()
    assert [_spooled(tracing, i) for i in ids] == [2, 2]


class Flaky(SpanExporter):
    """Fails its first export, as a disk that was briefly full would; keeps the rest."""

    def __init__(self) -> None:
        self.calls = 0
        self.kept: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.calls == 1:
            raise OSError("No space left on device")
        self.kept.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_a_failing_export_is_said_and_the_writer_goes_on(caplog: pytest.LogCaptureFixture):
    from opentelemetry.sdk.trace import TracerProvider

    exporter = Flaky()
    writer = SpanWriter(exporter, delay_s=3600)
    provider = TracerProvider()
    provider.add_span_processor(writer)
    tracer = provider.get_tracer("test")
    with caplog.at_level(logging.WARNING, logger="cogscope.writer"):
        with tracer.start_as_current_span("first cycle"):
            pass
        assert writer.force_flush()
        with tracer.start_as_current_span("second cycle"):
            pass
        assert writer.force_flush()
    assert [s.name for s in exporter.kept] == ["second cycle"]
    said = [r.getMessage() for r in caplog.records]
    assert any("1 span(s) could not be written (OSError: No space left on device)" in m for m in said), said
    provider.shutdown()


def test_shutdown_writes_what_is_queued_and_a_late_span_is_not_lost():
    from opentelemetry.sdk.trace import TracerProvider

    exporter = Flaky()
    exporter.calls = 1  # no failure
    writer = SpanWriter(exporter, delay_s=3600)
    provider = TracerProvider()
    provider.add_span_processor(writer)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("cycle"):
        with tracer.start_as_current_span("Step 1"):
            pass
        late = tracer.start_span("a tool still running at shutdown")
        provider.shutdown()  # the cycle's root has not ended: its step waits only for the delay, or for this
        assert [s.name for s in exporter.kept] == ["Step 1"]
        late.end()
    assert [s.name for s in exporter.kept][:2] == ["Step 1", "a tool still running at shutdown"]
