"""Secrets are blanked before any exporter sees a span."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry import setup_tracing
from telemetry.redaction import REDACTED, secret_values
from telemetry.tracing import uninstrument


def test_secret_values_come_from_secret_looking_variables():
    env = {"OPENAI_API_KEY": "sk-abcdefgh123", "HF_TOKEN": "hf_zzzzzzzz", "HOME": "/root", "SHORT_TOKEN": "x"}
    assert set(secret_values(env)) == {"sk-abcdefgh123", "hf_zzzzzzzz"}


def test_secrets_are_redacted_in_attributes_events_and_status(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "topsecret-value-123")
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(endpoint="http://127.0.0.1:1/v1/traces", project_name="t", batch=False, exporter=exporter)
    try:
        with tracing.tracer().start_as_current_span("s", attributes={"input.value": "key=topsecret-value-123"}) as span:
            span.add_event("e", {"detail": "topsecret-value-123 leaked", "n": 3})
            span.set_attribute("list", ["a", "topsecret-value-123"])
        (exported,) = exporter.get_finished_spans()
    finally:
        uninstrument()
        tracing.provider.shutdown()
    assert exported.attributes["input.value"] == f"key={REDACTED}"
    assert exported.attributes["list"] == ("a", REDACTED)
    assert exported.events[0].attributes == {"detail": f"{REDACTED} leaked", "n": 3}
