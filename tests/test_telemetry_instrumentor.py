"""telemetry.instrumentor: spans written compact as they happen are the spans compacting OpenInference's gave.

The same scripted cycle runs twice, through LiteLLM over real HTTP to the scripted LLM server: once with
OpenInference's own instrumentor and cogscope's Compactor at export (how cogscope traced before), once with
cogscope's instrumentor. The exported spans must say the same, span for span, attribute for attribute: names,
kinds, statuses, events, prompts, outputs, tokens. Only what cannot be the same is set aside: span ids (references
are compared by position), clock readings inside `repr`s, and the `prefix_len` of 0 that marks a first call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from smolagents import CodeAgent, LiteLLMModel, ToolCallingAgent, tool
from smolagents.monitoring import LogLevel

from cogscope.telemetry.compact import CompactingExporter, Compactor
from cogscope.telemetry.roles import CallAnnotator
from cogscope.telemetry.tracing import uninstrument

from .scripted_llm import ScriptedLLM

PREFIX_FROM, PREFIX_LEN, TOOLS_FROM = "cogscope.llm.prefix_from", "cogscope.llm.prefix_len", "cogscope.llm.tools_from"


@tool
def observe(place: str) -> str:
    """What is going on at a place.

    Args:
        place: Where to look.
    """
    return f"kettle on in the {place}"


def _script(llm: ScriptedLLM) -> None:
    replies = [
        ('Thought: ask.\n<code>\nseen = perception(task="Look in the kitchen")\nprint(seen)\n</code>', 500, 50),
        ('{"name": "observe", "arguments": {"place": "kitchen"}}', 200, 10),
        ('{"name": "observe", "arguments": {"place": "hall"}}', 220, 11),
        ('{"name": "final_answer", "arguments": {"answer": "kettle on"}}', 240, 12),
        ("Thought: compute.\n<code>\nratio = 1 / 0\n</code>", 600, 40),
        ('Thought: done.\n<code>\nfinal_answer("walk")\n</code>', 700, 30),
    ]
    for content, prompt, completion in replies:
        llm.enqueue(content, prompt_tokens=prompt, completion_tokens=completion)


def _with_openinference(provider: TracerProvider, compactor: Compactor) -> None:
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    SmolagentsInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)


def _with_cogscope(provider: TracerProvider, compactor: Compactor) -> None:
    from cogscope.telemetry.instrumentor import Instrumentor

    Instrumentor().instrument(tracer_provider=provider, compactor=compactor, skip_dep_check=True)


def _cycle(
    llm: ScriptedLLM, instrument: Callable[[TracerProvider, Compactor], None], *, stream_outputs: bool
) -> tuple[Any, list[ReadableSpan]]:
    _script(llm)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=100_000))
    provider.add_span_processor(CallAnnotator())
    compactor = Compactor()
    provider.add_span_processor(SimpleSpanProcessor(CompactingExporter(exporter, compactor)))
    uninstrument()
    instrument(provider, compactor)
    try:
        model = LiteLLMModel("openai/scripted", api_base=llm.api_base, api_key="sk-test")
        perception = ToolCallingAgent(
            tools=[observe], model=model, name="perception", description="Looks around.", max_steps=4,
            verbosity_level=LogLevel.OFF,
        )  # fmt: skip
        boss = CodeAgent(
            tools=[], model=model, managed_agents=[perception], name="boss", max_steps=4,
            verbosity_level=LogLevel.OFF, stream_outputs=stream_outputs,
        )  # fmt: skip
        items = list(boss.run("Run one cycle", stream=True))
    finally:
        uninstrument()
        provider.shutdown()
    return items[-1].output, list(exporter.get_finished_spans())


_CLOCK = re.compile(r"\d+\.\d+(e-?\d+)?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # smolagents' tool call ids
_ADDRESS = re.compile(r" at 0x[0-9a-f]+>")  # the repr of an object


def _unstamped(text: str) -> str:
    return _ADDRESS.sub(">", _UUID.sub("<id>", _CLOCK.sub("#", text)))


def _value(value: Any) -> Any:
    if isinstance(value, str):
        value = _unstamped(value)
        if value[:1] in "{[":
            try:
                return json.loads(value)
            except ValueError:
                pass
    return list(value) if isinstance(value, tuple) else value


def _said(spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    """What each span says, in the order they ended; references to other spans by their position."""
    position = {format(s.context.span_id, "016x"): i for i, s in enumerate(spans)}
    out = []
    for span in spans:
        attributes = {k: _value(v) for k, v in (span.attributes or {}).items()}
        if attributes.get(PREFIX_LEN) == 0:
            del attributes[PREFIX_LEN]
        for key in (PREFIX_FROM, TOOLS_FROM):
            if key in attributes:
                attributes[key] = position[attributes[key]]
        out.append(
            {
                "name": span.name,
                "parent": spans.index(next(p for p in spans if p.context.span_id == span.parent.span_id))
                if span.parent
                else None,
                "status": (span.status.status_code.name, _unstamped(span.status.description or "")),
                "events": [e.name for e in span.events],
                "attributes": attributes,
            }
        )
    return out


@pytest.mark.e2e  # starts the scripted LLM
@pytest.mark.parametrize("stream_outputs", [False, True], ids=["generate", "generate_stream"])
def test_cogscope_spans_say_what_compacted_openinference_spans_said(stream_outputs: bool) -> None:
    llm = ScriptedLLM().start()
    try:
        answer, before = _cycle(llm, _with_openinference, stream_outputs=stream_outputs)
        sent_before = _unstamped(json.dumps([r["messages"] for r in llm.requests]))
        llm.reset()
        again, after = _cycle(llm, _with_cogscope, stream_outputs=stream_outputs)
        assert _unstamped(json.dumps([r["messages"] for r in llm.requests])) == sent_before  # the same prompts
    finally:
        llm.stop()
    assert answer == again == "walk"
    said_before, said_after = _said(before), _said(after)
    assert [s["name"] for s in said_after] == [s["name"] for s in said_before]
    for old, new in zip(said_before, said_after, strict=True):
        was, now = old["attributes"], new["attributes"]
        differ = {k: (was.get(k), now.get(k)) for k in {*was, *now} if was.get(k) != now.get(k)}
        assert not differ, (new["name"], differ)
        assert new == old
    calls = [s for s in said_after if s["attributes"].get("openinference.span.kind") == "LLM"]
    assert len(calls) == 6
    # compact at the source: the later calls of each agent hold only what is new, and name the earlier call
    assert [PREFIX_FROM in c["attributes"] for c in calls] == [False, False, True, True, True, True]
    marked = [PREFIX_LEN in (s.attributes or {}) for s in after if s.attributes.get("openinference.span.kind") == "LLM"]
    assert marked == [True] * 6  # so the Compactor leaves them as they are at export
    assert sum(TOOLS_FROM in c["attributes"] for c in calls) == 2  # perception's second and third calls


@pytest.mark.e2e  # starts the scripted LLM
def test_openinference_masking_settings_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENINFERENCE_HIDE_INPUTS and the like: spans then go through OpenInference's own masking tracer."""
    monkeypatch.setenv("OPENINFERENCE_HIDE_INPUTS", "true")
    llm = ScriptedLLM().start()
    try:
        _, spans = _cycle(llm, _with_cogscope, stream_outputs=False)
    finally:
        llm.stop()
    calls = [s for s in spans if (s.attributes or {}).get("openinference.span.kind") == "LLM"]
    assert calls and all(s.attributes["input.value"] == "__REDACTED__" for s in calls)
    assert not any(k.startswith("llm.input_messages.") for s in calls for k in s.attributes)


