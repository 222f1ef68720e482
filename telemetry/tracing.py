"""Tracing set-up: one TracerProvider and the smolagents instrumentor.

Spans go through the span spool (telemetry.spool) when one is given, which is how cogscope runs: the span writer
(telemetry.writer) takes each span off the agent's thread and puts it on disk, at once when its cycle ends, and a
sender moves it to Phoenix. Without a spool (benches, tests of redaction): a
BatchSpanProcessor and OTLP/HTTP straight to Phoenix, or the exporter given.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from openinference.semconv.resource import ResourceAttributes
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

from cogscope import defaults

from . import context_guard
from .compact import CompactingExporter, Compactor
from .redacted_output import RedactingExporter
from .roles import CallAnnotator
from .sealing import SealingExporter
from .sender import Sender
from .signing import Signer
from .spool import Spool, SpoolExporter
from .writer import SpanWriter

# before any span: on Python 3.11 a collection inside `context.attach` can crash the interpreter (context_guard)
context_guard.install()

DEFAULT_PROJECT = defaults.PROJECT
TRACER_NAME = "cogscope"

MAX_SPAN_ATTRIBUTES = 100_000  # per span: a prompt of ~30,000 messages (OpenTelemetry's default is 128)


class CycleCollector(SpanProcessor):
    """Keeps the spans of the traces it is asked to watch, until they are taken.

    Each span as it ends, on the agent's thread: a cycle's totals are counted from these the moment it ends,
    without waiting for the spans to be exported. For a trace watched with `exported=True` (a replay, which
    compares its steps), also the very spans that go to Phoenix: compacted, secrets blanked, text valid
    (`CollectingExporter` hands them over).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: dict[int, list[ReadableSpan]] = {}
        self._exported: dict[int, list[ReadableSpan]] = {}

    def watch(self, trace_id: int, *, exported: bool = False) -> None:
        with self._lock:
            self._spans.setdefault(trace_id, [])
            if exported:
                self._exported.setdefault(trace_id, [])

    def spans_of(self, trace_id: int) -> list[ReadableSpan]:
        """The spans of the trace finished so far, leaving them in place."""
        with self._lock:
            return list(self._spans.get(trace_id, []))

    def take(self, trace_id: int) -> list[ReadableSpan]:
        """The trace's spans as they ended; it is no longer watched, but its exported spans stay to be taken."""
        with self._lock:
            return self._spans.pop(trace_id, [])

    def take_exported(self, trace_id: int) -> list[ReadableSpan]:
        with self._lock:
            return self._exported.pop(trace_id, [])

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        trace_id = span.context.trace_id if span.context else None
        with self._lock:
            if trace_id in self._spans:
                self._spans[trace_id].append(span)

    def collect(self, spans: Sequence[ReadableSpan]) -> None:
        with self._lock:
            for span in spans:
                trace_id = span.context.trace_id if span.context else None
                if trace_id in self._exported:
                    self._exported[trace_id].append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class CollectingExporter(SpanExporter):
    """Hands each span to the collector, then to `inner`: a replay compares the very spans exported, redacted
    once."""

    def __init__(self, inner: SpanExporter, collector: CycleCollector) -> None:
        self.inner = inner
        self.collector = collector

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.collector.collect(spans)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


@dataclass
class Tracing:
    provider: TracerProvider
    collector: CycleCollector
    project_name: str
    endpoint: str
    signer: Signer | None = None  # signs root spans so this installation can tell its own cycles
    spool: Spool | None = None  # where spans wait for Phoenix (None: straight to the exporter)
    sender: Sender | None = None  # moves spooled spans into Phoenix
    writer: SpanWriter | None = None  # takes spans off the agent's thread into the spool

    def pending(self, trace_id: str) -> int:
        """Spans of this trace not yet stored in Phoenix: queued in memory or waiting in the spool (0 without a
        spool)."""
        queued = self.writer.queued(int(trace_id, 16)) if self.writer is not None else 0
        return queued + (self.spool.pending(trace_id) if self.spool is not None else 0)

    def written(self, trace_id: str, timeout: float = 30.0) -> bool:
        """Wait up to `timeout` s until this trace's finished spans are exported (in the spool: a crash after
        this loses none of them)."""
        if self.writer is not None:
            return self.writer.wait_written(int(trace_id, 16), timeout)
        return self.flush(int(timeout * 1000))

    def tracer(self) -> trace.Tracer:
        return self.provider.get_tracer(TRACER_NAME)

    def flush(self, timeout_millis: int = 30000) -> bool:
        return self.provider.force_flush(timeout_millis)

    def drain(self, timeout: float) -> int:
        """Wait up to `timeout` s for the spool to deliver what is meant for this Phoenix; returns spans left."""
        self.flush()
        if self.sender is None:
            return 0
        return self.sender.drain(timeout, endpoint=self.endpoint).pending

    def shutdown(self) -> None:
        uninstrument()
        self.provider.shutdown()
        if self.sender is not None:
            self.sender.stop()
        if self.spool is not None:
            self.spool.close()


