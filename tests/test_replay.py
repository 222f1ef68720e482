"""Failed decisions: list them, step through them, replay them with zero LLM calls, fork them."""

from __future__ import annotations

import json

import pytest

from cogscope.telemetry import free_port, setup_tracing
from cogscope.telemetry.tracing import uninstrument

from .scripted_llm import ScriptedLLM

TOOL_AGENT = '''
from smolagents import CodeAgent, tool


@tool
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: what to look up
    """
    {body}


def make(models, *, max_steps: int = 4):
    return CodeAgent(tools=[lookup], model=models["default"], name="looker", max_steps=max_steps)
'''
BROKEN = 'raise ValueError(f"lookup service is down for {key}")'
FIXED = 'return f"value of {key}"'


@pytest.fixture
def recorder():  # type: ignore[no-untyped-def]
    """A scripted LLM of its own, stopped before the replays: proof that they make no LLM call."""
    server = ScriptedLLM().start()
    yield server
    try:
        server.stop()
    except Exception:
        pass


def _record(record, recorder, task: str, **how) -> str:  # type: ignore[no-untyped-def]
    return record(task, model="openai/scripted", api_base=recorder.api_base, **how)


def _replay(cogscope, trace_id: str, *args: str):  # type: ignore[no-untyped-def]
    return cogscope("replay", trace_id, *args)


@pytest.mark.both_backends  # also against a Phoenix on PostgreSQL (conftest)
def test_code_error_at_step_2_replays_exactly_then_a_fork_fixes_it(cogscope, record, recorder, read_trace, tmp_path):
    recorder.enqueue('Thought: recall.\n<code>\nprint(recall_memory(query="energy", limit=1))\n</code>')
    recorder.enqueue("Thought: compute.\n<code>\nratio = 1 / 0\n</code>")
    recorder.enqueue('Thought: give up.\n<code>\nfinal_answer("could not compute")\n</code>')
    trace_id = _record(record, recorder, "Compute the ratio")
    read_trace(trace_id, min_spans=10)
    recorder.stop()  # from here on, any LLM call would fail

    shown = cogscope("show", trace_id)
    assert shown.code == 0, shown.err
    assert "❌ Step 2 (step 2)" in shown.out and "ZeroDivisionError" in shown.out
    full = cogscope("show", trace_id, "--step", "2")
    assert "input messages:" in full.out and "[system]" in full.out and "ratio = 1 / 0" in full.out

    replay = _replay(cogscope, trace_id)
    assert replay.code == 0, replay.out + replay.err
    assert "Reproduced the recording" in replay.out
    assert "3 outputs replayed, 0 LLM calls" in replay.out
    assert "Status:   step_errors" in replay.out
    replay_trace = replay.trace_id
    root = read_trace(replay_trace, min_spans=5)
    root = root[root["parent_id"].isna()].iloc[0]
    assert root["attributes.cogscope.replay_of"] == trace_id

    edited = tmp_path / "step2.txt"
    edited.write_text(
        'Thought: skip the division.\n<code>\nfinal_answer("ratio undefined: the divisor is zero")\n</code>'
    )
    fork = _replay(cogscope, trace_id, "--fork-at", "2", "--output-file", str(edited))
    assert fork.code == 0, fork.out + fork.err
    assert "Fork finished." in fork.out
    assert "final answer" in fork.out and "ratio undefined: the divisor is zero" in fork.out
    assert "Status:   ok" in fork.out

    listed = cogscope("traces", "--failed", "--format", "json")
    rows = {r["trace_id"]: r for r in json.loads(listed.out)}
    assert rows[trace_id]["status"] == "step_errors" and rows[trace_id]["steps"] == 3
    assert rows[replay_trace]["replay_of"] == trace_id and rows[replay_trace]["llm_calls"] == 0
    assert fork.trace_id not in rows  # the fork ended well


