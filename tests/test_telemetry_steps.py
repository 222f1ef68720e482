"""telemetry.steps on hand-built span frames: Phoenix's layout, and spans_to_frame of in-process spans.

No Phoenix and no subprocess: the Phoenix-layout frames are written out row by row, the in-process
frame comes from a real smolagents run (instrumented, spans kept in memory) whose model is the real
`OpenAIModel` with a fake client at the network boundary. Every expected value is written here by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from openai.types.chat import ChatCompletion
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from smolagents import CodeAgent, OpenAIModel, ToolCallingAgent, tool
from smolagents.monitoring import LogLevel

from cogscope.telemetry.frames import spans_to_frame
from cogscope.telemetry.steps import (
    REPLAYED,
    ToolCall,
    extract_code,
    input_messages,
    model_outputs,
    output_message,
    steps_from_frame,
    tool_outputs,
)

# -- extract_code, output_message, input_messages --------------------------------------------------


@pytest.mark.parametrize(
    ("model_output", "code"),
    [
        (
            'Thought: act.\n<code>\nprint(recall_memory(query="energy"))\n</code>',
            'print(recall_memory(query="energy"))',
        ),
        ("Thought: fenced.\n```python\nx = 1\nprint(x)\n```", "x = 1\nprint(x)"),
        ("```py\ny = 2\n```", "y = 2"),
        ("```\nz = 3\n```", "z = 3"),
        ("<code>\na = 1\n</code>\nthen\n<code>\nb = 2\n</code>", "a = 1\n\nb = 2"),  # every block, in order
        ("Thought: cut off by a stop sequence\n<code>\nfinal_answer('ok')\n", "final_answer('ok')"),
        ("<code>\n   \n</code>", None),  # an empty block is no code
        ("Thought: no code at all.", None),
        ("", None),
        (None, None),
    ],
)
def test_extract_code(model_output, code):
    assert extract_code(model_output) == code


def _row(**attributes: Any) -> pd.Series:
    return pd.Series({f"attributes.{key}": value for key, value in attributes.items()})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            json.dumps({"role": "assistant", "content": "hi", "raw": {"id": "x"}, "token_usage": None}),
            {"role": "assistant", "content": "hi"},  # only what a replay needs; None values left out
        ),
        (
            json.dumps({"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]}),
            {"role": "assistant", "tool_calls": [{"id": "c1"}]},
        ),
        ("not json at all", {"role": "assistant", "content": "not json at all"}),
        ('"a JSON string"', {"role": "assistant", "content": "a JSON string"}),
        ({"role": "assistant", "content": "a mapping"}, {"role": "assistant", "content": "a mapping"}),
    ],
)
def test_output_message(raw, message):
    assert output_message(_row(**{"output.value": raw})) == message


def test_output_message_of_a_span_without_output():
    assert output_message(_row(**{"output.value": float("nan")})) is None
    assert output_message(pd.Series({"name": "x"})) is None


def test_input_messages_phoenix_layout():
    row = _row(
        **{
            "llm.input_messages": [
                {"message.role": "system", "message.content": "You are the manager."},
                {
                    "message.role": "user",
                    "message.contents": [
                        {"message_content.type": "text", "message_content.text": "New task:"},
                        {"message_content.type": "image", "message_content.image": {"url": "x"}},
                        {"message_content.type": "text", "message_content.text": "Run one cycle"},
                    ],
                },
            ]
        }
    )
    assert input_messages(row) == [
        {"role": "system", "content": "You are the manager."},
        {"role": "user", "content": "New task:\nRun one cycle"},  # text parts only, one per line
    ]


def test_input_messages_nested_once_more_keep_their_content():
    row = _row(**{"llm.input_messages": [{"message": {"role": "assistant", "content": "nested once more"}}]})
    assert input_messages(row) == [{"role": "assistant", "content": "nested once more"}]


def test_input_messages_flattened_layout():
    row = _row(
        **{
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "You are the manager.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.text": "New task:",
            "llm.input_messages.1.message.contents.1.message_content.text": "Run one cycle",
            "llm.input_messages.3.message.role": "user",  # after a gap: not read
        }
    )
    assert input_messages(row) == [
        {"role": "system", "content": "You are the manager."},
        {"role": "user", "content": "New task:\nRun one cycle"},
    ]


def test_input_messages_of_a_span_without_any():
    assert input_messages(_row(**{"output.value": "x"})) == []


# -- steps_from_frame on Phoenix's layout ----------------------------------------------------------

T0 = pd.Timestamp("2025-03-01T08:00:00", tz="UTC")
TRACE = "0123456789abcdef0123456789abcdef"


def phoenix_span(
    span_id: str,
    parent: str | None,
    name: str,
    kind: str,
    start: float,
    end: float,
    *,
    status: str = "OK",
    message: str = "",
    events: list[dict[str, Any]] | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    """One row of Phoenix's get_spans_dataframe(); attributes by their dotted names, `_` for `.` in kwargs."""
    row: dict[str, Any] = {
        "context.span_id": span_id,
        "context.trace_id": TRACE,
        "parent_id": parent,
        "name": name,
        "span_kind": kind,
        "status_code": status,
        "status_message": message,
        "start_time": T0 + pd.Timedelta(seconds=start),
        "end_time": T0 + pd.Timedelta(seconds=end),
        "events": events or [],
    }
    row.update({f"attributes.{key}": value for key, value in attributes.items()})
    return row