@dataclass(frozen=True)
class _Pipeline:
    """What every span passes on its way out: compact -> redact -> seal each signed cycle (telemetry.sealing) ->
    hand to the collector -> the exporter it wraps."""

    collector: CycleCollector
    compactor: Compactor
    signer: Signer | None

    def around(self, inner: SpanExporter) -> SpanExporter:
        collected: SpanExporter = CollectingExporter(inner, self.collector)
        if self.signer is not None:
            collected = SealingExporter(collected, self.signer)
        return CompactingExporter(RedactingExporter(collected), self.compactor)


def setup_tracing(
    *,
    endpoint: str,
    project_name: str = DEFAULT_PROJECT,
    set_global: bool = False,
    batch: bool = True,
    exporter: SpanExporter | None = None,
    signer: Signer | None = None,
    spool: Spool | None = None,
    headers: dict[str, str] | None = None,
    full_prompts: bool = False,
) -> Tracing:
    """Build the provider, instrument smolagents with it, and return both.

    Args:
        endpoint: the OTLP/HTTP collector, e.g. http://127.0.0.1:6006/v1/traces.
        project_name: the Phoenix project the spans land in.
        set_global: also make it OpenTelemetry's global provider (the CLI does; tests do not).
        batch: BatchSpanProcessor (default) or SimpleSpanProcessor.
        exporter: replaces the OTLP exporter (tests of redaction use an in-memory one).
        signer: signs each cycle's root span (telemetry.signing).
        spool: spans wait there until Phoenix has stored them; a sender thread is started for it.
        headers: extra HTTP headers for the collector (the spool's sender).
        full_prompts: keep every LLM span's whole prompt (telemetry.compact; COGSCOPE_FULL_PROMPTS).
    """
    provider = TracerProvider(
        resource=Resource({ResourceAttributes.PROJECT_NAME: project_name}),
        # OpenTelemetry keeps 128 attributes per span by default and drops the oldest beyond that: a prompt of more
        # than ~40 messages (a 20-step cycle) lost its system prompt and task. Compaction keeps what is stored small.
        span_limits=SpanLimits(max_span_attributes=MAX_SPAN_ATTRIBUTES),
    )
    collector = CycleCollector()
    compactor = Compactor(full_prompts=full_prompts)  # each LLM span keeps what is new in its prompt
    provider.add_span_processor(CallAnnotator())  # role and step on each LLM span, before it is exported
    provider.add_span_processor(collector)  # a cycle's spans as they end: its totals at once
    pipeline = _Pipeline(collector, compactor, signer)
    sender = writer = None
    if spool is not None and exporter is None:
        # off the agent's thread, on disk within WRITE_DELAY_S and at once when a cycle ends (telemetry.writer)
        writer = SpanWriter(pipeline.around(SpoolExporter(spool, endpoint)))
        provider.add_span_processor(writer)
        sender = Sender(spool, headers=headers).start()
    else:
        inner = exporter if exporter is not None else OTLPSpanExporter(endpoint=endpoint)
        processor_cls = BatchSpanProcessor if batch else SimpleSpanProcessor
        provider.add_span_processor(processor_cls(pipeline.around(inner)))
    if set_global:
        trace.set_tracer_provider(provider)
    instrument(provider, compactor)
    return Tracing(
        provider=provider,
        collector=collector,
        project_name=project_name,
        endpoint=endpoint,
        signer=signer,
        spool=spool,
        sender=sender,
        writer=writer,
    )


def instrument(provider: TracerProvider, compactor: Compactor | None = None) -> None:
    """Instrument smolagents (process-wide) so its spans go to `provider`, LLM spans compacted as they start by
    `compactor` (telemetry.instrumentor); re-instruments if needed."""
    from .instrumentor import Instrumentor

    uninstrument()
    Instrumentor().instrument(tracer_provider=provider, compactor=compactor)


def uninstrument() -> None:
    """Undo `instrument`, and OpenInference's own instrumentor if something installed it."""
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    from .instrumentor import Instrumentor

    for instrumentor in (Instrumentor(), SmolagentsInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