def test_a_raising_tool_replays_then_diverges_once_the_tool_is_fixed(cogscope, record, recorder, read_trace, tmp_path):
    agent_file = tmp_path / "looker.py"
    agent_file.write_text(TOOL_AGENT.format(body=BROKEN))
    recorder.enqueue('Thought: look.\n<code>\nprint(lookup(key="mood"))\n</code>')
    recorder.enqueue('Thought: done.\n<code>\nfinal_answer("unknown mood")\n</code>')
    trace_id = _record(record, recorder, "What mood?", agent=f"{agent_file}:make")
    read_trace(trace_id, min_spans=6)
    recorder.stop()

    # an agent file is code the trace names: replay shows it and runs it only when trusted
    asked = _replay(cogscope, trace_id)
    assert asked.code == 2, asked.out + asked.err
    assert f"would import agent file {agent_file}:make" in asked.err and "--trust-recorded-code" in asked.err
    assert "recorded by this installation" in asked.err

    same = _replay(cogscope, trace_id, "--trust-recorded-code")
    assert same.code == 0, same.out + same.err
    assert "Reproduced the recording" in same.out

    agent_file.write_text(TOOL_AGENT.format(body=FIXED))  # the user fixes the tool
    fixed = _replay(cogscope, trace_id, "--trust-recorded-code")
    assert fixed.code == 1, fixed.out + fixed.err
    assert "diverged at step 1: a tool's result differs" in fixed.out
    assert "lookup service is down for mood" in fixed.out and "value of mood" in fixed.out

    stubbed = _replay(
        cogscope, trace_id, "--stub-tools", "--trust-recorded-code"
    )  # recorded tool results: the old failure again
    assert stubbed.code == 0, stubbed.out + stubbed.err
    assert "tools stubbed" in stubbed.out and "Reproduced the recording" in stubbed.out

    agent_file.unlink()
    gone = _replay(cogscope, trace_id, "--trust-recorded-code")
    assert gone.code == 2 and f"cannot replay: agent '{agent_file}:make' no longer loads" in gone.err


def test_max_steps_replays_and_a_live_fork_finishes(cogscope, record, recorder, read_trace, llm):
    for _ in range(3):
        recorder.enqueue("Thought: again.\n<code>\nx = 1\n</code>")
    recorder.enqueue("I ran out of steps.")
    trace_id = _record(record, recorder, "Loop", options={"max_steps": 3})
    read_trace(trace_id, min_spans=8)
    recorder.stop()

    replay = _replay(cogscope, trace_id)
    assert replay.code == 0, replay.out + replay.err
    assert "Status:   max_steps" in replay.out and "Reproduced the recording" in replay.out

    llm.enqueue(
        'Thought: finish now.\n<code>\nfinal_answer("done live")\n</code>', prompt_tokens=400, completion_tokens=20
    )
    fork = _replay(cogscope, trace_id, "--fork-at", "2", "--model", "openai/scripted", "--api-base", llm.api_base)
    assert fork.code == 0, fork.out + fork.err
    assert "1 output replayed, 1 LLM call" in fork.out
    assert "done live" in fork.out and len(llm.requests) == 1


def test_bad_replay_inputs(cogscope, record, recorder, read_trace, phoenix, project):
    recorder.enqueue('Thought: done.\n<code>\nfinal_answer("ok")\n</code>')
    trace_id = _record(record, recorder, "x")
    read_trace(trace_id, min_spans=5)

    def error(*args: str, **env: str | None) -> str:
        result = cogscope(*args, **env)
        assert result.code == 2, result.out + result.err
        (line,) = [line for line in result.err.splitlines() if line.strip()]
        return line

    assert "is not a trace id (32 hex digits)" in error("replay", "nope")
    assert f"no trace {'0' * 32} in Phoenix project" in error("replay", "0" * 32)
    assert "step 5 is outside the recording's steps 1..1" in error(
        "replay", trace_id, "--fork-at", "5", "--model", "openai/scripted"
    )
    assert "--fork-at K needs --output-file F" in error("replay", trace_id, "--fork-at", "1")
    assert "--step 4 is outside this cycle's steps 1..1" in error("show", trace_id, "--step", "4")
    assert "no Phoenix answers at" in error("traces", PHOENIX_COLLECTOR_ENDPOINT=f"http://127.0.0.1:{free_port()}")

    # a trace another app sent into the same project: shown read-only, not replayed
    tracing = setup_tracing(endpoint=phoenix.collector_endpoint, project_name=project, batch=False)
    try:
        with tracing.tracer().start_as_current_span("other-app", attributes={"openinference.span.kind": "CHAIN"}) as s:
            foreign = format(s.get_span_context().trace_id, "032x")
    finally:
        uninstrument()
        tracing.provider.shutdown()
    read_trace(foreign)
    shown = cogscope("show", foreign)
    assert shown.code == 0 and "Read-only: trace" in shown.out and "is not a smolagents run" in shown.out
    assert "is not a smolagents run (its root span is 'other-app', CHAIN)" in error("replay", foreign)
    listed = json.loads(cogscope("traces", "--format", "json").out)
    assert {r["trace_id"]: (r["agent"], r["cogscope"]) for r in listed}[foreign] == ("other-app", False)
