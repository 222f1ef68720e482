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
    divergence = compare(recording(), replay)
    assert divergence == Divergence(
        2,
        "the observations",
        "Execution logs:\nkettle on",
        "Execution logs:\nkettle off",
        diff=("- kettle on", "+ kettle off"),  # a value of several lines: its lines that differ
    )
    assert divergence.line() == "diverged at step 2: the observations differs\n  - kettle on\n  + kettle off"


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


def test_long_values_are_cut_in_the_report_from_where_they_part():
    replay = recording()
    replay[0] = replace(replay[0], observations="y" * 400)
    divergence = compare(recording(), replay)
    assert divergence.replay == "y" * 300 + "... (400 chars)"
    long = "- recent: " + "a" * 900
    one = replace(recording()[0], tool_calls=[ToolCall("observe", {}, f"Energy 99\n{long}\n- old", None)])
    other = replace(one, tool_calls=[ToolCall("observe", {}, f"Energy 99\n{long}\n- new\n- old", None)])
    divergence = compare([one], [other])
    assert divergence is not None and divergence.diff == ("+ - new",)
    assert divergence.original == "…" + "a" * 36 + '\\n- old", null]]'  # from 40 characters before they part


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


# -- the prompt is part of the report -------------------------------------------------------------------------
SYSTEM = "You are the heartbeat.\nEnergy now: 80/100. Step budget this cycle: 8 steps.\nFinish early when you can."


def prompted(
    number: int, messages: list[tuple[str, str]], *, tool: tuple[str, str] = ("observe", "kettle on")
) -> StepView:
    """A step that made a model call with these input messages (role, content), and called `tool`."""
    return step(
        number,
        f"print({tool[0]}())",
        input_messages=[{"role": role, "content": content} for role, content in messages],
        model_output_message={"role": "assistant", "content": f"<code>print({tool[0]}())</code>"},
        tool_calls=[ToolCall(tool[0], {}, tool[1], None)],
    )


def prompted_cycle(system: str = SYSTEM, first_result: str = "kettle on") -> list[StepView]:
    first = [("system", system), ("user", "New task:\nDecide.")]
    return [
        prompted(1, first, tool=("observe", first_result)),
        prompted(2, [*first, ("tool-call", "Calling tools: observe"), ("tool-response", f"Seen: {first_result}")]),
    ]


def test_a_changed_instruction_is_the_prompt_of_call_1_message_0_with_a_short_diff():
    replay = prompted_cycle(system=SYSTEM.replace("80/100", "55/100"))
    divergence = compare(prompted_cycle(), replay)
    assert divergence is not None
    assert (divergence.step, divergence.what, divergence.call, divergence.message, divergence.role) == (
        1,
        "the prompt",
        1,
        0,
        "system",
    )
    assert divergence.diff == (
        "- Energy now: 80/100. Step budget this cycle: 8 steps.",
        "+ Energy now: 55/100. Step budget this cycle: 8 steps.",
    )
    assert divergence.line() == (
        "diverged at step 1: the prompt differs at call 1, message 0 (system)\n"
        "  - Energy now: 80/100. Step budget this cycle: 8 steps.\n"
        "  + Energy now: 55/100. Step budget this cycle: 8 steps.\n"
        "  differs only in numbers: maybe an input cogscope did not capture (random numbers, the clock), or a "
        "starting state other than the recorded one; draw random numbers with cogscope.agents.cycle_inputs.rng() "
        "and read the time with now() to have them recorded and given back"
    )
    record = divergence.record()
    assert record["call"] == 1 and record["message"] == 0 and record["role"] == "system"
    assert record["diff"] == list(divergence.diff) and record["uncaptured"]["input"] == "random numbers"
    assert compare(prompted_cycle(), prompted_cycle()) is None  # unchanged: no difference


def test_the_first_difference_wins_whether_prompt_or_tool_result():
    # step 1's tool result differs, so step 2's prompt (which holds it) differs too: the tool result comes first
    divergence = compare(prompted_cycle(), prompted_cycle(first_result="kettle off"))
    assert divergence is not None and (divergence.step, divergence.what) == (1, "a tool's result")
    # a prompt differs before its step's tool runs: at the same step, the prompt comes first
    divergence = compare(prompted_cycle(), prompted_cycle(system="Other.", first_result="kettle off"))
    assert divergence is not None and (divergence.step, divergence.what, divergence.call) == (1, "the prompt", 1)
    # step 2's prompt alone: call 2, its first extra message
    replay = prompted_cycle()
    replay[1].input_messages[3]["content"] = "Seen: kettle on\nand the door is open"
    divergence = compare(prompted_cycle(), replay)
    assert divergence is not None and (divergence.step, divergence.call, divergence.message) == (2, 2, 3)
    assert divergence.role == "tool-response" and divergence.diff == ("+ and the door is open",)