def test_uninstrument_gives_smolagents_back_its_own_methods() -> None:
    from smolagents import MultiStepAgent, Tool, models

    from cogscope.telemetry.instrumentor import Instrumentor

    uninstrument()
    originals = (MultiStepAgent.run, Tool.__call__, CodeAgent._step_stream, models.LiteLLMModel.generate)
    provider = TracerProvider()
    for _ in range(2):  # instrumenting again does not stack wrappers
        Instrumentor().instrument(tracer_provider=provider, compactor=Compactor(), skip_dep_check=True)
        assert models.LiteLLMModel.generate.__wrapped__ is originals[3]
        assert MultiStepAgent.run.__wrapped__ is originals[0]
        uninstrument()
        assert (MultiStepAgent.run, Tool.__call__, CodeAgent._step_stream, models.LiteLLMModel.generate) == originals


def _oi_message(message: Any) -> tuple[tuple[str, Any], ...]:
    """OpenInference's own record of one message, as `prompt_message` gives it."""
    from openinference.instrumentation.smolagents._wrappers import _llm_input_messages

    prefix = "llm.input_messages.0."
    return tuple(sorted((k[len(prefix) :], v) for k, v in _llm_input_messages({"messages": [message]})))


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": "plain text"},
        {"role": "system", "content": [{"type": "text", "text": "one part"}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": ""}, {"type": "text", "text": "c"}],
        },
        {
            "role": "user",
            "content": [{"type": "text", "text": str(i)} for i in range(12)],
        },  # indices past 9 sort as text
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "user", "content": ["not a part", {"type": "text", "text": "kept"}]},
        {"role": "assistant", "content": None},
        {"role": "", "content": "no role"},
        {"role": "user", "content": [{"type": "text", "text": ""}]},
    ],
)
def test_each_message_is_recorded_as_openinference_records_it(message: dict[str, Any]) -> None:
    from smolagents import ChatMessage, MessageRole

    from cogscope.telemetry.instrumentor import prompt_message

    assert prompt_message(message) == _oi_message(message)
    if message["role"]:
        as_object = ChatMessage(role=MessageRole(message["role"]), content=message["content"])
        assert prompt_message(as_object) == _oi_message(message)