def llm_span(span_id: str, parent: str, start: float, end: float, output: dict[str, Any], prompt: int, completion: int):
    return phoenix_span(
        span_id, parent, "LiteLLMModel.generate", "LLM", start, end,
        **{
            "output.value": json.dumps(output),
            "llm.token_count.prompt": prompt,
            "llm.token_count.completion": completion,
            "llm.input_messages": [
                {"message.role": "system", "message.content": f"system prompt of {parent}"},
                {"message.role": "user", "message.content": f"task of {parent}"},
            ],
        },
    )  # fmt: skip


def tool_span(span_id: str, parent: str, start: float, name: str, arguments: dict[str, Any], **outcome: Any):
    return phoenix_span(
        span_id, parent, "SimpleTool", "TOOL", start, start + 0.1,
        **{"tool.name": name, "input.value": json.dumps(arguments)}, **outcome,
    )  # fmt: skip


MANAGER_CODE = 'report = perception(task="Look around")\nprint(report)'
MANAGER_OUTPUT = f"Thought: ask.\n<code>\n{MANAGER_CODE}\n</code>"
FENCED = "```python\n1/0\n```"
RECOVERY = "Error executing tool 'observe' with arguments {'place': 'cellar'}: ValueError: no light"


def consciousness_cycle() -> pd.DataFrame:
    """A manager (consciousness) whose first step calls a managed agent (perception, two steps)."""
    rows = [
        phoenix_span("root", None, "consciousness.cycle", "AGENT", 0, 10, **{"cogscope.agent": "consciousness"}),
        phoenix_span("run", "root", "consciousness.run", "AGENT", 0.1, 9.9),
        phoenix_span("s1", "run", "Step 1", "CHAIN", 1, 6, **{"output.value": "Execution logs:\nkettle on"}),
        llm_span("l1", "s1", 1.1, 2, {"role": "assistant", "content": MANAGER_OUTPUT}, 700, 30),
        phoenix_span("p-run", "s1", "perception.run", "AGENT", 2.05, 5.5),
        phoenix_span(
            "p1", "p-run", "Step 1", "CHAIN", 2.1, 3.0,
            events=[{"name": "agent.step_recovery", "timestamp": "t",
                     "attributes": {"type": "AgentToolExecutionError", "message": RECOVERY, "severity": "expected"}}],
        ),
        llm_span("pl1", "p1", 2.2, 2.5, {"role": "assistant", "tool_calls": [{"id": "call_1"}]}, 120, 12),
        tool_span("pt1", "p1", 2.6, "observe", {"args": [], "kwargs": {"place": "cellar"}},
                  status="ERROR", message="ValueError: no light"),
        phoenix_span("p2", "p-run", "Step 2", "CHAIN", 3.1, 5.0, **{"output.value": "kettle on"}),
        llm_span("pl2", "p2", 3.2, 3.5, {"role": "assistant", "tool_calls": [{"id": "call_2"}]}, 130, 13),
        tool_span("pt2", "p2", 3.6, "observe", {"args": [{"place": "kitchen"}], "kwargs": {}},
                  **{"output.value": "kettle on"}),
        phoenix_span(
            "s2", "run", "Step 2", "CHAIN", 6, 9.5, status="ERROR", message="AgentExecutionError: boom",
            events=[{"name": "exception", "timestamp": "t",
                     "attributes": {"exception.type": "smolagents.utils.AgentExecutionError",
                                    "exception.message": "Code execution failed at line '1/0'"}}],
        ),
        llm_span("l2", "s2", 6.1, 7, {"role": "assistant", "content": [{"type": "text", "text": FENCED}]}, 800, 40),
    ]  # fmt: skip
    return pd.DataFrame(rows[::-1])  # Phoenix returns newest first: the order must come from start_time


