"""Compact traces: an LLM span records only what is new in its prompt; the whole prompt can always be rebuilt.

smolagents gives the model the whole memory at every step (system prompt, task, then every earlier step), and
OpenInference records all of it on every LLM span, twice (`llm.input_messages.*` and the JSON of `input.value`).
A cycle's size then grows with the square of its steps. cogscope's instrumentor (telemetry.instrumentor) writes
each model call's span compact as the call starts (`Compactor.at_source`); `Compactor.compact` rewrites, before
export, the spans written otherwise (a replay's stand-ins, OpenInference's own wrappers). Either way:

- an LLM span keeps only the messages after the longest run of first messages it shares with the previous call of
  the same agent (`cogscope.role`) in the same trace, renumbered from 0, and names that call and the run's length
  (`cogscope.llm.prefix_from`, `cogscope.llm.prefix_len`). The first call of each agent keeps its whole prompt, so
  the system prompt is stored once per agent and cycle; a second run of a managed agent shares its system prompt
  with the first. Phoenix's span view shows each call's new messages and its output.
- `llm.tools.*` is dropped when the previous call was given the same tools (`cogscope.llm.tools_from` names it).
- `input.value` keeps the call's other arguments, not the messages again; `output.value` loses LiteLLM's `raw`
  response (its text and tool calls are kept, which is what replay gives back).
- an agent run that streamed its steps (how cogscope runs a cycle) has, as OpenInference's `output.value`, every
  step it yielded, each with its whole prompt; it keeps its final answer.

`rebuild_prompts` reverses the first rule for a trace read back, for the step-through, `show` and replay; spans
without the attributes (recorded before, or by other apps) are whole already. `full_prompts=True` (the
COGSCOPE_FULL_PROMPTS setting) leaves LLM spans as OpenInference wrote them, for Phoenix's playground.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .attributes import (
    AGENT_KIND,
    ATTR_PREFIX_FROM,
    ATTR_PREFIX_LEN,
    ATTR_ROLE,
    ATTR_TOOLS_FROM,
    INPUT,
    INPUT_MESSAGES,
    KIND,
    LLM_KIND,
    LLM_TOOLS,
    OUTPUT,
    REPLAYED,
)
from .redacted_output import replace_span

_MESSAGE_KEY = re.compile(rf"^{re.escape(INPUT_MESSAGES)}\.(\d+)\.(.+)$")
_TOOL_KEY = re.compile(rf"^{re.escape(LLM_TOOLS)}\.\d+\.")
_STEP_REPRS = ("ActionStep(", "PlanningStep(", "ChatMessageStreamDelta(")
_FINAL = "FinalAnswerStep("
MAX_OPEN_CALLS = 4096  # (trace, agent) pairs remembered; the oldest are forgotten (their trace ended long ago)

Message = tuple[tuple[str, Any], ...]  # one input message: its (key suffix, value) pairs, in key order


def span_id_hex(span_id: int) -> str:
    return format(span_id, "016x")


def split_messages(attributes: Mapping[str, Any]) -> tuple[list[Message], dict[str, Any]]:
    """(the input messages in order, every other attribute) of one span's flattened attributes."""
    by_index: dict[int, list[tuple[str, Any]]] = {}
    rest: dict[str, Any] = {}
    for key, value in attributes.items():
        match = _MESSAGE_KEY.match(key)
        if match:
            by_index.setdefault(int(match.group(1)), []).append((match.group(2), value))
        else:
            rest[key] = value
    return [tuple(sorted(by_index[i])) for i in sorted(by_index)], rest