def test_arguments_are_bound_as_openinference_binds_them() -> None:
    import inspect

    from cogscope.telemetry.instrumentor import _arguments

    class Model:
        def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):  # type: ignore[no-untyped-def]
            pass

        def only_named(self, a, *, b=2):  # type: ignore[no-untyped-def]
            pass

        def star(self, *items, last=None):  # type: ignore[no-untyped-def]
            pass

    model = Model()
    calls = [
        (model.generate, (["m"],), {}),
        (model.generate, (["m"], ["</code>"]), {"temperature": 0.1}),
        (model.generate, (), {"messages": ["m"], "tools_to_call_from": ["t"], "extra": 1}),
        (model.only_named, (1,), {"b": 3}),
        (model.only_named, (), {"a": 1}),
        (model.star, (1, 2), {"last": 3}),
    ]
    for method, args, kwargs in calls:
        bound = inspect.signature(method).bind(*args, **kwargs)
        bound.apply_defaults()
        assert _arguments(method, args, kwargs) == dict(bound.arguments), (method.__name__, args, kwargs)
    for method, args, kwargs in [
        (model.generate, (), {}),
        (model.only_named, (1, 2), {}),
        (model.generate, (["m"],), {"messages": []}),
    ]:
        with pytest.raises(TypeError):  # a wrong call fails as it did without cogscope
            _arguments(method, args, kwargs)


@pytest.mark.e2e  # starts the scripted LLM
def test_an_openinference_release_without_what_cogscope_uses_keeps_its_own_wrappers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Tracing goes on, compacted at export, and the log says why it costs more."""
    from cogscope.telemetry import instrumentor

    # a release that renamed one of the helpers cogscope's wrappers share with OpenInference's
    monkeypatch.setattr(instrumentor, "_REQUIRED", [*instrumentor._REQUIRED, "_llm_renamed"])
    llm = ScriptedLLM().start()
    try:
        with caplog.at_level("WARNING", logger="cogscope.instrumentor"):
            _, spans = _cycle(llm, _with_cogscope, stream_outputs=False)
    finally:
        llm.stop()
    assert "lacks _llm_renamed" in caplog.text and "its own smolagents wrappers are used" in caplog.text
    calls = [s for s in spans if (s.attributes or {}).get("openinference.span.kind") == "LLM"]
    assert len(calls) == 6
    assert sum(PREFIX_FROM in s.attributes for s in calls) == 4  # compacted when exported, as before


def test_a_run_whose_model_fails_keeps_its_error(llm: ScriptedLLM) -> None:
    """The run's span says ERROR, with the exception; OpenInference's wrapper set OK over it."""
    # nothing scripted: the model call is answered with HTTP 500
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    uninstrument()
    _with_cogscope(provider, Compactor())
    try:
        model = LiteLLMModel("openai/scripted", api_base=llm.api_base, api_key="sk-test", num_retries=0)
        agent = CodeAgent(tools=[], model=model, name="boss", max_steps=2, verbosity_level=LogLevel.OFF)
        with pytest.raises(Exception, match="Error in generating model output"):
            list(agent.run("Decide", stream=True))
    finally:
        uninstrument()
        provider.shutdown()
    (run,) = [s for s in exporter.get_finished_spans() if s.name == "boss.run"]
    assert run.status.status_code.name == "ERROR"
    assert [e.name for e in run.events] == ["exception"]