def test_steps_are_numbered_across_agents_in_start_order_with_role_and_depth():
    steps = steps_from_frame(consciousness_cycle())
    assert [(s.number, s.agent, s.local_number, s.depth) for s in steps] == [
        (1, "consciousness", 1, 0),
        (2, "perception", 1, 1),
        (3, "perception", 2, 1),
        (4, "consciousness", 2, 0),
    ]
    assert [s.span_id for s in steps] == ["s1", "p1", "p2", "s2"]
    assert [s.duration_s for s in steps] == [5.0, 0.9, 1.9, 3.5]
    assert [(s.prompt_tokens, s.completion_tokens) for s in steps] == [(700, 30), (120, 12), (130, 13), (800, 40)]


def test_a_step_shows_what_the_model_saw_wrote_and_ran():
    first = steps_from_frame(consciousness_cycle())[0]
    assert first.input_messages == [
        {"role": "system", "content": "system prompt of s1"},
        {"role": "user", "content": "task of s1"},
    ]
    assert first.model_output == f"Thought: ask.\n<code>\n{MANAGER_CODE}\n</code>"
    assert first.model_output_message == {"role": "assistant", "content": first.model_output}
    assert first.code == MANAGER_CODE
    assert first.observations == "Execution logs:\nkettle on"
    assert first.tool_calls == []  # the managed agent is no tool span: its steps are steps of their own
    assert (first.status, first.error) == ("ok", None)


def test_tool_calls_with_arguments_results_and_a_failing_tool():
    steps = steps_from_frame(consciousness_cycle())
    assert steps[1].tool_calls == [ToolCall("observe", {"place": "cellar"}, None, "ValueError: no light")]
    assert steps[2].tool_calls == [ToolCall("observe", {"place": "kitchen"}, "kettle on", None)]
    assert steps[1].model_output_message == {"role": "assistant", "tool_calls": [{"id": "call_1"}]}
    assert steps[1].model_output is None and steps[1].code is None


def test_step_errors_from_a_recovery_event_and_from_an_exception():
    steps = steps_from_frame(consciousness_cycle())
    # a recoverable tool error: the step span is OK, the event says what went wrong
    assert (steps[1].status, steps[1].error) == ("ok", RECOVERY)
    assert steps[2].error is None
    # an error status: the exception's short type name and its message
    assert (steps[3].status, steps[3].error) == ("error", "AgentExecutionError: Code execution failed at line '1/0'")
    assert steps[3].model_output == "```python\n1/0\n```"  # a list of content parts, joined
    assert steps[3].code == "1/0"


def test_an_error_status_without_exception_event_says_the_status_message():
    frame = pd.DataFrame(
        [
            phoenix_span("run", None, "heartbeat.run", "AGENT", 0, 2),
            phoenix_span("s1", "run", "Step 1", "CHAIN", 0.5, 1.5, status="ERROR", message="Agent interrupted."),
        ]
    )
    (step,) = steps_from_frame(frame)
    assert (step.agent, step.depth, step.status, step.error) == ("heartbeat", 0, "error", "Agent interrupted.")
    assert (step.model_output, step.prompt_tokens, step.input_messages) == (None, 0, [])