def test_calls_are_counted_in_call_order_and_missing_prompts_are_not_compared():
    original = prompted_cycle()
    original.insert(0, replace(prompted(1, [("system", "x")]), model_output_message=None, input_messages=[]))
    original = [replace(s, number=i + 1) for i, s in enumerate(original)]  # a first step whose call failed
    replay = [replace(s) for s in original]
    replay[2] = replace(replay[2], input_messages=[*replay[2].input_messages[:3]])  # one message fewer
    divergence = compare(original, replay)
    assert divergence is not None and (divergence.step, divergence.call, divergence.message) == (3, 2, 3)
    assert divergence.diff[:2] == ("- role: tool-response", "+ role: (no such message)")
    hidden = [replace(s, input_messages=[]) for s in replay]  # OPENINFERENCE_HIDE_INPUTS: nothing to compare
    assert compare(original, hidden) is None


def test_the_ids_smolagents_gives_parsed_tool_calls_are_not_a_difference():
    def cycle(first: str, second: str, seen: str = "kettle on") -> list[StepView]:
        calls = [
            ("system", SYSTEM),
            ("user", "New task:\nDecide."),
            ("tool-call", f"Calling tools:\n[{{'id': '{first}', 'function': {{'name': 'observe'}}}}]"),
            ("tool-response", f"Call id: {first}\nObservation: {seen}"),
            ("tool-call", f"Calling tools:\n[{{'id': '{second}', 'function': {{'name': 'observe'}}}}]"),
        ]
        return [prompted(1, calls[:2]), prompted(2, calls)]

    a, b, c = (
        "860b4173-7073-4851-b02b-1ef4647818ac",
        "9da6cfe2-ed98-4ac5-95ca-50e668ebe15f",
        "0b9e1c2a-5d4f-4e3a-9c1b-2f6a7d8e9f00",
    )
    assert compare(cycle(a, b), cycle(b, c)) is None  # new ids each run, in the same places
    divergence = compare(cycle(a, b), cycle(b, b))  # the second call reuses the first id: not the same prompt
    assert divergence is not None and (divergence.call, divergence.message) == (2, 4)
    assert divergence.diff == (
        "- [{'id': '<call id 2>', 'function': {'name': 'observe'}}]",
        "+ [{'id': '<call id 1>', 'function': {'name': 'observe'}}]",
    )
    divergence = compare(cycle(a, b), cycle(b, c, seen="kettle off"))  # the observation itself changed
    assert divergence is not None and divergence.diff == ("- Observation: kettle on", "+ Observation: kettle off")


def test_the_diff_is_short_cut_around_the_change_and_redacted(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "topsecret-value-123")
    long = "x" * 500
    recorded = [("system", f"{long} key topsecret-value-123 old end\n" + "\n".join(f"line {i}" for i in range(20)))]
    replayed = [("system", f"{long} key topsecret-value-123 new end\n" + "\n".join(f"row {i}" for i in range(20)))]
    divergence = compare([prompted(1, recorded)], [prompted(1, replayed)])
    assert divergence is not None
    assert len(divergence.diff) == 7 and divergence.diff[-1] == "… 36 more changed lines"
    first = divergence.diff[0]
    assert first.startswith("- …") and "old end" in first and len(first) < 200
    assert "topsecret" not in "".join(divergence.diff) + divergence.original + divergence.replay


def test_a_difference_only_in_clock_readings_names_the_clock():
    from cogscope.telemetry.uncaptured import uncaptured

    assert uncaptured("1718000000.123456", "1718000012.5").looks_like == "a clock reading (a Unix time)"
    assert uncaptured("at 09:15:02.5 today", "at 09:15:07.1 today").looks_like == "a time of day"
    assert uncaptured("It is 2024-06-10T09:15:02+00:00.", "It is 2024-06-11T10:00:00+00:00.").source == "the clock"
    assert uncaptured("Mon Jun 10 09:15:02 2024", "Tue Jun 11 10:00:00 2024").looks_like == "a date and time"
    assert uncaptured("roll: 4 of 6", "roll: 2 of 6").source == "random numbers"
    assert uncaptured("Remembered #21.", "Remembered #22.").looks_like == "numbers"
    assert uncaptured("kettle on", "kettle off") is None  # words differ: not an input's value
    assert uncaptured("id 3f2a", "id 3f2b") is None
    made = uncaptured("run 0b9e1c2a-5d4f-4e3a-9c1b-2f6a7d8e9f00 done", "run 9da6cfe2-ed98-4ac5-95ca-50e668ebe15f done")
    assert made is not None and (made.looks_like, made.source) == ("a random id (a UUID)", "random numbers")
    assert uncaptured("same", "same") is None
    one = replace(recording()[0], tool_calls=[ToolCall("clock", {}, "1718000000.25", None)])
    other = replace(one, tool_calls=[ToolCall("clock", {}, "1718000003.75", None)])
    divergence = compare([one], [other])
    assert divergence is not None and divergence.what == "a tool's result"
    assert divergence.line().endswith(
        "differs only in what looks like a clock reading (a Unix time): an input cogscope did not capture (the "
        "clock); read the time with cogscope.agents.cycle_inputs.now() to have it recorded and given back"
    )
