"""Secrets never leave the process: an exporter wrapper that blanks secret values in spans.

cogscope never puts API keys into attributes itself, but agent code, tool
outputs or a model's echo could. Every value of an environment variable whose
name looks secret (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*PASSWORD*`) is replaced
by `[REDACTED]` in span attributes, event attributes and status messages before
any exporter sees the span.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

REDACTED = "[REDACTED]"
SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would blank ordinary text


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v.strip()) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)  # longest first, so a key that contains another is blanked whole


def redact_text(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v, secrets) for v in value)
    return value


def _redact_attributes(attributes: Mapping[str, Any] | None, secrets: Sequence[str]) -> dict[str, Any]:
    return {k: _redact_value(v, secrets) for k, v in (attributes or {}).items()}


def redact_span(span: ReadableSpan, secrets: Sequence[str]) -> ReadableSpan:
    if not secrets:
        return span
    status = span.status
    if status.description:
        status = Status(status.status_code, redact_text(status.description, secrets))
    return ReadableSpan(
        name=redact_text(span.name, secrets),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redact_attributes(span.attributes, secrets),
        events=[Event(e.name, _redact_attributes(e.attributes, secrets), e.timestamp) for e in span.events],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingExporter(SpanExporter):
    """Wraps an exporter; secrets are read from the environment at each export, so keys set later count too."""

    def __init__(self, inner: SpanExporter, extra_secrets: Iterable[str] = ()) -> None:
        self.inner = inner
        self.extra_secrets = [s for s in extra_secrets if len(s) >= MIN_SECRET_LENGTH]

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        secrets = sorted({*secret_values(), *self.extra_secrets}, key=len, reverse=True)
        return self.inner.export([redact_span(s, secrets) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
