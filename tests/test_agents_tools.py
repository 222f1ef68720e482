"""The cognitive tools and the energy ledger, on real SQLite."""

from __future__ import annotations

import pytest
from smolagents import ChatMessage, MessageRole, Model, Tool

from cogscope.agents.energy import ENERGY_COSTS, STEP_COST, EnergyLedger, max_steps_for
from cogscope.agents.errors import EnergyRefused, MentalModelError
from cogscope.agents.store import Energy, MemoryStore
from cogscope.agents.tools import (
    GetBasinsTool,
    RecallMemoryTool,
    ReflectTool,
    ReviseModelTool,
    SemanticErrorTool,
    SynthesizeTool,
    cognitive_tools,
    lexical_error,
)


class FixedJudge(Model):
    """A judge model that always answers `reply` and keeps the prompts it was given."""

    def __init__(self, reply: str) -> None:
        super().__init__(model_id="fixed-judge")
        self.reply = reply
        self.prompts: list[str] = []

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):
        self.prompts.append(messages[0].content[0]["text"])
        return ChatMessage(role=MessageRole.ASSISTANT, content=self.reply)


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore(":memory:")
    store.seed_example()
    return store


def log(store: MemoryStore) -> list[tuple[str, str, float]]:
    return [(a.cycle_id, a.action, a.cost) for a in reversed(store.recent_actions(100))]


# -- the tool set -----------------------------------------------------------------------
CALLS: dict[str, dict[str, object]] = {  # one valid call of each tool
    "recall_memory": {"query": "energy"},
    "remember": {"text": "The user liked the new plan.", "kind": "episodic"},
    "review_goals": {},
    "observe": {},
    "reflect": {"topic": "energy"},
    "synthesize": {"items": ["walk"]},
    "update_energy": {"delta": 0, "reason": "check"},
    "get_basins": {"model": "user_routine"},
    "semantic_error": {"prediction": "a", "observation": "a"},
    "revise_model": {"model": "user_routine", "error": 0.1, "failed_basins": ["morning_focus"]},
}

# what the agent is told each tool costs: the README's list of tools and energy costs, written out here (a second
# source, not the table the code reads)
TOLD_COSTS = {
    "recall_memory": "1",
    "remember": "2",
    "review_goals": "1",
    "observe": "0.5",
    "reflect": "3",
    "synthesize": "3",
    "update_energy": "0",
    "get_basins": "1",
    "semantic_error": "2",
    "revise_model": "5",
}


def test_cognitive_tools_builds_the_ten_the_readme_lists_each_telling_the_agent_its_cost(store):
    tools = cognitive_tools(store, ledger=EnergyLedger(store, "c0"))
    assert sorted(tools) == sorted(TOLD_COSTS)
    for name, cost in TOLD_COSTS.items():
        tool = tools[name]
        assert isinstance(tool, Tool) and tool.name == name  # the name the agent calls it by
        assert tool.description.endswith(f" Costs {cost} energy."), (name, tool.description)
        before = store.energy().current
        tool(**CALLS[name])
        assert store.energy().current == pytest.approx(before - float(cost)), name  # it costs what it says


# -- energy -----------------------------------------------------------------------------
def test_each_tool_costs_what_the_table_says_and_is_logged_with_its_cycle(store):
    tools = cognitive_tools(store, ledger=EnergyLedger(store, "cycle-7"))
    calls = CALLS
    for name, kwargs in calls.items():
        before = store.energy().current
        tools[name](**kwargs)
        assert store.energy().current == pytest.approx(before - ENERGY_COSTS[name]), name
    assert store.energy().current == pytest.approx(100 - sum(ENERGY_COSTS.values()))
    expected = [("cycle-7", name, ENERGY_COSTS[name]) for name in calls]
    expected.insert(7, ("cycle-7", "update_energy: check", 0.0))  # update_energy logs its effect as well
    assert log(store) == expected
    assert store.recent_actions(2)[0].action == "revise_model"
    assert store.recent_actions(1)[0].energy_after == pytest.approx(store.energy().current)


