"""cogscope's cognitive agents, their tools and memory store, and the agent registry."""

from .energy import ENERGY_COSTS, STEP_COST, EnergyLedger, max_steps_for
from .errors import (
    AgentFactoryError,
    AgentsError,
    EnergyExhausted,
    EnergyRefused,
    McpError,
    MemoryStoreError,
    MentalModelError,
    UnknownAgentError,
)
from .exit_guard import install as install_exit_guard
from .heartbeat import DEFAULT_TASK, open_store
from .mcp import add_tools, mcp_tools
from .mcp import serve as serve_mcp
from .registry import ENTRY_POINT_GROUP, AgentSpec, Factory, check_options, get, names
from .sandbox import Sandbox, SandboxError, SandboxLimit, SandboxLimits
from .state import state_markdown
from .store import Memory, MemoryStore
from .tools import RecallMemoryTool, cognitive_tools

__all__ = [
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
    "UnknownAgentError",
    "add_tools",
    "check_options",
    "cognitive_tools",
    "get",
    "install_exit_guard",
    "max_steps_for",
    "mcp_tools",
    "names",
    "open_store",
    "serve_mcp",
    "state_markdown",
]
