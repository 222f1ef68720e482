"""Errors raised by cogscope's agents package.

AgentsError                 base: every message says what is wrong and what to do
├── UnknownAgentError       a name that is not in the registry
├── AgentFactoryError       a factory that cannot be loaded, raises, or returns no agent
├── McpError                an MCP server that fails to start or to list its tools
├── MemoryStoreError        the SQLite memory store cannot be opened or written
│   └── StateError          a state of the store (its history) cannot be kept, found or restored
│       ├── StateNotKept    a state that was pruned, is unknown, or is another store's
│       └── StateCorrupt    a state whose change log fails its checksum
├── EnergyRefused           an action costs more energy than is left
├── EnergyExhausted         not enough energy for a single step: the cycle rests
└── MentalModelError        an unknown mental model or basin, or a revision it cannot take
"""

from __future__ import annotations


class AgentsError(Exception):
    """Base class; str(error) is one line a user can act on."""


class UnknownAgentError(AgentsError):
    pass


class AgentFactoryError(AgentsError):
    pass


class McpError(AgentsError):
    pass


class MemoryStoreError(AgentsError):
    pass


class StateError(MemoryStoreError):
    pass


class StateNotKept(StateError):
    """The message says whether the state was pruned, is unknown or is another store's, and how to replay anyway."""


class StateCorrupt(StateError):
    pass


class EnergyRefused(AgentsError):
    """`action` costs `cost` but only `current` energy is left; nothing was spent."""

    def __init__(self, action: str, cost: float, current: float, regen_per_cycle: float) -> None:
        self.action = action
        self.cost = cost
        self.current = current
        self.regen_per_cycle = regen_per_cycle
        super().__init__(
            f"{action} costs {cost:g} energy but only {current:g} is left; "
            f"end the cycle to rest (energy regenerates {regen_per_cycle:g} per cycle)"
        )


class EnergyExhausted(AgentsError):
    pass


class MentalModelError(AgentsError):
    pass
