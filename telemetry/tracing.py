"""Tracing set-up: one TracerProvider and the smolagents instrumentor.

Spans go through the span spool (telemetry.spool) when one is given, which is how cogscope runs: each span is on
disk when it ends, and a sender moves it to Phoenix. Without a spool (benches, tests of redaction): a
BatchSpanProcessor and OTLP/HTTP straight to Phoenix, or the exporter given.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from openinference.semconv.resource import ResourceAttributes
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

from .compact import CompactingExporter, Compactor
from .redaction import RedactingExporter
from .roles import CallAnnotator
from .signing import Signer
from .spool import Sender, Spool, SpoolExporter

DEFAULT_PROJECT = "cogscope"
TRACER_NAME = "cogscope"

MAX_SPAN_ATTRIBUTES = 100_000  # per span: a prompt of ~30,000 messages (OpenTelemetry's default is 128)


class CycleCollector:
    """Keeps the exported spans of the traces it is asked to watch, until they are taken.

    This lets a cycle report its totals the moment it ends, from the very spans that go to Phoenix (compacted,
    secrets blanked, text valid: `CollectingExporter` hands them over), without waiting for Phoenix to ingest them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: dict[int, list[ReadableSpan]] = {}

    def watch(self, trace_id: int) -> None:
        with self._lock:
            self._spans.setdefault(trace_id, [])

    def spans_of(self, trace_id: int) -> list[ReadableSpan]:
        """The spans of the trace finished so far, leaving them in place."""
        with self._lock:
            return list(self._spans.get(trace_id, []))

    def take(self, trace_id: int) -> list[ReadableSpan]:
        with self._lock:
            return self._spans.pop(trace_id, [])

    def collect(self, spans: Sequence[ReadableSpan]) -> None:
        with self._lock:
            for span in spans:
                trace_id = span.context.trace_id if span.context else None
                if trace_id in self._spans:
                    self._spans[trace_id].append(span)


class CollectingExporter(SpanExporter):
    """Hands each span to the collector, then to `inner`: the spans a cycle's totals are built from are the very
    ones exported, redacted once."""

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

    def pending(self, trace_id: str) -> int:
        """Spans of this trace not yet stored in Phoenix (0 without a spool)."""
        return self.spool.pending(trace_id) if self.spool is not None else 0

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
    sender = None
    if spool is not None and exporter is None:
        # on disk when the span ends: a crash right after a cycle loses nothing
        provider.add_span_processor(
            SimpleSpanProcessor(
                CompactingExporter(
                    RedactingExporter(CollectingExporter(SpoolExporter(spool, endpoint), collector)), compactor
                )
            )
        )
        sender = Sender(spool, headers=headers).start()
    else:
        inner = exporter if exporter is not None else OTLPSpanExporter(endpoint=endpoint)
        processor_cls = BatchSpanProcessor if batch else SimpleSpanProcessor
        provider.add_span_processor(
            processor_cls(CompactingExporter(RedactingExporter(CollectingExporter(inner, collector)), compactor))
        )
    if set_global:
        trace.set_tracer_provider(provider)
    instrument(provider)
    return Tracing(
        provider=provider,
        collector=collector,
        project_name=project_name,
        endpoint=endpoint,
        signer=signer,
        spool=spool,
        sender=sender,
    )


def instrument(provider: TracerProvider) -> None:
    """Instrument smolagents (process-wide) so its spans go to `provider`; re-instruments if needed."""
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    instrumentor = SmolagentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)


def uninstrument() -> None:
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    instrumentor = SmolagentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
