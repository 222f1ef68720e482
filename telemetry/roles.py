"""Which role (managed agent) and which step an LLM call belongs to, written onto the call's span as it starts.

A cycle's trace nests: root AGENT `<agent>.cycle` > AGENT `<role>.run` > CHAIN `Step n` > LLM, and a managed
agent's run sits under a step of its manager. The role of a call is its nearest `<role>.run` ancestor, its step
the nearest `Step n` below that. Finding them afterwards means fetching the whole CHAIN/AGENT structure of every
cycle from Phoenix; `CallAnnotator` instead records them while the spans are live (`cogscope.role`,
`cogscope.step` on each LLM span), so the dashboard reads them with the call's own columns. The same rule,
`attributes.role_of`/`step_of`, still locates calls in traces recorded without these attributes.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .attributes import ATTR_ROLE, ATTR_STEP, KIND, LLM_KIND, NO_ROLE, REPLAYED, TOOL_KIND, role_of, step_of


def step_count(spans: Iterable[ReadableSpan]) -> int:
    """How many `Step n` CHAIN spans are among `spans` (the rule of `tables.step_counts`)."""
    return sum(step_of((s.attributes or {}).get(KIND), s.name) is not None for s in spans)


def tool_seconds(spans: Iterable[ReadableSpan]) -> float:
    """Seconds in TOOL spans among `spans` (finished ones)."""
    total = 0
    for span in spans:
        if (span.attributes or {}).get(KIND) == TOOL_KIND and span.start_time and span.end_time:
            total += span.end_time - span.start_time
    return total / 1e9


class CallAnnotator(SpanProcessor):
    """Sets `cogscope.role` and `cogscope.step` on every LLM span when it starts, from its live ancestors."""

    def __init__(self) -> None:
        self._where: dict[int, tuple[str | None, int | None]] = {}  # live span id -> (role, step)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = span.parent
        role, step = self._where.get(parent.span_id, (None, None)) if parent is not None else (None, None)
        kind = (span.attributes or {}).get(KIND)
        if (own_role := role_of(kind, span.name)) is not None:
            role, step = own_role, None
        elif (own_step := step_of(kind, span.name)) is not None:
            step = own_step
        self._where[span.context.span_id] = (role, step)
        if kind == LLM_KIND or (span.attributes or {}).get(REPLAYED):  # a model call, or a replay's stand-in
            span.set_attribute(ATTR_ROLE, role or NO_ROLE)
            if step is not None:
                span.set_attribute(ATTR_STEP, step)

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None:
            self._where.pop(span.context.span_id, None)

    def shutdown(self) -> None:
        self._where.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
