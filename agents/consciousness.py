"""The consciousness manager: a CodeAgent that delegates to perception, reasoning and metacognition agents.

Each role can run on its own model (a fast one for perception, a deep one for
reasoning): `models` maps role -> Model, and `default` serves every role not named
(and the manager itself). All four share one memory store and one energy ledger.
"""

from __future__ import annotations

from smolagents import CodeAgent, Model, ToolCallingAgent
from smolagents.monitoring import LogLevel

from .energy import EnergyLedger
from .heartbeat import open_store
from .tools import cognitive_tools

ROLES = ("default", "perception", "reasoning", "metacognition")

MANAGER_INSTRUCTIONS = """You run one cognitive cycle by delegating:
1. perception: ask it to observe the current state and recall memories relevant to the task.
2. reasoning: give it what perception found; ask it to reflect and synthesize a plan.
3. metacognition: ask it to review the goals and check the mental model 'user_routine' against the plan.
Then decide on ONE action and return it with final_answer. Pass each team member everything it needs in its task."""


def build(
    models: dict[str, Model], *, memory: str | None = None, max_steps: int = 8, member_max_steps: int = 4
) -> CodeAgent:
    """Consciousness manager delegating to perception, reasoning and metacognition agents (one model per role).

    Args:
        models: `default` (the manager and any role not named), `perception`, `reasoning`, `metacognition`.
        memory: path of the SQLite memory file (default: $COGSCOPE_DATA_DIR/memory.sqlite).
        max_steps: the manager's step budget.
        member_max_steps: each managed agent's step budget per delegation.
    """
    store = open_store(memory)
    tools = cognitive_tools(store, ledger=EnergyLedger(store))
    default = models["default"]
    perception = ToolCallingAgent(
        tools=[tools["observe"], tools["recall_memory"]],
        model=models.get("perception", default),
        name="perception",
        description="Observes the current state (energy, goals, recent actions) and recalls memories. "
        "Tell it what to look for; it answers with what it found.",
        max_steps=int(member_max_steps),
        verbosity_level=LogLevel.OFF,
    )
    reasoning = CodeAgent(
        tools=[tools["reflect"], tools["synthesize"]],
        model=models.get("reasoning", default),
        name="reasoning",
        description="Analyses observations against goals: reflects on a topic and synthesizes a plan. "
        "Give it the observations and the question.",
        max_steps=int(member_max_steps),
        verbosity_level=LogLevel.OFF,
    )
    metacognition = CodeAgent(
        tools=[tools["review_goals"], tools["get_basins"], tools["revise_model"]],
        model=models.get("metacognition", default),
        name="metacognition",
        description="Reviews the goals and the mental models (basins) and revises a model when a prediction failed. "
        "Give it the plan and what was predicted or observed.",
        max_steps=int(member_max_steps),
        verbosity_level=LogLevel.OFF,
    )
    return CodeAgent(
        tools=[],
        model=default,
        managed_agents=[perception, reasoning, metacognition],
        name="consciousness",
        description="Orchestrates one OODA cycle across perception, reasoning and metacognition.",
        instructions=MANAGER_INSTRUCTIONS,
        max_steps=int(max_steps),
        verbosity_level=LogLevel.OFF,
    )


build.roles = ROLES  # type: ignore[attr-defined]  # how a factory declares its roles (README)
