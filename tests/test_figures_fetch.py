"""What the dashboard fetches from a real Phoenix: only the window asked for, older stretches only when the
window widens, nothing twice; and traces recorded before calls carried their role and step (no
`cogscope.role`/`cogscope.step`/`cogscope.cycle.tool_s`) still get roles, steps and time in tools."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from openinference.semconv.resource import ResourceAttributes
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import set_span_in_context

from cogscope.telemetry import CycleFigures, Prices, Scope, breakdown, cycle_list, list_cycles, phoenix_client, select
from cogscope.telemetry import figures as figures_module

from .helpers import wait_until

pytestmark = pytest.mark.both_backends  # also against a Phoenix on PostgreSQL (conftest)

SECOND = 10**9
MODEL = "openai/gpt-4o-mini"


def _legacy_cycle(tracer, start_ns: int) -> str:  # type: ignore[no-untyped-def]
    """A consciousness-shaped cycle as cogscope wrote it before calls carried their role: manager step 1 calls
    the perception agent (its own step 1 makes one LLM call and one tool call), manager step 2 decides."""
    t = start_ns

    def span(name: str, kind: str, parent, **attributes):  # type: ignore[no-untyped-def]
        context = set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(
            name, context=context, start_time=t, attributes={"openinference.span.kind": kind, **attributes}
        )

    def llm(parent, prompt: int, completion: int) -> None:  # type: ignore[no-untyped-def]
        nonlocal t
        call = span(
            "LiteLLMModel.generate",
            "LLM",
            parent,
            **{"llm.model_name": MODEL, "llm.token_count.prompt": prompt, "llm.token_count.completion": completion},
        )
        t += SECOND
        call.end(end_time=t)

    root = span(
        "consciousness.cycle",
        "AGENT",
        None,
        **{
            "cogscope.agent": "consciousness",
            "cogscope.model": json.dumps({"default": MODEL}),
            "cogscope.cycle.status": "ok",
        },
    )
    run = span("consciousness.run", "AGENT", root)
    step1 = span("Step 1", "CHAIN", run)
    llm(step1, 2000, 200)
    perception = span("perception.run", "AGENT", step1)
    p_step = span("Step 1", "CHAIN", perception)
    llm(p_step, 500, 20)
    tool = span("observe", "TOOL", p_step)
    t += 2 * SECOND  # two seconds in the tool
    tool.end(end_time=t)
    for s in (p_step, perception, step1):
        s.end(end_time=t)
    step2 = span("Step 2", "CHAIN", run)
    llm(step2, 2500, 100)
    for s in (step2, run, root):
        s.end(end_time=t)
    return format(root.get_span_context().trace_id, "032x")


@pytest.fixture
def legacy(phoenix, project):  # type: ignore[no-untyped-def]
    """A tracer that exports to the test Phoenix without cogscope's CallAnnotator, as older versions did."""
    provider = TracerProvider(resource=Resource({ResourceAttributes.PROJECT_NAME: project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=phoenix.collector_endpoint)))
    yield provider.get_tracer("legacy")
    provider.shutdown()


def _wait_for_roots(client, project: str, n: int) -> None:  # type: ignore[no-untyped-def]
    def listed() -> bool:
        figures = CycleFigures(client, project)
        figures.refresh()
        return len(figures.cycles) >= n and len(figures.calls) >= 3 * n

    wait_until(listed, timeout=30, interval=0.5, what=f"Phoenix did not list {n} cycles")


def test_refresh_fetches_the_window_then_only_what_is_missing(phoenix, project, legacy, monkeypatch):
    now = datetime.now(UTC)
    old = _legacy_cycle(legacy, int((now - timedelta(days=2)).timestamp() * SECOND))
    recent = _legacy_cycle(legacy, int((now - timedelta(minutes=10)).timestamp() * SECOND))
    client = phoenix_client(phoenix.url)
    _wait_for_roots(client, project, 2)

    figures = CycleFigures(client, project)
    assert figures.refresh(now - timedelta(hours=1)) == 1  # the window asked for, not all time
    assert figures.cycles["trace_id"].tolist() == [recent]
    assert figures.refresh(now - timedelta(hours=1)) == 0  # nothing twice
    assert figures.refresh(None) == 1  # the window widened: only the older stretch is fetched
    assert sorted(figures.cycles["trace_id"]) == sorted([old, recent])
    assert figures.refresh(None) == 0

    # roles and steps from the span tree, time in tools from the TOOL spans
    cycles, calls = select(figures, Scope())
    located = calls[calls["trace_id"] == recent].sort_values("start_time")
    assert located["role"].tolist() == ["consciousness", "perception", "consciousness"]
    assert located["step"].tolist() == [1, 1, 2]
    assert figures.tool_time[recent] == pytest.approx(2.0)
    # the Traces list counts their steps from the CHAIN spans (3: the manager's two, perception's one)
    listed = list_cycles(client, project=project, prices=Prices()).set_index("trace_id")
    assert listed.loc[recent, "steps"] == 3 and listed.loc[recent, "tool_s"] == pytest.approx(2.0)
    roles = breakdown(calls, Prices(), "role").set_index("role")
    assert roles.loc["perception", "prompt_tokens"] == 2 * 500
    assert roles.loc["consciousness", "prompt_tokens"] == 2 * (2000 + 2500)

    # calls fetched by time range a chunk of cycles at a time (a first load of many cycles) come out the same
    # as calls looked up by trace id (a refresh's few)
    monkeypatch.setattr(figures_module, "CALLS_CHUNK", 1)
    monkeypatch.setattr(cycle_list, "BY_TRACE_ID", 0)
    chunked = CycleFigures(client, project)
    assert chunked.refresh(None) == 2
    key = ["trace_id", "span_id", "role", "step", "prompt_tokens"]
    assert chunked.calls[key].sort_values("span_id").to_dict("records") == calls[key].sort_values("span_id").to_dict(
        "records"
    )
