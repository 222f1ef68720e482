"""The replay's report, as a user reads it: the prompt is compared too, and a difference that comes from an input
cogscope did not capture (the clock) is named as such. The clock and random numbers read through
`cogscope.agents.cycle_inputs` are recorded with the cycle and given back.

One agent file outside the repository, as a user writes one, with two tools: `stamp` reads the time and a random
number through cycle_inputs, `wall_clock` returns `time.time()` itself."""

from __future__ import annotations

import json

CLOCK_AGENT = '''
import time

from smolagents import CodeAgent, tool

from cogscope.agents.cycle_inputs import now, rng

INSTRUCTIONS = "Greet with GREETING."


@tool
def stamp() -> str:
    """The time and a lucky number, read the way cogscope records them."""
    return f"{now().isoformat()} lucky {rng().randrange(10**9)}"


@tool
def wall_clock() -> str:
    """The time as the wall clock says it, in seconds since 1970."""
    return str(time.time())


def make(models, *, max_steps: int = 4):
    return CodeAgent(
        tools=[stamp, wall_clock], model=models["default"], name="clocky", max_steps=max_steps,
        instructions=INSTRUCTIONS,
    )
'''
DONE = 'Thought: done.\n<code>\nfinal_answer("noted")\n</code>'


def _root(frame):  # type: ignore[no-untyped-def]
    return frame[frame["parent_id"].isna()].iloc[0]


def test_the_report_names_a_changed_prompt_and_an_uncaptured_clock(cogscope, record, llm, read_trace, tmp_path):
    agent_file = tmp_path / "clocky.py"
    agent_file.write_text(CLOCK_AGENT.replace("GREETING", "'hello'"))
    agent = f"{agent_file}:make"
    llm.enqueue("Thought: stamp it.\n<code>\nprint(stamp())\n</code>")
    llm.enqueue(DONE)
    captured = record("Stamp it", agent=agent, api_base=llm.api_base)
    llm.enqueue("Thought: read the clock.\n<code>\nprint(wall_clock())\n</code>")
    llm.enqueue(DONE)
    uncaptured = record("Read the wall clock", agent=agent, api_base=llm.api_base)
    spans = read_trace(captured, min_spans=8)
    read_trace(uncaptured, min_spans=8)
    calls = len(llm.requests)

    # the root span records the clock's start, the one reading `stamp` made, and the seed
    inputs = json.loads(_root(spans)["attributes.cogscope.inputs"])
    assert sorted(inputs) == ["clock", "readings", "seed"] and len(inputs["readings"]) == 1
    (stamped,) = spans[spans["span_kind"] == "TOOL"][spans["name"] != "FinalAnswerTool"]["attributes.output.value"]
    assert stamped.startswith(inputs["clock"][:10]) and " lucky " in stamped

    # ... and a replay gives them back: the same tool result, prompts the same, reproduced
    same = cogscope("replay", captured, "--trust-recorded-code", "--format", "json")
    assert same.code == 0, same.out + same.err
    report = json.loads(same.out)
    assert report["schema"] == 1 and report["trace_id"] == captured and report["kind"] == "replay"
    assert (report["reproduced"], report["divergence"], report["llm_calls"]) == (True, None, 0)
    assert report["replayed_outputs"] == 2 and report["status"] == "ok" and report["final_answer"] == "noted"
    replayed = read_trace(report["replay_trace_id"], min_spans=6)
    assert stamped in set(replayed["attributes.output.value"].dropna())

    # time.time() in a tool is not captured: the report says the clock is the cause, and how to capture it
    clock = cogscope("replay", uncaptured, "--trust-recorded-code")
    assert clock.code == 1, clock.out + clock.err
    assert "diverged at step 1: a tool's result differs" in clock.out
    assert (
        "differs only in what looks like a clock reading (a Unix time): an input cogscope did not capture (the "
        "clock); read the time with cogscope.agents.cycle_inputs.now() to have it recorded and given back"
    ) in clock.out

    # the agent's instructions change between the run and the replay: the prompt differs, at call 1, message 0
    agent_file.write_text(CLOCK_AGENT.replace("GREETING", "'howdy'"))
    changed = cogscope("replay", captured, "--trust-recorded-code")
    assert changed.code == 1, changed.out + changed.err
    report_lines = changed.out[changed.out.index("diverged at") :].splitlines()
    assert report_lines[0] == "diverged at step 1: the prompt differs at call 1, message 0 (system)"
    assert report_lines[1:3] == ["  - Greet with 'hello'.", "  + Greet with 'howdy'."]
    as_json = cogscope("replay", captured, "--trust-recorded-code", "--format", "json")
    assert as_json.code == 1, as_json.out + as_json.err
    divergence = json.loads(as_json.out)["divergence"]
    assert {k: divergence[k] for k in ("step", "what", "call", "message", "role", "diff", "uncaptured")} == {
        "step": 1,
        "what": "the prompt",
        "call": 1,
        "message": 0,
        "role": "system",
        "diff": ["- Greet with 'hello'.", "+ Greet with 'howdy'."],
        "uncaptured": None,
    }
    assert "Greet with 'hello'." in divergence["recorded"] and "Greet with 'howdy'." in divergence["replay"]
    assert len(llm.requests) == calls  # replays make no LLM call
