"""`cogscope run` end to end: scripted LLM over HTTP -> LiteLLM -> smolagents -> OTLP -> a real Phoenix."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from .conftest import SECRET, TRACE_LINE
from .helpers import start_cogscope

RECALL = (
    "Thought: I should recall what memory holds about energy.\n"
    '<code>\nprint(recall_memory(query="energy", limit=2))\n</code>'
)
ANSWER = 'Thought: I know enough to decide.\n<code>\nfinal_answer("Rest for ten minutes, then review goals.")\n</code>'


def _attr(row: pd.Series, key: str):  # type: ignore[no-untyped-def]
    return row.get(f"attributes.{key}")


@pytest.mark.both_backends  # also against a Phoenix on PostgreSQL (conftest)
def test_run_prints_steps_and_totals_and_phoenix_has_the_trace(cogscope, llm, read_trace):
    llm.enqueue(RECALL, prompt_tokens=1000, completion_tokens=100)
    llm.enqueue(ANSWER, prompt_tokens=1200, completion_tokens=50)

    result = cogscope(
        "run",
        "--agent",
        "heartbeat",
        "--task",
        "What should I do about my energy?",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
        "--session",
        "sess-42",
        process=True,
    )

    assert result.code == 0, result.out + result.err
    out = result.out
    assert "── Step 1 ──" in out and "── Step 2 ──" in out
    assert "recall_memory" in out and "Long reasoning chains drain energy" in out  # the tool's real output
    assert "Final answer: Rest for ten minutes, then review goals." in out
    assert "Status:   ok" in out
    assert "Totals:   2 steps, 2 LLM calls, 2,350 tokens (2,200 prompt + 150 completion)" in out
    assert len(llm.requests) == 2

    spans = read_trace(result.trace_id, min_spans=7)
    roots = spans[spans["parent_id"].isna()]
    assert len(roots) == 1
    root = roots.iloc[0]
    assert root["span_kind"] == "AGENT" and root["name"] == "heartbeat.cycle"
    assert _attr(root, "cogscope.agent") == "heartbeat"
    assert json.loads(_attr(root, "cogscope.model")) == {"default": "openai/scripted"}
    assert json.loads(_attr(root, "cogscope.agent.options")) == {}
    assert re.fullmatch(r"[0-9a-f]{32}", _attr(root, "cogscope.cycle.id"))
    assert _attr(root, "cogscope.cycle.status") == "ok"
    assert _attr(root, "session.id") == "sess-42"
    assert _attr(root, "input.value") == "What should I do about my energy?"
    assert _attr(root, "output.value") == "Rest for ten minutes, then review goals."

    # the agent's own run span sits under the root; one CHAIN span per step under it
    children = spans[spans["parent_id"] == root["context.span_id"]]
    assert children["name"].tolist() == ["heartbeat.run"] and children["span_kind"].tolist() == ["AGENT"]
    steps = spans[spans["span_kind"] == "CHAIN"].sort_values("start_time")
    assert steps["name"].tolist() == ["Step 1", "Step 2"]
    assert set(steps["parent_id"]) == {children.iloc[0]["context.span_id"]}

    llm_spans = spans[spans["span_kind"] == "LLM"].sort_values("start_time")
    assert llm_spans["attributes.llm.token_count.prompt"].astype(int).tolist() == [1000, 1200]
    assert llm_spans["attributes.llm.token_count.completion"].astype(int).tolist() == [100, 50]
    assert set(llm_spans["parent_id"]) == set(steps["context.span_id"])
    # each call carries its role and step, so the dashboard never has to fetch the span tree
    assert llm_spans["attributes.cogscope.role"].tolist() == ["heartbeat", "heartbeat"]
    assert llm_spans["attributes.cogscope.step"].astype(int).tolist() == [1, 2]

    tools = spans[spans["span_kind"] == "TOOL"].sort_values("start_time")
    assert tools["attributes.tool.name"].tolist() == ["recall_memory", "final_answer"]
    recall = tools.iloc[0]
    assert json.loads(recall["attributes.input.value"])["kwargs"] == {"query": "energy", "limit": 2}
    assert "Long reasoning chains drain energy" in recall["attributes.output.value"]
    assert recall["parent_id"] == steps.iloc[0]["context.span_id"]
    in_tools = sum((t["end_time"] - t["start_time"]).total_seconds() for _, t in tools.iterrows())
    assert float(_attr(root, "cogscope.cycle.tool_s")) == pytest.approx(in_tools, abs=1e-5)
    assert int(_attr(root, "cogscope.cycle.steps")) == 2  # so the Traces list need not count CHAIN spans

    assert all(_attr(row, "session.id") == "sess-42" for _, row in spans.iterrows())
    assert SECRET not in spans.to_json(date_format="iso")  # the API key reached the LLM server, never a span
    assert llm.headers[0].get("authorization") == f"Bearer {SECRET}"


@pytest.mark.both_backends
def test_failed_cycle_exits_1_and_is_recorded_as_max_steps(cogscope, llm, read_trace):
    for _ in range(5):
        llm.enqueue("Thought: again.\n<code>\nx = 1\n</code>", prompt_tokens=10, completion_tokens=5)
    llm.enqueue("I could not decide.", prompt_tokens=10, completion_tokens=5)  # smolagents' forced final answer

    result = cogscope(
        "run",
        "--agent",
        "heartbeat",
        "--task",
        "Loop forever",
        "--model",
        "openai/scripted",
        "--option",
        "max_steps=5",
        "--api-base",
        llm.api_base,
    )

    assert result.code == 1, result.out + result.err
    assert "Status:   max_steps" in result.out
    assert "Totals:   5 steps, 6 LLM calls" in result.out
    spans = read_trace(result.trace_id, min_spans=2)
    root = spans[spans["parent_id"].isna()].iloc[0]
    assert _attr(root, "cogscope.cycle.status") == "max_steps"
    assert root["status_code"] == "ERROR"


def test_code_error_in_a_step_is_shown_and_recorded(cogscope, llm, read_trace):
    llm.enqueue("Thought: divide.\n<code>\nprint(1 / 0)\n</code>", prompt_tokens=10, completion_tokens=5)
    llm.enqueue(ANSWER, prompt_tokens=10, completion_tokens=5)

    result = cogscope(
        "run", "--agent", "heartbeat", "--task", "Divide", "--model", "openai/scripted", "--api-base", llm.api_base
    )

    assert result.code == 0, result.out + result.err
    assert "error:" in result.out and "division by zero" in result.out
    assert "Status:   step_errors" in result.out
    spans = read_trace(result.trace_id, min_spans=6)
    step1 = spans[spans["name"] == "Step 1"].iloc[0]
    assert step1["status_code"] == "ERROR"


def test_secret_in_the_task_is_redacted_before_export(cogscope, llm, read_trace):
    llm.enqueue(ANSWER)
    result = cogscope(
        "run",
        "--agent",
        "heartbeat",
        "--task",
        f"My key is {SECRET}, keep it safe",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
    )
    assert result.code == 0, result.out + result.err
    sent = json.dumps(llm.requests[0])  # what the model was sent: the task with the key blanked
    assert SECRET not in sent and "My key is [REDACTED], keep it safe" in sent
    spans = read_trace(result.trace_id, min_spans=5)
    root = spans[spans["parent_id"].isna()].iloc[0]
    assert _attr(root, "input.value") == "My key is [REDACTED], keep it safe"
    assert SECRET not in spans.to_json(date_format="iso")


def test_run_shows_the_models_words_as_they_come_and_counts_tokens_exactly(env, llm, read_trace):
    llm.enqueue(ANSWER, prompt_tokens=1200, completion_tokens=50, held="midway")  # half its words, then waits
    model = ("--model", "openai/scripted", "--api-base", llm.api_base)
    run = start_cogscope(env, "run", "--agent", "heartbeat", "--task", "Decide.", *model)
    run.wait_for(r"^  model> Thought: I know enough to decide\.$")  # shown while the model is still writing
    run.wait_for(r"^  model> <code>$")
    assert "── Step 1 ──" not in run.text and "review goals" not in run.text
    llm.release()
    assert run.proc.wait(timeout=120) == 0, run.text
    out = run.text
    assert '  model> final_answer("Rest for ten minutes, then review goals.")\n' in out
    assert out.index("  model> Thought") < out.index("── Step 1 ──")  # the words first, then the whole step
    assert "Totals:   1 step, 1 LLM call, 1,250 tokens (1,200 prompt + 50 completion)" in out

    spans = read_trace(TRACE_LINE.search(out).group(1), min_spans=4)
    call = spans[spans["span_kind"] == "LLM"].iloc[0]
    assert call["name"].endswith(".generate_stream")  # streamed, and its tokens are the server's own count
    assert (int(call["attributes.llm.token_count.prompt"]), int(call["attributes.llm.token_count.completion"])) == (
        1200,
        50,
    )
    assert llm.requests[0].get("stream") is True and llm.requests[0].get("stream_options") == {"include_usage": True}