def _common_prefix(a: Sequence[Message], b: Sequence[Message]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _json_without(value: Any, key: str) -> Any:
    """A JSON object's text without `key` (the messages of `input.value`, LiteLLM's `raw` in `output.value`);
    anything else unchanged."""
    if not isinstance(value, str) or f'"{key}"' not in value:
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    if not isinstance(parsed, dict) or key not in parsed:
        return value
    parsed.pop(key)
    return json.dumps(parsed, ensure_ascii=False)


def _final_answer_only(output_value: Any) -> Any:
    """A streamed run's output (the repr of every step it yielded) cut to its final answer, or None."""
    if not isinstance(output_value, str) or not any(r in output_value for r in _STEP_REPRS):
        return output_value
    at = output_value.rfind(_FINAL)
    return output_value[at:] if at >= 0 else None


class Compactor:
    """Rewrites finished spans, in the order they end, as the module docstring says. Thread-safe."""

    def __init__(self, *, full_prompts: bool = False) -> None:
        self.full_prompts = full_prompts
        # (trace id, agent) -> that agent's last call: (span id, whole prompt, tools, id of the call storing the tools)
        self._last: OrderedDict[tuple[int, str], tuple[str, list[Message], tuple[tuple[str, Any], ...], str]] = (
            OrderedDict()
        )
        # the same for calls compacted as they start (`at_source`), in the order they start
        self._live: OrderedDict[tuple[int, str], tuple[str, list[Message], tuple[tuple[str, Any], ...], str]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def at_source(
        self,
        trace_id: int,
        span_id: int,
        role: str,
        messages: list[Message],
        tools: tuple[tuple[str, Any], ...],
    ) -> dict[str, Any]:
        """The prompt attributes of an LLM call compacted as it starts (telemetry.instrumentor), by the rules above.

        `messages` and `tools` are the whole prompt and the `llm.tools.*` pairs as OpenInference would record them.
        """
        return self._prompt_attributes(self._live, (trace_id, role), span_id_hex(span_id), messages, tools)

    def _prompt_attributes(
        self,
        calls: OrderedDict[tuple[int, str], tuple[str, list[Message], tuple[tuple[str, Any], ...], str]],
        key: tuple[int, str],
        own_id: str,
        messages: list[Message],
        tools: tuple[tuple[str, Any], ...],
    ) -> dict[str, Any]:
        """A call's prompt, compact: its new messages renumbered from 0, the reference to the same agent's previous
        call in `calls` and the tools, or the call that stores them. `prefix_len` is always set (0 for a first call):
        it marks the span as compact, so `compact` leaves an exported span's prompt alone."""
        with self._lock:
            previous = calls.pop(key, None)
            same_tools = previous is not None and bool(tools) and tools == previous[2]
            tools_owner = previous[3] if previous is not None and same_tools else own_id  # the call that stores them
            calls[key] = (own_id, messages, tools, tools_owner)
            while len(calls) > MAX_OPEN_CALLS:
                calls.popitem(last=False)
        attributes: dict[str, Any] = {}
        keep = _common_prefix(previous[1], messages) if previous is not None else 0
        if previous is not None and keep:
            attributes[ATTR_PREFIX_FROM] = previous[0]
        attributes[ATTR_PREFIX_LEN] = keep
        if same_tools:
            attributes[ATTR_TOOLS_FROM] = tools_owner
        else:
            attributes.update(tools)
        for index, message in enumerate(messages[keep:]):
            for suffix, value in message:
                attributes[f"{INPUT_MESSAGES}.{index}.{suffix}"] = value
        return attributes

    def compact(self, span: ReadableSpan) -> ReadableSpan:
        attributes = dict(span.attributes or {})
        kind = attributes.get(KIND)
        if span.parent is None and span.context is not None:  # the trace's root ended: forget its calls
            with self._lock:
                for calls in (self._last, self._live):
                    for key in [k for k in calls if k[0] == span.context.trace_id]:
                        del calls[key]
        if kind == AGENT_KIND and OUTPUT in attributes:
            output = _final_answer_only(attributes[OUTPUT])
            if output is not attributes[OUTPUT]:
                if output is None:
                    del attributes[OUTPUT]
                else:
                    attributes[OUTPUT] = output
                return replace_span(span, attributes=attributes)
            return span
        if not (kind == LLM_KIND or attributes.get(REPLAYED)) or span.context is None:  # a call or its stand-in
            return span
        if ATTR_PREFIX_LEN in attributes:  # compact already (as it started: `at_source`)
            return span
        if OUTPUT in attributes:
            attributes[OUTPUT] = _json_without(attributes[OUTPUT], "raw")
        if self.full_prompts:
            return replace_span(span, attributes=attributes)
        messages, rest = split_messages(attributes)
        tools = tuple(sorted((k, v) for k, v in rest.items() if _TOOL_KEY.match(k)))
        for tool_key, _ in tools:
            del rest[tool_key]  # back below unless an earlier call of the agent stores the same tools
        if INPUT in rest:
            rest[INPUT] = _json_without(rest[INPUT], "messages")  # the span holds them already
        key = (span.context.trace_id, str(attributes.get(ATTR_ROLE, "")))
        rest.update(self._prompt_attributes(self._last, key, span_id_hex(span.context.span_id), messages, tools))
        return replace_span(span, attributes=rest)


class CompactingExporter(SpanExporter):
    """Wraps an exporter; hands it compacted spans (module docstring). Spans must arrive in the order they ended."""

    def __init__(self, inner: SpanExporter, compactor: Compactor | None = None) -> None:
        self.inner = inner
        self.compactor = compactor or Compactor()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self.compactor.compact(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def rebuild_prompts(
    calls: Sequence[tuple[str, list[dict[str, str]], str | None, int]],
) -> dict[str, list[dict[str, str]]]:
    """Whole prompts of a trace's LLM calls from their compact records.

    `calls`: (span id, the messages the span holds, prefix_from span id or None, prefix_len), in any order.
    Returns span id -> its whole prompt. A reference to a span that is not there (a damaged or partly stored
    trace) leaves that call with the messages it holds, after `prefix_len` placeholders that say so.
    """
    own = {
        span_id: (list(messages), prefix_from, int(prefix_len or 0))
        for span_id, messages, prefix_from, prefix_len in calls
    }
    whole: dict[str, list[dict[str, str]]] = {}
    for start in own:
        chain: list[str] = []  # from `start` back along its references, to the first call already whole
        current = start
        while current not in whole:
            chain.append(current)
            _, prefix_from, prefix_len = own[current]
            if not (prefix_from and prefix_len) or prefix_from not in own or prefix_from in chain:
                break
            current = prefix_from
        for span_id in reversed(chain):  # earliest first: each one's reference is whole by now, or missing
            messages, prefix_from, prefix_len = own[span_id]
            if prefix_from and prefix_len:
                head = list(whole.get(prefix_from, []))[:prefix_len]
                if len(head) < prefix_len:
                    missing = {"role": "missing", "content": f"(a message of call {prefix_from}, not in this trace)"}
                    head += [missing] * (prefix_len - len(head))
                messages = head + messages
            whole[span_id] = messages
    return whole
