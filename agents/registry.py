"""The agent registry: names -> factories.

A factory is `factory(models: dict[str, Model], **options) -> MultiStepAgent`; a
plain model arrives under the key `default`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from smolagents import MultiStepAgent

from . import heartbeat
from .errors import UnknownAgentError

Factory = Callable[..., MultiStepAgent]


@dataclass(frozen=True)
class AgentSpec:
    name: str
    factory: Factory
    summary: str
    roles: tuple[str, ...] = ("default",)


BUILTIN: dict[str, AgentSpec] = {
    "heartbeat": AgentSpec(
        "heartbeat", heartbeat.build, "OODA heartbeat: a CodeAgent that recalls from the SQLite memory store"
    ),
}


def names() -> list[str]:
    return sorted(BUILTIN)


def get(name: str) -> AgentSpec:
    """The registered agent `name`, or an UnknownAgentError that lists what exists."""
    spec = BUILTIN.get(name.strip())
    if spec is None:
        close = difflib.get_close_matches(name, BUILTIN, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownAgentError(f"unknown agent {name!r}; known agents: {', '.join(names())}.{hint}")
    return spec