def test_an_action_energy_cannot_pay_is_refused_and_changes_nothing(store):
    store.set_energy(current=1.5)
    ledger = EnergyLedger(store, "c1")
    memories, actions = store.count(), store.recent_actions(100)

    out = ReflectTool(store, ledger)(topic="energy")

    assert out == (
        "Refused: reflect costs 3 energy but only 1.5 is left. End the cycle to rest (energy regenerates 10 per cycle)."
    )
    assert store.energy().current == 1.5
    assert store.count() == memories and store.recent_actions(100) == actions
    assert RecallMemoryTool(store, ledger)(query="energy").startswith("[")  # 1 is affordable
    assert store.energy().current == 0.5


def test_energy_never_goes_below_zero(store):
    store.set_energy(current=3)
    assert store.spend("reflect", 3, "c1").current == 0.0
    with pytest.raises(EnergyRefused, match="observe costs 0.5 energy but only 0 is left"):
        store.spend("observe", 0.5, "c1")
    assert EnergyLedger(store, "c1").charge("observe").startswith("Refused: observe costs 0.5")
    assert EnergyLedger(store, "c1").charge("update_energy") is None  # free actions are still paid and logged
    assert log(store)[-1] == ("c1", "update_energy", 0.0)
    assert store.adjust_energy(-1000, "crash", "c1").current == 0.0
    with pytest.raises(ValueError):
        store.set_energy(current=-1)
    with pytest.raises(ValueError):
        store.spend("trick", -5, "c1")
    assert store.energy() == Energy(0.0, 100.0, 10.0)


def test_update_energy_clamps_and_logs_why(store):
    ledger = EnergyLedger(store, "c2")
    tools = cognitive_tools(store, ledger=ledger)
    store.set_energy(current=40)
    assert tools["update_energy"](delta=-15.5, reason="hard conversation") == "Energy now 24.5/100."
    assert tools["update_energy"](delta=1000, reason="long sleep") == "Energy now 100/100."
    assert tools["update_energy"](delta=-500, reason="all-nighter") == "Energy now 0/100."
    assert log(store)[-6:] == [
        ("c2", "update_energy", 0.0),
        ("c2", "update_energy: hard conversation", 15.5),
        ("c2", "update_energy", 0.0),
        ("c2", "update_energy: long sleep", -75.5),  # the change actually applied
        ("c2", "update_energy", 0.0),
        ("c2", "update_energy: all-nighter", 100.0),
    ]
    assert store.regenerate() == Energy(10.0, 100.0, 10.0)
    store.set_energy(current=95)
    assert store.regenerate().current == 100.0


def test_step_budget_follows_energy():
    assert STEP_COST == 2.0
    assert [max_steps_for(Energy(e, 100, 10)) for e in (100, 24, 10, 3, 2.9, 0)] == [8, 8, 3, 1, 0, 0]
    assert max_steps_for(Energy(100, 100, 10), cap=50) == 33


def test_ledger_rejects_an_action_not_in_the_table(store):
    with pytest.raises(ValueError, match="unknown action 'dance'"):
        EnergyLedger(store, "c").charge("dance")


# -- memory tools -----------------------------------------------------------------------
def test_recall_and_remember_go_through_the_store(tmp_path):
    path = tmp_path / "m.sqlite"
    store = MemoryStore(path)
    tools = cognitive_tools(store)
    assert tools["remember"](text="The user drinks green tea at 4 pm.", kind="semantic") == "Remembered #1."
    assert tools["remember"](text="Tea at 4 pm went well today.", kind=None) == "Remembered #2."
    assert tools["remember"](text="x", kind="dream").startswith("Unknown kind 'dream'")
    assert (
        tools["recall_memory"](query="green tea", limit=1)
        == "[semantic, salience 0.5] The user drinks green tea at 4 pm."
    )
    store.close()
    again = MemoryStore(path)
    assert [(m.kind, m.text) for m in again.recent(5)] == [
        ("episodic", "Tea at 4 pm went well today."),
        ("semantic", "The user drinks green tea at 4 pm."),
    ]
    assert again.recent_actions(5) == []  # no ledger: nothing charged


