"""Energy: what each cognitive action costs, and the ledger that charges it to the memory store.

Every tool call is paid from the store's energy before the tool acts:

    action          cost   why
    --------------  -----  ------------------------------------------------------------
    recall_memory     1    a full-text search
    remember          2    a write to long-term memory
    review_goals      1    a read of the active goals
    observe         0.5    a glance at energy, goals and recent actions
    reflect           3    recall plus a new reflection memory
    synthesize        3    turning items into a plan
    update_energy     0    bookkeeping; free, but still logged
    get_basins        1    a read of one mental model
    semantic_error    2    comparing a prediction with an observation
    revise_model      5    restructuring a mental model

Each agent step (one LLM call) costs STEP_COST = 2 on top of the tools it calls, which is
how `max_steps_for` turns the energy left into a step budget. Energy regenerates by
`regen_per_cycle` between cycles (`MemoryStore.regenerate`).
"""

from __future__ import annotations

from .cycle_inputs import rng
from .errors import EnergyRefused
from .store import Energy, MemoryStore

ENERGY_COSTS: dict[str, float] = {
    "recall_memory": 1.0,
    "remember": 2.0,
    "review_goals": 1.0,
    "observe": 0.5,
    "reflect": 3.0,
    "synthesize": 3.0,
    "update_energy": 0.0,
    "get_basins": 1.0,
    "semantic_error": 2.0,
    "revise_model": 5.0,
}

STEP_COST = 2.0
"""Energy one agent step (one LLM call and its code) costs, besides the tools it calls."""


def max_steps_for(energy: Energy, cap: int = 8) -> int:
    """The step budget of one cycle given the energy left.

        max_steps = max(0, min(cap, floor(current / (STEP_COST + 1))))

    i.e. each step is budgeted at STEP_COST plus 1 for the cheapest tool call it makes, and a
    cycle never runs more than `cap` steps: 100 energy -> 8 (33 capped), 10 -> 3, 2.5 -> 0.
    """
    return max(0, min(cap, int(energy.current // (STEP_COST + 1))))


def new_cycle_id() -> str:
    """An id for the actions of one cycle: 32 hex digits from the cycle's random numbers (agents.cycle_inputs), so
    that a replay logs (and `observe` shows) the same ids as the cycle it replays."""
    return f"{rng().getrandbits(128):032x}"


class EnergyLedger:
    """Charges the actions of one cycle (`cycle_id`) to `store`'s energy, logging each one. Without a `cycle_id`,
    one is drawn (`new_cycle_id`) when the cycle first charges: an agent built before its cycle starts gets the
    cycle's own."""

    def __init__(self, store: MemoryStore, cycle_id: str | None = None) -> None:
        self.store = store
        self._cycle_id = None if cycle_id is None else str(cycle_id)

    @property
    def cycle_id(self) -> str:
        if self._cycle_id is None:
            self._cycle_id = new_cycle_id()
        return self._cycle_id

    @cycle_id.setter
    def cycle_id(self, value: str) -> None:
        self._cycle_id = str(value)

    def charge(self, action: str) -> str | None:
        """Pay ENERGY_COSTS[action]: None when paid, else a refusal observation for the agent (nothing is spent).

        Free actions (cost 0) are paid and logged like the others.
        """
        try:
            cost = ENERGY_COSTS[action]
        except KeyError:
            raise ValueError(f"unknown action {action!r}; known actions: {', '.join(ENERGY_COSTS)}") from None
        try:
            self.store.spend(action, cost, self.cycle_id)
        except EnergyRefused as refused:
            return (
                f"Refused: {action} costs {refused.cost:g} energy but only {refused.current:g} is left. "
                f"End the cycle to rest (energy regenerates {refused.regen_per_cycle:g} per cycle)."
            )
        return None
