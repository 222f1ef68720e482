"""cogscope's cognitive agents, their tools and memory store, and the agent registry.

The modules, by what they hold:

- agents: `heartbeat` (one OODA cycle), `consciousness` (a manager over perception, reasoning, metacognition),
  `revision` (revises a mental model after a failed prediction); `registry` finds an agent's factory by name
- memory: `store` (the SQLite memory store), `state_log` (its history: the change log, state points, restore,
  rollback, prune), `state` (what it holds, for a person), `mental_models` (basins, predictors and their
  revision), `energy` (what actions cost, the ledger)
- tools: `tools` (the cognitive tools over the store), `mcp` (MCP servers' tools for an agent, and ours as a server)
- the sandbox: `sandbox` (the app's side: one worker per CodeAgent), `sandbox_worker` (the worker process, run by
  file path), `walls` (its kernel walls: Landlock, seccomp), `sandbox_audit` (its interpreter walls: the audit
  hook, attribute and format guards); `exit_guard` keeps agent code from ending the app's process
- `cycle_inputs`: what a cycle reads besides the store (the clock, random numbers), recorded and given back on replay
- `speedups` (two per-cycle costs of smolagents taken off), `errors` (every error this package raises)
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and readers see; at run time each name loads on first use (below)
    from .cycle_inputs import begin as begin_cycle_inputs
    from .energy import ENERGY_COSTS, STEP_COST, EnergyLedger, max_steps_for
    from .errors import (
        AgentFactoryError,
        AgentsError,
        EnergyExhausted,
        EnergyRefused,
        McpError,
        MemoryStoreError,
        MentalModelError,
        StateCorrupt,
        StateError,
        StateNotKept,
        UnknownAgentError,
    )
    from .exit_guard import exit_now
    from .exit_guard import install as install_exit_guard
    from .heartbeat import DEFAULT_TASK, close_store, open_store
    from .mcp import add_tools, mcp_tools
    from .mcp import serve as serve_mcp
    from .registry import BUILTIN, ENTRY_POINT_GROUP, AgentSpec, Factory, check_options, get, names
    from .sandbox import Sandbox, SandboxError, SandboxLimit, SandboxLimits
    from .state import state_markdown
    from .state_log import StateChange, StatePoint
    from .store import Memory, MemoryStore
    from .tools import RecallMemoryTool, cognitive_tools

_EXPORTS: dict[str, tuple[str, str]] = {  # name -> (the submodule that defines it, its name there)
    "begin_cycle_inputs": ("cycle_inputs", "begin"),
    "ENERGY_COSTS": ("energy", "ENERGY_COSTS"),
    "STEP_COST": ("energy", "STEP_COST"),
    "EnergyLedger": ("energy", "EnergyLedger"),
    "max_steps_for": ("energy", "max_steps_for"),
    "AgentFactoryError": ("errors", "AgentFactoryError"),
    "AgentsError": ("errors", "AgentsError"),
    "EnergyExhausted": ("errors", "EnergyExhausted"),
    "EnergyRefused": ("errors", "EnergyRefused"),
    "McpError": ("errors", "McpError"),
    "MemoryStoreError": ("errors", "MemoryStoreError"),
    "MentalModelError": ("errors", "MentalModelError"),
    "StateCorrupt": ("errors", "StateCorrupt"),
    "StateError": ("errors", "StateError"),
    "StateNotKept": ("errors", "StateNotKept"),
    "UnknownAgentError": ("errors", "UnknownAgentError"),
    "exit_now": ("exit_guard", "exit_now"),
    "install_exit_guard": ("exit_guard", "install"),
    "DEFAULT_TASK": ("heartbeat", "DEFAULT_TASK"),
    "open_store": ("heartbeat", "open_store"),
    "close_store": ("heartbeat", "close_store"),
    "add_tools": ("mcp", "add_tools"),
    "mcp_tools": ("mcp", "mcp_tools"),
    "serve_mcp": ("mcp", "serve"),
    "BUILTIN": ("registry", "BUILTIN"),
    "ENTRY_POINT_GROUP": ("registry", "ENTRY_POINT_GROUP"),
    "AgentSpec": ("registry", "AgentSpec"),
    "Factory": ("registry", "Factory"),
    "check_options": ("registry", "check_options"),
    "get": ("registry", "get"),
    "names": ("registry", "names"),
    "Sandbox": ("sandbox", "Sandbox"),
    "SandboxError": ("sandbox", "SandboxError"),
    "SandboxLimit": ("sandbox", "SandboxLimit"),
    "SandboxLimits": ("sandbox", "SandboxLimits"),
    "state_markdown": ("state", "state_markdown"),
    "StateChange": ("state_log", "StateChange"),
    "StatePoint": ("state_log", "StatePoint"),
    "Memory": ("store", "Memory"),
    "MemoryStore": ("store", "MemoryStore"),
    "RecallMemoryTool": ("tools", "RecallMemoryTool"),
    "cognitive_tools": ("tools", "cognitive_tools"),
}


def __getattr__(name: str) -> Any:
    """Load an export's submodule on first use (PEP 562): `cogscope traces` and `cost` never build an agent, and
    smolagents is start-up time of every command that imports it."""
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{where[0]}", __name__), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "BUILTIN",
    "DEFAULT_TASK",
    "ENERGY_COSTS",
    "ENTRY_POINT_GROUP",
    "STEP_COST",
    "AgentFactoryError",
    "AgentSpec",
    "AgentsError",
    "EnergyExhausted",
    "EnergyLedger",
    "EnergyRefused",
    "Factory",
    "McpError",
    "Memory",
    "MemoryStore",
    "MemoryStoreError",
    "MentalModelError",
    "RecallMemoryTool",
    "Sandbox",
    "SandboxError",
    "SandboxLimit",
    "SandboxLimits",
    "StateChange",
    "StateCorrupt",
    "StateError",
    "StateNotKept",
    "StatePoint",
    "UnknownAgentError",
    "add_tools",
    "begin_cycle_inputs",
    "check_options",
    "close_store",
    "cognitive_tools",
    "exit_now",
    "get",
    "install_exit_guard",
    "max_steps_for",
    "mcp_tools",
    "names",
    "open_store",
    "serve_mcp",
    "state_markdown",
]