def test_review_goals_and_observe(store):
    tools = cognitive_tools(store, ledger=EnergyLedger(store, "c3"))
    goal = store.add_goal("Call mum on Sunday", priority=4)
    assert tools["review_goals"]().splitlines() == [
        "#1 [priority 5] Finish the coaching course outline by the end of the month",
        "#2 [priority 4] Protect two hours of deep work every morning",
        f"#{goal} [priority 4] Call mum on Sunday",
        "#3 [priority 3] Read twenty minutes every evening",
        "#4 [priority 2] See a friend at least once a week",
    ]
    store.set_goal_status(goal, "done")
    assert [g.text for g in store.goals("done")] == ["Call mum on Sunday"]
    out = tools["observe"]()
    assert out.startswith("Energy: 98.5/100 (regenerates 10 per cycle).\nActive goals:\n- [priority 5] Finish")
    assert "Call mum" not in out
    assert out.endswith(
        "Recent actions (newest first):\n"
        "- observe (cost 0.5, energy after 98.5, cycle c3)\n"
        "- review_goals (cost 1, energy after 99, cycle c3)"
    )
    with pytest.raises(ValueError):
        store.add_goal("too important", priority=6)


def test_reflect_writes_a_reflection_memory(store):
    tool = ReflectTool(store)
    before = store.count()
    out = tool(topic="notifications deep work")
    # recalled: 'fewer notifications during deep work' (user,focus, 0.6) and 'ignored two reminders sent during
    # deep work' (focus,notifications, 0.5): the most salient is the first, the shared tag is 'focus'.
    assert out == (
        "Reflection on notifications deep work: 2 memories; most salient: Last week the user asked for fewer "
        "notifications during deep work; common tags: focus."
    )
    assert store.count() == before + 1
    saved = store.recent(1)[0]
    assert (saved.text, saved.kind, saved.tags, saved.salience) == (out, "reflection", "reflection,focus", 0.6)
    assert tool(topic="xylophone") == "Nothing in memory about 'xylophone'; no reflection was written. Try other words."
    assert store.count() == before + 1


def test_synthesize_builds_a_numbered_plan(store):
    tool = SynthesizeTool(store)
    assert tool(items=["recall sleep notes", "- check goals", "2. suggest a walk", "Recall sleep notes", " "]) == (
        "Plan:\n1. Recall sleep notes\n2. Check goals\n3. Suggest a walk"
    )
    assert tool(items=[]) == "Nothing to synthesize: give a list with at least one non-empty item."


# -- mental models ----------------------------------------------------------------------
def test_get_basins_shows_basins_and_predictors(store):
    tool = GetBasinsTool(store)
    out = tool(model="user_routine").splitlines()
    assert out[0] == "Mental model user_routine (3 basins):"
    assert out[1] == "- morning_focus: strength 0.800, threshold 0.400"
    assert out[2] == "  - predictor #1 (confidence 0.850): The user starts deep work before 9 on weekdays."
    assert "- evening_fatigue: strength 0.600, threshold 0.500" in out
    assert tool(model="weather") == "No mental model named 'weather'. Known models: user_routine."
    assert GetBasinsTool(MemoryStore(":memory:"))(model="x") == "No mental model named 'x'. Known models: none."


@pytest.mark.parametrize(
    ("prediction", "observation", "expected"),
    [
        ("The user went running", "the user went running", 0.0),  # identical stems
        ("Morning focus", "evening fatigue", 1.0),  # nothing shared
        # {user, skip, workout} vs {user, went, running}: 1 shared of 5 -> 1 - 1/5
        ("The user will skip the workout", "The user went running", 0.8),
        # {energy, drop, after, lunch} vs {energy, dropped, after, long, lunch}: 3 of 6 -> 1 - 3/6
        ("Energy drops after lunch", "Energy dropped after a long lunch", 0.5),
        # 'reads' -> 'read', 'books' -> 'book': {user, read, book} on both sides
        ("User reads books", "the user read a book", 0.0),
        # {walk, daily} vs {walk, park, rain}: 1 of 4 -> 1 - 1/4
        ("walks daily", "walk in the park in the rain", 0.75),
    ],
)
def test_semantic_error_lexical_measure(store, prediction, observation, expected):
    assert lexical_error(prediction, observation) == pytest.approx(expected)
    assert SemanticErrorTool(store)(prediction=prediction, observation=observation) == f"{expected:.3f}"


