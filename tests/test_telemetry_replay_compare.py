"""telemetry.replay.compare on hand-built steps: where a replay first differs from its recording."""

from __future__ import annotations

from dataclasses import replace

from cogscope.telemetry.replay import Divergence, call_of_step, compare
from cogscope.telemetry.steps import StepView, ToolCall


def step(number: int, code: str, *, agent: str = "heartbeat", depth: int = 0, **fields) -> StepView:  # type: ignore[no-untyped-def]
    return StepView(
        number=number,
        agent=agent,
        local_number=number,
        depth=depth,
        span_id=f"span{number}",
        status="ok",
        duration_s=1.0,
        model_output=f"Thought: step {number}.\n<code>\n{code}\n</code>",
        code=code,
        **fields,
    )


def recording() -> list[StepView]:
    return [
        step(1, 'print(recall_memory(query="energy"))', observations="Execution logs:\nenergy is low",
             tool_calls=[ToolCall("recall_memory", {"query": "energy"}, "energy is low", None)]),
        step(2, 'print(observe(place="kitchen"))', observations="Execution logs:\nkettle on",
             tool_calls=[ToolCall("observe", {"place": "kitchen"}, "kettle on", None)]),
        step(3, 'final_answer("rest")', tool_calls=[ToolCall("final_answer", {"args": ["rest"]}, "rest", None)]),
    ]  # fmt: skip


def test_the_same_steps_do_not_diverge():
    assert compare(recording(), recording()) is None


def test_timing_tokens_and_wording_around_the_code_do_not_count():
    replay = [replace(s, duration_s=9.0, prompt_tokens=0, model_output="other words", span_id="x") for s in recording()]
    assert compare(recording(), replay) is None


def test_different_code_at_step_2():
    replay = recording()
    replay[1] = replace(replay[1], code='print(observe(place="hall"))')
    divergence = compare(recording(), replay)
    assert divergence == Divergence(2, "the code", 'print(observe(place="kitchen"))', 'print(observe(place="hall"))')
    assert divergence.line() == (
        "diverged at step 2: the code differs\n"
        '  recorded: print(observe(place="kitchen"))\n'
        '  replay:   print(observe(place="hall"))'
    )


def test_the_first_difference_is_named():
    replay = recording()
    replay[1] = replace(replay[1], observations="Execution logs:\nkettle off")
    replay[2] = replace(replay[2], code='final_answer("run")')
    assert compare(recording(), replay) == Divergence(
        2, "the observations", "Execution logs:\nkettle on", "Execution logs:\nkettle off"
    )


def test_different_tool_arguments():
    replay = recording()
    replay[1] = replace(replay[1], tool_calls=[ToolCall("observe", {"place": "hall"}, "kettle on", None)])
    assert compare(recording(), replay) == Divergence(
        2, "the tool calls", '[["observe", {"place": "kitchen"}]]', '[["observe", {"place": "hall"}]]'
    )


def test_different_tool_results():
    replay = recording()
    replay[1] = replace(replay[1], tool_calls=[ToolCall("observe", {"place": "kitchen"}, None, "ValueError: down")])
    assert compare(recording(), replay) == Divergence(
        2, "a tool's result", '[["kettle on", null]]', '[[null, "ValueError: down"]]'
    )


def test_a_step_error_that_the_recording_did_not_have():
    replay = recording()
    replay[0] = replace(replay[0], status="error", error="AgentExecutionError: boom")
    # a missing value reads as JSON: null
    assert compare(recording(), replay) == Divergence(1, "the error", "null", "AgentExecutionError: boom")


def test_a_managed_agents_step_is_named_by_its_number_in_the_cycle():
    original = recording()
    original.insert(1, step(2, 'final_answer("seen")', agent="perception", depth=1))
    original[2:] = [replace(s, number=s.number + 1) for s in original[2:]]
    replay = [replace(s) for s in original]
    replay[1] = replace(replay[1], code='final_answer("blind")')
    divergence = compare(original, replay)
    assert (divergence.step, divergence.what) == (2, "the code")


def test_fewer_or_more_steps():
    shorter = recording()[:2]
    assert compare(recording(), shorter) == Divergence(3, "the number of steps", "3 steps", "2 steps")
    longer = [*recording(), step(4, "x = 1")]
    assert compare(recording(), longer) == Divergence(4, "the number of steps", "3 steps", "4 steps")


def test_a_fork_compares_only_the_steps_before_it():
    replay = recording()
    replay[2] = replace(replay[2], code='final_answer("walk")')  # the forked step: expected to differ
    assert compare(recording(), replay, until=3) is None
    assert compare(recording(), replay[:2], until=3) is None  # and what comes after it may be anything
    assert compare(recording(), [*replay, step(4, "x = 1")], until=3) is None
    replay[1] = replace(replay[1], code="x = 2")
    assert compare(recording(), replay, until=3) == Divergence(
        2, "the code", 'print(observe(place="kitchen"))', "x = 2"
    )


def test_a_fork_whose_replay_stopped_before_the_fork_point():
    assert compare(recording(), recording()[:1], until=3) == Divergence(2, "the number of steps", "3 steps", "1 step")


def test_long_values_are_cut_in_the_report():
    replay = recording()
    replay[0] = replace(replay[0], observations="y" * 400)
    divergence = compare(recording(), replay)
    assert divergence.replay == "y" * 300 + "... (400 chars)"


def test_a_fork_at_a_step_forks_that_steps_model_call():
    """`--fork-at N` names a step; the replay model counts calls. They part ways after a step whose call failed
    without an output (a model error): that step made no recorded call."""
    said = {"role": "assistant", "content": "Thought: go."}
    steps = [
        step(1, "x = 1", model_output_message=said),
        step(2, "", model_output_message=None, error="Error in generating model output: 502"),
        step(3, "x = 3", model_output_message=said),
        step(4, "x = 4", model_output_message=said),
    ]
    assert [call_of_step(steps, n) for n in (1, 2, 3, 4)] == [1, 2, 2, 3]
    # every step with its own call: steps and calls are the same numbers
    assert [call_of_step([replace(s, model_output_message=said) for s in recording()], n) for n in (1, 2, 3)] == [
        1,
        2,
        3,
    ]
