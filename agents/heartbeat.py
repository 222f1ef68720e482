"""The heartbeat: one OODA cycle (observe, orient, decide, act) as a smolagents CodeAgent on an energy budget.

One run is one cycle. At the start of a run the store regenerates energy, the
step budget is derived from the energy left (`energy.max_steps_for`) and the
prompt is rebuilt from the store (energy, goals, recent memories). Each step
costs `STEP_COST` and each tool its price in `ENERGY_COSTS`; both are written
to the action log under the cycle's id.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from smolagents import ActionStep, CodeAgent, Model
from smolagents.monitoring import LogLevel

from cogscope import defaults

from .energy import STEP_COST, EnergyLedger, max_steps_for, new_cycle_id
from .errors import EnergyExhausted, EnergyRefused
from .store import MemoryStore, clip
from .tools import cognitive_tools

DEFAULT_MAX_STEPS = 8
DEFAULT_TASK = "Heartbeat: run one OODA cycle and take the most useful next action."
# what one heartbeat prompt takes from the store, however much the store holds (a memory of any size, stored
# before MAX_MEMORY_CHARS or by other code, reaches the model only cut): the newest memories, each line cut,
# and the goals and memories together cut again
PROMPT_MEMORIES = 5
PROMPT_LINE_CHARS = 500
PROMPT_STORE_CHARS = 4_000
HEARTBEAT_TOOLS = ("observe", "recall_memory", "review_goals", "reflect", "synthesize", "remember", "update_energy")

_stores: dict[str, MemoryStore] = {}
_stores_lock = threading.Lock()


def default_memory_path() -> Path:
    return defaults.data_dir() / defaults.MEMORY_FILE


def open_store(path: str | Path | None = None) -> MemoryStore:
    """The process-wide store for `path` (default: the data dir's memory.sqlite), seeded on first use."""
    key = str(path or default_memory_path())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = MemoryStore(key)
            store.seed_example()
            if key != ":memory:":
                _stores[key] = store
        return store


def close_store(path: str | Path) -> None:
    """Close the process-wide store for `path` and forget it (a re-run's scratch copy, once the re-run is over)."""
    with _stores_lock:
        store = _stores.pop(str(path), None)
    if store is not None:
        store.close()


INSTRUCTIONS = """You are the heartbeat of a cognitive agent. This run is one OODA cycle:
1. Observe: call observe() and recall_memory(...) for what bears on the task.
2. Orient: relate it to the active goals (review_goals()).
3. Decide: choose ONE concrete next action.
4. Act: take it with a tool if one fits (remember, reflect, synthesize),
   then give final_answer(...) stating the decision.
Every step costs {step_cost:g} energy and every tool has a price (shown in its description).
Energy now: {energy:g}/{max:g}. Step budget this cycle: {budget} steps. Finish early when you can.

Active goals:
{goals}

Most recent memories:
{recent}"""


def render_instructions(store: MemoryStore, budget: int) -> str:
    """The heartbeat's instructions: energy, budget, goals and recent memories, within the PROMPT_* bounds."""
    energy = store.energy()
    goals = "\n".join(clip(f"- [p{g.priority}] {g.text}", PROMPT_LINE_CHARS) for g in store.goals()) or "- (none)"
    lines = [f"- {m.line(PROMPT_LINE_CHARS)}" for m in store.recent(PROMPT_MEMORIES)]
    recent = "\n".join(lines) or "- (nothing yet)"
    goals = clip(goals, PROMPT_STORE_CHARS // 2)
    recent = clip(recent, PROMPT_STORE_CHARS - len(goals))
    return INSTRUCTIONS.format(
        step_cost=STEP_COST, energy=energy.current, max=energy.max, budget=budget, goals=goals, recent=recent
    )


class HeartbeatAgent(CodeAgent):  # type: ignore[misc]  # smolagents has no py.typed: its classes are Any
    """A CodeAgent whose every run is one energy-budgeted cycle over the memory store."""

    def __init__(self, *, store: MemoryStore, ledger: EnergyLedger, step_cap: int, **kwargs: Any) -> None:
        self.store = store
        self.ledger = ledger
        self.step_cap = step_cap
        super().__init__(**kwargs)
        self.step_callbacks.register(ActionStep, self._pay_for_step)

    def run(self, task: str, *args: Any, **kwargs: Any) -> Any:
        """One cycle; `max_steps=N` overrides the energy-derived budget (a replay runs with the recorded one)."""
        self.ledger.cycle_id = new_cycle_id()  # from the cycle's seed: a replay logs the same id
        energy = self.store.regenerate()
        budget = kwargs.get("max_steps") or max_steps_for(energy, cap=self.step_cap)
        if budget == 0:
            raise EnergyExhausted(
                f"energy exhausted: {energy.current:g}/{energy.max:g} left, a step needs {STEP_COST + 1:g}; "
                f"the heartbeat rests this cycle (energy regenerates {energy.regen_per_cycle:g} per cycle)"
            )
        self.max_steps = budget
        self.instructions = render_instructions(self.store, budget)
        return super().run(task, *args, **kwargs)

    def _pay_for_step(self, step: ActionStep, agent: Any = None) -> None:
        try:
            self.store.spend("step", STEP_COST, self.ledger.cycle_id)
        except EnergyRefused:
            self.interrupt()  # no energy for another step: the cycle ends here


def build(models: dict[str, Model], *, memory: str | None = None, max_steps: int = DEFAULT_MAX_STEPS) -> CodeAgent:
    """OODA heartbeat: a CodeAgent on an energy budget over the SQLite memory store.

    Args:
        models: model per role; the heartbeat uses `default`.
        memory: path of the SQLite memory file (default: $COGSCOPE_DATA_DIR/memory.sqlite).
        max_steps: the most steps one cycle may take; the energy left may allow fewer.
    """
    store = open_store(memory)
    ledger = EnergyLedger(store)
    tools = cognitive_tools(store, ledger=ledger)
    return HeartbeatAgent(
        store=store,
        ledger=ledger,
        step_cap=int(max_steps),
        tools=[tools[name] for name in HEARTBEAT_TOOLS],
        model=models["default"],
        name="heartbeat",
        description="One OODA cycle over the memory store, on an energy budget.",
        instructions=render_instructions(store, max_steps_for(store.energy(), cap=int(max_steps))),
        max_steps=int(max_steps),
        verbosity_level=LogLevel.OFF,
    )


build.roles = ("default",)  # type: ignore[attr-defined]  # how a factory declares its roles (README)
