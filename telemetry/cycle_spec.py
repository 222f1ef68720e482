"""What a cycle is, before and after it runs, for cogscope's own cycles (`telemetry.cycle_runner`) and an app's
(`telemetry.recorder`): the spec its root span records, and its status. Light: no pandas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, Status, StatusCode

from .attributes import (
    ATTR_STATUS,
    ATTR_STEPS,
    ATTR_TOOL_S,
    ERROR,
    MAX_STEPS,
    OK,
    STEP_ERRORS,
    output_attributes,
    root_attributes,
)
from .roles import step_count, tool_seconds


@dataclass(frozen=True)
class CycleSpec:
    """What replay needs to rebuild the agent; recorded on the root span."""

    agent: str
    options: Mapping[str, Any] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)
    session_id: str | None = None
    replay_of: str | None = None
    mcp: tuple[str, ...] = ()  # MCP server commands whose tools were added to the agent
    user: str | None = None  # who started the cycle (the log-in name on a shared cogscope)

    def attributes(self, cycle_id: str, task: str, state: str | None = None) -> dict[str, Any]:
        """The root span's attributes (`attributes.root_attributes`); `state`: the id of the state the cycle
        starts from."""
        return dict(
            root_attributes(
                agent=self.agent,
                options=self.options,
                models=self.models,
                cycle_id=cycle_id,
                task=task,
                session_id=self.session_id,
                replay_of=self.replay_of,
                mcp=self.mcp,
                user=self.user,
                state=state,
            )
        )


def classify(steps: list[Any], raised: BaseException | None) -> str:
    """ok | step_errors | max_steps | error, from the agent's memory steps and what the run raised."""
    from smolagents import ActionStep
    from smolagents.utils import AgentMaxStepsError

    if raised is not None:
        return ERROR
    actions = [s for s in steps if isinstance(s, ActionStep)]
    if actions and isinstance(actions[-1].error, AgentMaxStepsError):
        return MAX_STEPS
    if any(s.error is not None for s in actions):
        return STEP_ERRORS
    return OK


def close_root(span: Span, *, status: str, finished: list[ReadableSpan], answer: Any, error: str | None) -> None:
    """What a cycle's root span says once the run is over: its status, steps, time in tools and final answer;
    `error` is the line a failed cycle's status carries (default: max steps)."""
    span.set_attribute(ATTR_STATUS, status)
    span.set_attribute(ATTR_TOOL_S, tool_seconds(finished))
    span.set_attribute(ATTR_STEPS, step_count(finished))
    span.set_attributes(dict(output_attributes(answer)))
    if status in (ERROR, MAX_STEPS):
        span.set_status(Status(StatusCode.ERROR, error or "Reached max steps."))
    else:
        span.set_status(Status(StatusCode.OK))
