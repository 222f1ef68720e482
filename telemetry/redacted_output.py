"""Redaction in the way of what leaves the process: the span exporter, and the CLI's stdout and stderr.

The rules and the `Redactor` that applies them are `telemetry.redaction`; here they wrap an OpenTelemetry exporter
(`RedactingExporter`: every span's name, attributes, events and status) and a text stream (`RedactingStream`,
`redacted_stdio`: a line at a time). `replace_span` copies a finished span with some fields changed (the compactor
and the sealer use it too).
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from .redaction import Redactor, default_redactor


# -- spans ----------------------------------------------------------------------------------------------
def _attributes(attributes: Mapping[str, Any] | None, redactor: Redactor) -> dict[str, Any]:
    return {k: redactor.redact_value(v) for k, v in (attributes or {}).items()}


def redact_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """A copy of `span` with secrets blanked and lone surrogates escaped in its name, attributes, events, status."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redactor.redact(status.description))
    return replace_span(
        span,
        name=redactor.redact(span.name),
        attributes=_attributes(span.attributes, redactor),
        events=[Event(redactor.redact(e.name), _attributes(e.attributes, redactor), e.timestamp) for e in span.events],
        status=status,
    )


def replace_span(span: ReadableSpan, **changes: Any) -> ReadableSpan:
    """A copy of a finished span with some of its fields changed (ReadableSpan has no `replace`)."""
    fields: dict[str, Any] = dict(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
    fields.update(changes)
    return ReadableSpan(**fields)


class RedactingExporter(SpanExporter):
    """Wraps an exporter; secrets follow the environment at each export, so keys set later count too."""

    def __init__(self, inner: SpanExporter, extra_secrets: Iterable[str] = ()) -> None:
        self.inner = inner
        extra = tuple(extra_secrets)
        self.redactor = Redactor(extra_secrets=extra) if extra else default_redactor()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([redact_span(s, self.redactor) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


# -- streams (the CLI's stdout and stderr) ---------------------------------------------------------------
class RedactingStream(io.TextIOBase):
    """A text stream that redacts what is written to it, a line at a time, before the stream it wraps sees it.

    Text is held until a newline, a flush or `MAX_PENDING` characters, so a secret printed in pieces
    (`print(key, end="")` then more) is still seen whole on its line.
    """

    MAX_PENDING = 65536

    def __init__(self, inner: TextIO, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor or default_redactor()
        self._pending = ""
        self._lock = threading.RLock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._lock:
            self._pending += s
            if "\n" in s or len(self._pending) >= self.MAX_PENDING:
                head, sep, tail = self._pending.rpartition("\n")
                if len(tail) >= self.MAX_PENDING:
                    head, sep, tail = self._pending, "", ""
                self._pending = tail
                self.inner.write(self.redactor.redact(head + sep))
        return len(s)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                pending, self._pending = self._pending, ""
                self.inner.write(self.redactor.redact(pending))
            self.inner.flush()

    def close(self) -> None:  # never closes the real stdout
        self.flush()

    def fileno(self) -> int:
        return self.inner.fileno()

    def isatty(self) -> bool:
        return self.inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.inner, "errors", None)

    @property
    def buffer(self) -> Any:  # bytes written here bypass redaction; kept for libraries that insist on it
        return self.inner.buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextmanager
def redacted_stdio(redactor: Redactor | None = None) -> Iterator[None]:
    """Redact everything written to `sys.stdout` and `sys.stderr` inside the block."""
    saved = sys.stdout, sys.stderr
    wrapped = [RedactingStream(s, redactor) if s is not None else None for s in saved]
    sys.stdout, sys.stderr = wrapped
    try:
        yield
    finally:
        for stream in wrapped:
            if stream is not None:
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
        sys.stdout, sys.stderr = saved
