"""Compact traces: each LLM span stores only what is new in its prompt, and every prompt is rebuilt exactly.

`cogscope show TRACE --format json` gives each step's `input_messages`; they are checked, message for message,
against what the scripted LLM server received, for a cycle with a managed agent and tools."""

from __future__ import annotations

import json

import pytest

from .scripted_llm import ScriptedLLM

# the consciousness agent: the manager delegates to perception (tool calling) and reasoning (code), with tools
SCRIPT = [
    ('Thought: ask perception.\n<code>\nseen = perception(task="Observe the state")\nprint(seen)\n</code>', 500, 50),
    ('{"name": "observe", "arguments": {}}', 200, 10),
    ('{"name": "final_answer", "arguments": {"answer": "Energy is full."}}', 210, 12),
    ('Thought: ask reasoning.\n<code>\nplan = reasoning(task="Reflect on energy")\nprint(plan)\n</code>', 600, 40),
    ('Thought: reflect.\n<code>\nfinal_answer(reflect(topic="energy"))\n</code>', 300, 20),
    ('Thought: decide.\n<code>\nfinal_answer("Walk, then outline the course.")\n</code>', 700, 30),
]


def _sent(request: dict) -> list[dict[str, str]]:  # type: ignore[type-arg]
    """The messages of one request as the server got them, content as text (text parts joined by newlines)."""
    out = []
    for message in request["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
        out.append({"role": message["role"], "content": content or ""})
    return out


def _script(llm: ScriptedLLM) -> None:
    for content, prompt, completion in SCRIPT:
        llm.enqueue(content, prompt_tokens=prompt, completion_tokens=completion)


def _show(cogscope, trace_id: str, *args: str, **env: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = cogscope("show", trace_id, "--format", "json", *args, **env)
    assert result.code == 0, result.out + result.err
    return json.loads(result.out)


@pytest.mark.parametrize("full_prompts", ["0", "1"], ids=["compact", "full-prompts"])
def test_show_json_gives_each_step_the_exact_prompt_the_model_received(
    full_prompts, record, env, llm, cogscope, read_trace
):
    _script(llm)
    env["COGSCOPE_FULL_PROMPTS"] = full_prompts
    trace_id = record("Run one cycle", agent="consciousness", api_base=llm.api_base)
    spans = read_trace(trace_id, min_spans=20)

    shown = _show(cogscope, trace_id)
    assert shown["schema"] == 1 and shown["trace_id"] == trace_id
    assert shown["cycle"]["agent"] == "consciousness" and shown["cycle"]["status"] == "ok"
    assert shown["cycle"]["task"] == "Run one cycle" and shown["cycle"]["replayable"] is True
    assert shown["cycle"]["final_answer"] == "Walk, then outline the course."
    steps = shown["steps"]
    assert [(s["agent"], s["agent_step"], s["depth"]) for s in steps] == [
        ("consciousness", 1, 0), ("perception", 1, 1), ("perception", 2, 1),
        ("consciousness", 2, 0), ("reasoning", 1, 1), ("consciousness", 3, 0),
    ]  # fmt: skip
    assert len(llm.requests) == len(steps) == 6
    for step, request in zip(steps, llm.requests, strict=True):
        assert step["input_messages"] == _sent(request), f"step {step['step']}"
    for step, (content, prompt, completion) in zip(steps, SCRIPT, strict=True):
        assert step["model_output"] == content
        assert (step["prompt_tokens"], step["completion_tokens"]) == (prompt, completion)
        assert step["duration_s"] > 0 and step["status"] == "ok" and step["error"] is None
    assert steps[0]["code"] == 'seen = perception(task="Observe the state")\nprint(seen)'
    observe = steps[1]["tool_calls"]
    assert [c["name"] for c in observe] == ["observe"] and "Energy" in observe[0]["output"]
    assert observe[0]["arguments"] == {} and observe[0]["error"] is None
    assert [c["name"] for c in steps[4]["tool_calls"]] == ["reflect", "final_answer"]
    assert "Energy is full." in steps[0]["observations"]

    # --step K: the same record, one step
    assert _show(cogscope, trace_id, "--step", "5")["steps"] == [steps[4]]

    # what Phoenix stores: each agent's system prompt once (compact), or at every call (full prompts)
    llm_spans = spans[spans["span_kind"] == "LLM"]
    stored = [
        list(m) if m is not None and not isinstance(m, float) else []
        for m in llm_spans["attributes.llm.input_messages"]
    ]
    whole = sum(len(_sent(r)) for r in llm.requests)
    system_copies = sum(1 for messages in stored for m in messages if m.get("message.role") == "system")
    if full_prompts == "1":
        assert system_copies == 6
    else:
        assert system_copies == 3  # manager, perception, reasoning: one each
        assert sum(len(m) for m in stored) < whole
        later = llm_spans[llm_spans["attributes.cogscope.llm.prefix_from"].notna()]
        assert len(later) == 3  # the manager's second and third calls, perception's second
        assert set(later["attributes.cogscope.llm.prefix_from"]) <= set(llm_spans["context.span_id"])
        inputs = "".join(str(v) for v in llm_spans["attributes.input.value"])
        assert "You are an expert assistant" not in inputs  # input.value does not repeat the messages

    # a compact trace replays as before: every output and tool result from the recording, no LLM call
    llm.reset()
    replayed = cogscope("replay", trace_id, "--stub-tools")
    assert replayed.code == 0, replayed.out + replayed.err
    assert "6 outputs replayed, 0 LLM calls" in replayed.out and "Reproduced the recording" in replayed.out
    assert llm.requests == []


def test_bad_show_and_prompt_settings_are_one_line(cogscope, record, llm, read_trace):
    llm.enqueue('Thought: done.\n<code>\nfinal_answer("ok")\n</code>')
    trace_id = record("x", api_base=llm.api_base)
    read_trace(trace_id, min_spans=5)
    line = cogscope("show", trace_id, "--format", "yaml").error_line()
    assert "--format: invalid choice: 'yaml'" in line
    line = cogscope("show", trace_id, "--format", "json", "--step", "9").error_line()
    assert "--step 9 is outside this cycle's steps 1..1" in line
    line = cogscope("show", trace_id, COGSCOPE_FULL_PROMPTS="maybe").error_line()
    assert "COGSCOPE_FULL_PROMPTS='maybe' is not a yes/no value; use 1 or 0" in line


# -- the compactor and the rebuild on hand-built spans ---------------------------------------------------------
def _span(span_id: int, attributes: dict, *, trace_id: int = 7, parent: int | None = 1):  # type: ignore[no-untyped-def,type-arg]
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    context = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=False)
    parent_context = SpanContext(trace_id=trace_id, span_id=parent, is_remote=False) if parent else None
    return ReadableSpan(name="LiteLLMModel.generate", context=context, parent=parent_context, attributes=attributes)


def _call(messages: list[tuple[str, str]], role: str = "heartbeat", **extra: object) -> dict:  # type: ignore[type-arg]
    attributes: dict[str, object] = {"openinference.span.kind": "LLM", "cogscope.role": role, **extra}
    for i, (who, text) in enumerate(messages):
        attributes[f"llm.input_messages.{i}.message.role"] = who
        attributes[f"llm.input_messages.{i}.message.contents.0.message_content.type"] = "text"
        attributes[f"llm.input_messages.{i}.message.contents.0.message_content.text"] = text
    return attributes


def _messages(attributes) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    out, i = [], 0
    while f"llm.input_messages.{i}.message.role" in attributes:
        out.append(
            (
                attributes[f"llm.input_messages.{i}.message.role"],
                attributes[f"llm.input_messages.{i}.message.contents.0.message_content.text"],
            )
        )
        i += 1
    return out


def _rebuilt(spans) -> dict[str, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    from cogscope.telemetry.compact import rebuild_prompts, span_id_hex

    calls = [
        (
            span_id_hex(s.context.span_id),
            [{"role": r, "content": t} for r, t in _messages(s.attributes)],
            s.attributes.get("cogscope.llm.prefix_from"),
            s.attributes.get("cogscope.llm.prefix_len", 0),
        )
        for s in spans
    ]
    return {k: [(m["role"], m["content"]) for m in v] for k, v in rebuild_prompts(calls).items()}


SYSTEM, TASK = ("system", "You are an agent. " * 50), ("user", "New task: decide.")
STEP1 = [("assistant", "Thought: look.\n<code>\nobserve()\n</code>"), ("tool-response", "Observation: energy 80")]


def test_each_call_keeps_what_is_new_and_every_prompt_is_rebuilt():
    from cogscope.telemetry.compact import Compactor

    compactor = Compactor()
    first = [SYSTEM, TASK]
    second = [*first, *STEP1]
    third = [*second, ("assistant", "Thought: done."), ("tool-response", "Observation: ok")]
    spans = [_span(10 + i, _call(m, **{"input.value": '{"messages": ["x"], "stop_sequences": ["</code>"]}'}))
             for i, m in enumerate((first, second, third))]  # fmt: skip
    out = [compactor.compact(s) for s in spans]
    assert _messages(out[0].attributes) == first  # the first call keeps its whole prompt
    assert _messages(out[1].attributes) == STEP1 and out[1].attributes["cogscope.llm.prefix_len"] == 2
    assert out[1].attributes["cogscope.llm.prefix_from"] == format(10, "016x")
    assert len(_messages(out[2].attributes)) == 2 and out[2].attributes["cogscope.llm.prefix_len"] == 4
    assert all(o.attributes["input.value"] == '{"stop_sequences": ["</code>"]}' for o in out)
    assert list(_rebuilt(out).values()) == [first, second, third]


def test_agents_are_compacted_apart_and_a_changed_history_keeps_only_the_shared_start():
    from cogscope.telemetry.compact import Compactor

    compactor = Compactor()
    manager = compactor.compact(_span(1, _call([SYSTEM, TASK], role="manager")))
    member = compactor.compact(_span(2, _call([("system", "You perceive."), TASK], role="perception")))
    # the manager's history was rewritten (a summary instead of step 1): only the system prompt is shared
    again = compactor.compact(_span(3, _call([SYSTEM, ("user", "Summary so far"), TASK], role="manager")))
    assert "cogscope.llm.prefix_from" not in member.attributes  # another agent: no reference to the manager
    assert again.attributes["cogscope.llm.prefix_from"] == format(1, "016x")
    assert again.attributes["cogscope.llm.prefix_len"] == 1
    assert _rebuilt([manager, member, again])[format(3, "016x")] == [SYSTEM, ("user", "Summary so far"), TASK]
    # a new trace starts afresh, and nothing is shared across traces
    other = compactor.compact(_span(4, _call([SYSTEM, TASK], role="manager"), trace_id=8))
    assert "cogscope.llm.prefix_from" not in other.attributes


def test_tools_raw_responses_and_streamed_run_outputs_are_stored_once():
    from cogscope.telemetry.compact import Compactor

    compactor = Compactor()
    tools = {"llm.tools.0.tool.json_schema": '{"name": "observe"}'}
    output = '{"role": "assistant", "content": "hi", "raw": "ModelResponse(' + "x" * 500 + ')"}'
    first = compactor.compact(_span(1, _call([SYSTEM], **tools, **{"output.value": output})))
    second = compactor.compact(_span(2, _call([SYSTEM, TASK], **tools)))
    assert first.attributes["llm.tools.0.tool.json_schema"] == '{"name": "observe"}'
    assert "llm.tools.0.tool.json_schema" not in second.attributes
    assert second.attributes["cogscope.llm.tools_from"] == format(1, "016x")
    third = compactor.compact(_span(5, _call([SYSTEM, TASK, *STEP1], **tools)))
    assert third.attributes["cogscope.llm.tools_from"] == format(1, "016x")  # the call that stores them
    assert json.loads(first.attributes["output.value"]) == {"role": "assistant", "content": "hi"}
    streamed = "ActionStep(step_number=1, model_input_messages=[...])FinalAnswerStep(output='walk')"
    run = compactor.compact(_span(3, {"openinference.span.kind": "AGENT", "output.value": streamed}))
    assert run.attributes["output.value"] == "FinalAnswerStep(output='walk')"
    answer = compactor.compact(_span(4, {"openinference.span.kind": "AGENT", "output.value": "walk"}))
    assert answer.attributes["output.value"] == "walk"  # a managed agent's plain answer is left alone


def test_full_prompts_keeps_every_message():
    from cogscope.telemetry.compact import Compactor

    compactor = Compactor(full_prompts=True)
    compactor.compact(_span(1, _call([SYSTEM, TASK])))
    second = compactor.compact(_span(2, _call([SYSTEM, TASK, *STEP1])))
    assert _messages(second.attributes) == [SYSTEM, TASK, *STEP1]
    assert "cogscope.llm.prefix_from" not in second.attributes


def test_a_reference_to_a_call_not_in_the_trace_says_so_and_loops_end():
    from cogscope.telemetry.compact import rebuild_prompts

    whole = rebuild_prompts(
        [
            ("b", [{"role": "user", "content": "new"}], "gone", 2),  # its earlier call was never stored
            ("c", [{"role": "user", "content": "c"}], "d", 1),  # c and d name each other (a forged trace)
            ("d", [{"role": "user", "content": "d"}], "c", 1),
        ]
    )
    assert [m["role"] for m in whole["b"]] == ["missing", "missing", "user"]
    assert "not in this trace" in whole["b"][0]["content"]
    assert len(whole["c"]) <= 3 and len(whole["d"]) <= 3
