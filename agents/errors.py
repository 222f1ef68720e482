"""Errors raised by cogscope's agents package.

    AgentsError                 base: every message says what is wrong and what to do
    ├── UnknownAgentError       a name that is not in the registry
    └── MemoryStoreError        the SQLite memory store cannot be opened or written
"""

from __future__ import annotations


class AgentsError(Exception):
    """Base class; str(error) is one line a user can act on."""


class UnknownAgentError(AgentsError):
    pass


class MemoryStoreError(AgentsError):
    pass