def test_semantic_error_asks_the_judge_and_falls_back_when_it_answers_no_number(store):
    judge = FixedJudge("I would say 0.25, mostly wrong timing.")
    tool = SemanticErrorTool(store, judge=judge)
    assert tool(prediction="The user will skip the workout", observation="The user went running") == "0.250"
    assert "Prediction: The user will skip the workout\nObservation: The user went running" in judge.prompts[0]
    assert "between 0 and 1" in judge.prompts[0]

    vague = SemanticErrorTool(store, judge=FixedJudge("Quite wrong, honestly."))
    assert vague(prediction="The user will skip the workout", observation="The user went running") == (
        "0.800 (lexical measure: the judge's answer 'Quite wrong, honestly.' had no number between 0 and 1)"
    )
    out_of_range = cognitive_tools(store, judge=FixedJudge("7"))["semantic_error"]
    assert out_of_range(prediction="walk park", observation="walk rain").startswith("0.667 (lexical measure:")


def test_revise_model_restructures_and_persists(tmp_path):
    path = tmp_path / "m.sqlite"
    store = MemoryStore(path)
    store.seed_example()
    tool = ReviseModelTool(store, EnergyLedger(store, "c4"))

    out = tool(model="user_routine", error=0.4, failed_basins=["morning_focus", "evening_fatigue"], new_basin="late")

    # error 0.4: strength *= 0.8, threshold += 0.04, confidence *= 0.6
    assert out == "\n".join(
        [
            "Revised user_routine with error 0.400:",
            "- morning_focus: strength 0.800 -> 0.640, threshold 0.400 -> 0.440",
            "  - predictor #1 confidence 0.850 -> 0.510: The user starts deep work before 9 on weekdays.",
            "  - predictor #2 confidence 0.700 -> 0.420: Check-ins sent before 10 are answered within minutes.",
            "- evening_fatigue: strength 0.600 -> 0.480, threshold 0.500 -> 0.540",
            "  - predictor #3 confidence 0.750 -> 0.450: After 21:00 the user declines long reviews.",
            "- added basin late: strength 0.400, threshold 0.500",
            "Recorded as prediction #1, resolution #1.",
        ]
    )
    store.close()

    again = MemoryStore(path)
    basins = again.basins("user_routine")
    assert [b.name for b in basins] == ["morning_focus", "evening_fatigue", "social_recharge", "late"]
    assert [b.strength for b in basins] == pytest.approx([0.64, 0.48, 0.5, 0.4])
    assert [b.threshold for b in basins] == pytest.approx([0.44, 0.54, 0.6, 0.5])
    assert [p.confidence for p in again.predictors("user_routine")] == pytest.approx([0.51, 0.42, 0.45, 0.65, 0.5])
    (prediction,) = again.predictions("user_routine")
    (resolution,) = again.resolutions("user_routine")
    assert resolution.prediction_id == prediction.id and resolution.error == 0.4
    changed = resolution.basins_changed
    assert list(changed) == ["morning_focus", "evening_fatigue", "late"]
    assert changed["morning_focus"]["strength"] == pytest.approx([0.8, 0.64])
    assert changed["evening_fatigue"]["predictors"][0]["confidence"] == pytest.approx([0.75, 0.45])
    assert changed["late"] == {"added": True, "strength": [None, 0.4], "threshold": [None, 0.5], "predictors": []}
    assert again.energy().current == 95.0 and again.recent_actions(1)[0].action == "revise_model"


def test_revise_model_refuses_unknown_names_and_bad_errors_changing_nothing(store):
    tool = ReviseModelTool(store)
    snapshot = (store.basins("user_routine"), store.predictors("user_routine"))
    assert tool(model="weather", error=0.5, failed_basins=["rain"]) == (
        "No mental model named 'weather'. Known models: user_routine. Nothing changed."
    )
    assert tool(model="user_routine", error=0.5, failed_basins=["morning_focus", "night_owl"]) == (
        "Model 'user_routine' has no basin named 'night_owl'. "
        "Its basins: morning_focus, evening_fatigue, social_recharge. Nothing changed."
    )
    assert tool(model="user_routine", error=1.5, failed_basins=["morning_focus"]) == (
        "error must be between 0 and 1, got 1.5. Nothing changed."
    )
    assert tool(model="user_routine", error=0.5, failed_basins=[], new_basin="morning_focus").startswith(
        "Model 'user_routine' already has a basin named 'morning_focus'"
    )
    assert (store.basins("user_routine"), store.predictors("user_routine")) == snapshot
    assert store.resolutions() == [] and store.predictions("user_routine") == []
    with pytest.raises(MentalModelError):
        store.add_basin("user_routine", "morning_focus", 0.5, 0.5)