def test_a_replays_stand_in_spans_count_as_the_model_call():
    replayed = {"role": "assistant", "content": "<code>\nfinal_answer('again')\n</code>"}
    frame = pd.DataFrame(
        [
            phoenix_span("run", None, "heartbeat.run", "AGENT", 0, 2),
            phoenix_span("s1", "run", "Step 1", "CHAIN", 0.5, 1.5),
            phoenix_span(
                "r1", "s1", "ReplayModel.generate", "CHAIN", 0.6, 0.7,
                **{REPLAYED: True, "output.value": json.dumps(replayed),
                   "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "Decide."},
            ),
        ]
    )  # fmt: skip
    (step,) = steps_from_frame(frame)
    assert step.model_output_message == replayed
    assert step.code == "final_answer('again')"
    assert step.input_messages == [{"role": "user", "content": "Decide."}]
    assert (step.prompt_tokens, step.completion_tokens) == (0, 0)  # a replay makes no LLM call
    assert model_outputs(frame) == [replayed]


def test_model_outputs_and_tool_outputs_in_call_order():
    frame = consciousness_cycle()
    assert model_outputs(frame) == [
        {"role": "assistant", "content": f"Thought: ask.\n<code>\n{MANAGER_CODE}\n</code>"},
        {"role": "assistant", "tool_calls": [{"id": "call_1"}]},
        {"role": "assistant", "tool_calls": [{"id": "call_2"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "```python\n1/0\n```"}]},
    ]
    assert tool_outputs(frame) == {"observe": [(None, "ValueError: no light"), ("kettle on", None)]}


def test_an_empty_frame_has_no_steps():
    empty = pd.DataFrame()
    assert (steps_from_frame(empty), model_outputs(empty), tool_outputs(empty)) == ([], [], {})


# -- steps_from_frame on spans_to_frame of in-process spans ----------------------------------------


def completion(content: str | None, tool_call: tuple[str, dict[str, Any]] | None, prompt: int, out: int):
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_call:
        name, arguments = tool_call
        message["tool_calls"] = [
            {"id": f"call_{prompt}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
        ]
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out},
        }
    )  # fmt: skip


class FakeOpenAIClient:
    """Stands in for openai.OpenAI at the network boundary: client.chat.completions.create(**kw)."""

    def __init__(self, *completions: ChatCompletion) -> None:
        self._completions = list(completions)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **kwargs: Any) -> ChatCompletion:
        if not self._completions:
            raise AssertionError("FakeOpenAIClient: the script ran out")
        return self._completions.pop(0)


@tool
def observe(place: str) -> str:
    """What is going on at a place.

    Args:
        place: Where to look.
    """
    return f"kettle on in the {place}"


@tool
def broken(what: str) -> str:
    """A sensor that is down.

    Args:
        what: Which sensor.
    """
    raise ValueError("service down")


