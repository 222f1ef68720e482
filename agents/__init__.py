"""cogscope's cognitive agents, their tools and memory store, and the agent registry."""

from .errors import AgentsError, MemoryStoreError, UnknownAgentError
from .memory import Memory, MemoryStore
from .registry import AgentSpec, Factory, get, names
from .tools import RecallMemoryTool

__all__ = [
    "AgentSpec",
    "AgentsError",
    "Factory",
    "Memory",
    "MemoryStore",
    "MemoryStoreError",
    "RecallMemoryTool",
    "UnknownAgentError",
    "get",
    "names",
]
