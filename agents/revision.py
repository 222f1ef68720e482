"""The mental-model revision agent: compares a prediction with an observation and revises the model."""

from __future__ import annotations

from smolagents import CodeAgent, Model
from smolagents.monitoring import LogLevel

from .energy import EnergyLedger
from .heartbeat import open_store
from .tools import cognitive_tools

INSTRUCTIONS = """You revise a mental model when its prediction fails.
1. get_basins(model) to see the model's basins and predictors.
2. semantic_error(prediction, observation) to measure how wrong the prediction was (0 = right, 1 = wrong).
3. If the error is above {threshold:g}, decide which basins the prediction relied on and call
   revise_model(model, error, failed_basins, new_basin) (new_basin only if no basin explains the observation).
4. final_answer with the error and what changed.
{given}"""


def build(
    models: dict[str, Model],
    *,
    memory: str | None = None,
    model: str = "user_routine",
    prediction: str | None = None,
    observation: str | None = None,
    threshold: float = 0.5,
    judge: bool = False,
    max_steps: int = 6,
) -> CodeAgent:
    """Mental-model revision: measures a prediction's error and restructures the model's basins.

    Args:
        models: `default`.
        memory: path of the SQLite memory file (default: $COGSCOPE_DATA_DIR/memory.sqlite).
        model: the mental model to revise.
        prediction: what was predicted (else the task must say it).
        observation: what was observed (else the task must say it).
        threshold: the error above which the model is revised.
        judge: let the LLM judge the semantic error instead of the lexical measure.
        max_steps: the step budget.
    """
    store = open_store(memory)
    llm = models["default"]
    tools = cognitive_tools(store, ledger=EnergyLedger(store), judge=llm if judge else None)
    given = f"\nMental model: {model}"
    if prediction:
        given += f"\nPrediction: {prediction}"
    if observation:
        given += f"\nObservation: {observation}"
    return CodeAgent(
        tools=[tools["get_basins"], tools["semantic_error"], tools["revise_model"]],
        model=llm,
        name="revision",
        description="Revises a mental model from a failed prediction.",
        instructions=INSTRUCTIONS.format(threshold=threshold, given=given),
        max_steps=int(max_steps),
        verbosity_level=LogLevel.OFF,
    )


build.roles = ("default",)  # type: ignore[attr-defined]  # how a factory declares its roles (README)