@pytest.fixture(scope="module")
def in_process_frame() -> Iterator[pd.DataFrame]:
    """A manager CodeAgent (boss) whose first step calls a managed ToolCallingAgent (perception)."""
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource(attributes={}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SmolagentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # left by another test: it would ignore our provider
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    try:
        model = OpenAIModel(
            model_id="gpt-4o-mini",
            client=FakeOpenAIClient(
                completion(f"Thought: ask.\n<code>\n{MANAGER_CODE}\n</code>", None, 100, 1),
                completion(None, ("observe", {"place": "kitchen"}), 200, 2),
                completion(None, ("broken", {"what": "sensor"}), 300, 3),
                completion(None, ("final_answer", {"answer": "kettle on"}), 400, 4),
                completion("Thought: oops.\n<code>\n1/0\n</code>", None, 500, 5),
                completion('Thought: done.\n<code>\nfinal_answer("done")\n</code>', None, 600, 6),
            ),
        )
        perception = ToolCallingAgent(
            tools=[observe, broken], model=model, name="perception", description="Looks around.",
            max_steps=5, verbosity_level=LogLevel.OFF,
        )  # fmt: skip
        boss = CodeAgent(
            tools=[], model=model, managed_agents=[perception], name="boss", max_steps=5, verbosity_level=LogLevel.OFF
        )
        assert boss.run("Run one cycle") == "done"
    finally:
        instrumentor.uninstrument()
    yield spans_to_frame(exporter.get_finished_spans())
    provider.shutdown()


def test_in_process_layout_numbers_steps_across_agents(in_process_frame):
    steps = steps_from_frame(in_process_frame)
    assert [(s.number, s.agent, s.local_number, s.depth) for s in steps] == [
        (1, "boss", 1, 0),
        (2, "perception", 1, 1),
        (3, "perception", 2, 1),
        (4, "perception", 3, 1),
        (5, "boss", 2, 0),
        (6, "boss", 3, 0),
    ]
    assert [(s.prompt_tokens, s.completion_tokens) for s in steps] == [(100 * n, n) for n in range(1, 7)]
    assert all(s.duration_s > 0 for s in steps)


def test_in_process_layout_model_input_output_and_code(in_process_frame):
    steps = steps_from_frame(in_process_frame)
    first = steps[0]
    assert [m["role"] for m in first.input_messages] == ["system", "user"]
    assert first.input_messages[1]["content"] == "New task:\nRun one cycle"
    assert first.model_output == f"Thought: ask.\n<code>\n{MANAGER_CODE}\n</code>"
    assert first.code == MANAGER_CODE
    assert "kettle on" in first.observations  # the managed agent's answer, printed by the manager's code
    assert "Look around" in steps[1].input_messages[-1]["content"]  # the task the manager gave perception
    assert steps[1].model_output_message["tool_calls"][0]["function"]["name"] == "observe"
    assert steps[5].code == 'final_answer("done")'


def test_in_process_layout_tool_calls_and_errors(in_process_frame):
    steps = steps_from_frame(in_process_frame)
    assert steps[1].tool_calls == [ToolCall("observe", {"place": "kitchen"}, "kettle on in the kitchen", None)]
    assert (steps[1].status, steps[1].error) == ("ok", None)
    # the failing tool: the tool span has the tool's own error, the step the agent's
    assert steps[2].tool_calls == [ToolCall("broken", {"what": "sensor"}, None, "ValueError: service down")]
    assert steps[2].status == "error"
    assert steps[2].error.startswith("AgentToolExecutionError: Error executing tool 'broken'")
    assert "ValueError: service down" in steps[2].error
    assert steps[3].tool_calls == [ToolCall("final_answer", {"answer": "kettle on"}, "kettle on", None)]
    assert steps[4].status == "error"
    assert steps[4].error.startswith("AgentExecutionError: Code execution failed at line '1/0'")
    assert "ZeroDivisionError: division by zero" in steps[4].error
    assert steps[5].tool_calls == [ToolCall("final_answer", {"args": ["done"]}, "done", None)]  # positional


def test_in_process_layout_model_and_tool_outputs(in_process_frame):
    outputs = model_outputs(in_process_frame)
    assert [o.get("content") for o in outputs] == [
        f"Thought: ask.\n<code>\n{MANAGER_CODE}\n</code>",
        None,
        None,
        None,
        "Thought: oops.\n<code>\n1/0\n</code>",
        'Thought: done.\n<code>\nfinal_answer("done")\n</code>',
    ]
    calls = [o["tool_calls"][0]["function"] for o in outputs[1:4]]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("observe", {"place": "kitchen"}),
        ("broken", {"what": "sensor"}),
        ("final_answer", {"answer": "kettle on"}),
    ]
    assert tool_outputs(in_process_frame) == {
        "observe": [("kettle on in the kitchen", None)],
        "broken": [(None, "ValueError: service down")],
        "final_answer": [("kettle on", None), ("done", None)],
    }
