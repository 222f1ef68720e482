"""The span writer: a span leaves the agent's thread the moment it ends; a thread of its own exports it.

OpenTelemetry's `SimpleSpanProcessor` exports on the thread that ends the span, so the agent used to wait at every
span for compaction, redaction, the OTLP encoding and one SQLite transaction: about 2 ms a span here, most of
what cogscope's tracing cost over the instrumentor's. `SpanWriter` only queues the span. Its thread hands the
queue to the exporter (compact -> redact -> spool, `telemetry.tracing`) in batches, one call (one transaction)
each:

- when a span without a parent ends: a cycle is over, its spans go to disk now;
- when the queue holds `max_batch` spans, or its oldest span has waited `delay_s`;
- when someone waits for them (`force_flush`, `wait_written`), and at shutdown.

Why not OpenTelemetry's `BatchSpanProcessor`: it drops spans when its queue is full, it cannot say whether the
spans of one trace are written, and it waits up to 5 s before writing a finished cycle. Here nothing is dropped
(the spool's own bound applies, and says so), `queued(trace_id)` counts what is not written yet, and a finished
cycle is written at once. A SIGKILL can lose at most the last `delay_s` of a cycle that had not ended; cogscope
shows a cycle's trace only once it is written (`Tracing.pending` counts queued spans).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("cogscope.writer")

WRITE_DELAY_S = 0.5  # the longest a span of an unfinished cycle waits in memory
MAX_BATCH = 512


class SpanWriter(SpanProcessor):
    """Queues each ended span; a thread exports the queue in batches (module docstring)."""

    def __init__(self, exporter: SpanExporter, *, delay_s: float = WRITE_DELAY_S, max_batch: int = MAX_BATCH) -> None:
        self.exporter = exporter
        self.delay_s = delay_s
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[ReadableSpan] = []
        self._oldest = 0.0  # when the oldest queued span was queued (monotonic)
        self._now = False  # write the queue without waiting for the delay
        self._queued: Counter[int] = Counter()  # trace id -> spans queued or being written
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="cogscope-span-writer", daemon=True)
        self._thread.start()

    # -- the agent's side ---------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None:
            return
        with self._cond:
            if not self._stopping:
                if not self._queue:
                    self._oldest = time.monotonic()
                self._queue.append(span)
                self._queued[span.context.trace_id] += 1
                if span.parent is None or len(self._queue) >= self.max_batch:
                    self._now = True
                if self._now or len(self._queue) == 1:  # write now, or start the delay's clock
                    self._cond.notify_all()
                return
        self._export([span])  # after shutdown: written on the spot rather than lost

    def queued(self, trace_id: int) -> int:
        """Spans of this trace not written yet."""
        with self._cond:
            return self._queued.get(trace_id, 0)

    def wait_written(self, trace_id: int, timeout: float) -> bool:
        """Write this trace's queued spans now; wait up to `timeout` s. Returns whether they are written."""
        with self._cond:
            if self._queued.get(trace_id, 0):
                self._now = True
                self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._queued.get(trace_id, 0), timeout)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write everything queued so far; wait up to `timeout_millis`."""
        with self._cond:
            if self._queue:
                self._now = True
                self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._queued, timeout_millis / 1000)

    def shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=60)
        self.exporter.shutdown()

    # -- the writer's thread ------------------------------------------------------------------
    def _due(self) -> bool:
        return bool(self._queue) and (self._now or self._stopping or time.monotonic() - self._oldest >= self.delay_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._stopping:
                        return  # stopping, and nothing is left to write
                    wait = None if not self._queue else max(0.0, self.delay_s - (time.monotonic() - self._oldest))
                    self._cond.wait(wait)
                batch, self._queue, self._now = self._queue, [], False
            self._export(batch)
            with self._cond:
                for span in batch:
                    trace_id = span.context.trace_id
                    self._queued[trace_id] -= 1
                    if self._queued[trace_id] <= 0:
                        del self._queued[trace_id]
                self._cond.notify_all()

    def _export(self, batch: list[ReadableSpan]) -> None:
        try:
            self.exporter.export(batch)
        except Exception as e:  # the writer never dies; the exporter says what it lost
            log.warning("cogscope: %d span(s) could not be written (%s: %s)", len(batch), type(e).__name__, e)
