"""The root span's contract: every attribute README's "What is traced" names is on the root span Phoenix stores, with
the value the README says, and nothing else is (each attribute is popped and checked, then what is left must be
empty, the way OpenInference's own instrumentor tests pin their spans).

One real heartbeat cycle (two steps, one tool from an MCP server, a session id) through the Runtime `cogscope run`
uses, against the scripted LLM server and the test Phoenix. A new attribute on the root span fails this test until
the README names it and the test pins it."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import _environ, cogscope_command

NOTE = 'Thought: note it.\n<code>\nprint(remember(text="Shared through MCP", kind="semantic"))\n</code>'
DONE = 'Thought: done.\n<code>\nfinal_answer("rest")\n</code>'
HEX64 = re.compile(r"[0-9a-f]{64}")


def _one_cycle(env: dict[str, str], llm: Any, serve: str) -> Any:
    from cogscope.ui.config import Settings
    from cogscope.ui.runtime import Runtime

    llm.enqueue(NOTE, prompt_tokens=300, completion_tokens=20)
    llm.enqueue(DONE, prompt_tokens=400, completion_tokens=10)
    with _environ(env):
        runtime = Runtime.start(Settings.from_env())
        try:
            cycle = runtime.prepare_cycle(
                agent="heartbeat",
                task="Decide the next action.",
                models={"default": "openai/scripted"},
                api_base=llm.api_base,
                options={"max_steps": 3},
                session_id="session-contract",
                mcp=[serve],
            )
            result = cycle.run()
        finally:
            assert runtime.close() == 0  # every span stored in Phoenix (the spool's sender confirmed each)
    return result


def test_the_root_span_carries_exactly_what_the_readme_lists(env, llm, tmp_path, read_trace, cogscope):
    from cogscope.telemetry import Signer, phoenix_client

    serve = " ".join([*cogscope_command(), "mcp-serve", "--memory", str(tmp_path / "shared.sqlite")])
    result = _one_cycle(env, llm, serve)
    assert result.status == "ok" and result.final_answer == "rest", result
    spans = read_trace(result.trace_id, min_spans=8)  # root, run, 2 steps, 2 LLM calls, 2 tools
    (root,) = phoenix_client(env["PHOENIX_COLLECTOR_ENDPOINT"]).spans.get_spans(
        project_identifier=env["COGSCOPE_PROJECT"], trace_ids=[result.trace_id], parent_id="null", timeout=30
    )
    assert root["name"] == "heartbeat.cycle" and root["span_kind"] == "AGENT"  # `<agent>.cycle`, kind AGENT
    attributes = dict(root["attributes"])
    signed = dict(attributes)  # what the signature covers, before the pops

    # what README's "What is traced" lists, in its order
    assert attributes.pop("cogscope.agent") == "heartbeat"
    assert json.loads(attributes.pop("cogscope.agent.options")) == {"max_steps": 3}
    assert json.loads(attributes.pop("cogscope.model")) == {"default": "openai/scripted"}  # model id per role
    assert attributes.pop("cogscope.cycle.id") == result.cycle_id
    assert attributes.pop("cogscope.cycle.status") == "ok"
    assert json.loads(attributes.pop("cogscope.mcp")) == [serve]
    assert attributes.pop("session.id") == "session-contract"
    state = attributes.pop("cogscope.state")  # the memory store's point kept right before the cycle
    assert state == result.state and re.fullmatch(r"m[0-9a-f]{8}\.\d+", state)
    signature = attributes.pop("cogscope.signature")
    assert HEX64.fullmatch(signature) and Signer.from_dir(Path(env["COGSCOPE_DATA_DIR"])).verify(
        result.trace_id, signed
    ), "the signature is not this installation's HMAC of the root span"
    assert HEX64.fullmatch(attributes.pop("cogscope.seal"))  # checked whole below: `show` says the seal holds
    tools = spans[spans["span_kind"] == "TOOL"]
    assert sorted(tools["name"]) == ["FinalAnswerTool", "McpTool"]
    in_tools = sum((tools["end_time"] - tools["start_time"]).dt.total_seconds())
    assert attributes.pop("cogscope.cycle.tool_s") == pytest.approx(in_tools, abs=0.005)  # seconds in tools
    assert attributes.pop("cogscope.cycle.steps") == 2  # the two replies the test sent, one step each
    inputs = json.loads(attributes.pop("cogscope.inputs"))  # the clock and seed its tools read (agents.cycle_inputs)
    clock = datetime.fromisoformat(inputs.pop("clock"))
    start, end = (datetime.fromisoformat(str(root[key]).replace("Z", "+00:00")) for key in ("start_time", "end_time"))
    assert start <= clock <= end, (start, clock, end)  # read as the cycle began, inside its root span
    assert isinstance(inputs.pop("seed"), int) and inputs.pop("readings") == [] and not inputs  # no tool read the clock

    # what OpenInference records on every agent span: the task and the final answer
    assert attributes.pop("input.value") == "Decide the next action."
    assert attributes.pop("input.mime_type") == "text/plain"
    assert attributes.pop("output.value") == "rest"
    assert attributes.pop("output.mime_type") == "text/plain"

    assert not attributes, f"the root span carries attributes README's 'What is traced' does not list: {attributes}"

    shown = cogscope("show", result.trace_id, "--format", "json")
    assert shown.code == 0, shown.out + shown.err
    assert json.loads(shown.out)["cycle"]["recorded_here"] is True  # signature and seal both check out
