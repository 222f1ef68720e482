"""A cycle's steps, read from its spans: what the model saw and wrote, the code, tool calls, observations, errors.

Works on both span layouts cogscope meets: Phoenix's `get_spans_dataframe()` (input
messages as a list of dicts) and `frames.spans_to_frame` of in-process spans (input
messages as flattened `llm.input_messages.N....` attributes).

Steps are numbered in the order they started, across managed agents too, so
"step k" is one thing everywhere: the step list, `cogscope show --step k` and
`cogscope replay --fork-at k`. Each step has one model call (its LLM span).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .attributes import ATTR_PREFIX_FROM, ATTR_PREFIX_LEN, REPLAYED, STEP_NAME
from .compact import rebuild_prompts

CODE_BLOCK = re.compile(r"<code>\s*(.*?)\s*(?:</code>|$)|```(?:python|py)?\s*\n(.*?)\n?```", re.DOTALL)


@dataclass
class ToolCall:
    name: str
    arguments: Any
    output: str | None
    error: str | None


@dataclass
class StepView:
    number: int  # across the whole cycle, in start order
    agent: str  # the (managed) agent whose step it is: its role
    local_number: int  # "Step N" inside that agent's run
    depth: int  # 0 for the top agent, 1 for a managed agent, ...
    span_id: str
    status: str  # ok | error
    duration_s: float
    input_messages: list[dict[str, str]] = field(default_factory=list)
    model_output: str | None = None
    model_output_message: dict[str, Any] | None = None  # as recorded (content, tool_calls), for replay
    code: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    observations: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    replayed: bool = False  # the model output was a recorded one, given back by a replay (no LLM call)


def _get(row: Mapping[str, Any], key: str) -> Any:
    value = row.get(f"attributes.{key}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def token_count(value: Any) -> int:
    """A recorded token count: a number, else 0. A trace is untrusted input: "n/a", NaN or a list must not
    stop it from being shown (the rule of `tables._tokens`, pandas' `to_numeric(errors="coerce")`)."""
    if value is None or isinstance(value, (list, tuple, dict)):
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0
    return int(number) if math.isfinite(number) else 0


def _text_of_contents(contents: Any) -> str:
    if isinstance(contents, str):
        return contents
    parts = []
    for item in contents or []:
        if isinstance(item, dict):
            text = item.get("message_content.text") or item.get("text")
            if text:
                parts.append(str(text))
    return "\n".join(parts)


def input_messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """The messages an LLM span was given, as [{role, content}], from either layout."""
    nested = _get(row, "llm.input_messages")
    out: list[dict[str, str]] = []
    if isinstance(nested, (list, tuple)) or hasattr(nested, "tolist"):
        for message in list(nested):
            message = message.get("message", message) if isinstance(message, dict) else {}
            role = message.get("message.role") or message.get("role") or ""
            content = (
                message.get("message.content")
                or message.get("content")
                or _text_of_contents(message.get("message.contents") or message.get("contents"))
            )
            out.append({"role": str(role), "content": str(content or "")})
        return out
    index = 0
    while (role := _get(row, f"llm.input_messages.{index}.message.role")) is not None:
        content = _get(row, f"llm.input_messages.{index}.message.content")
        if content is None:
            parts, j = [], 0
            while (
                text := _get(row, f"llm.input_messages.{index}.message.contents.{j}.message_content.text")
            ) is not None:
                parts.append(str(text))
                j += 1
            content = "\n".join(parts)
        out.append({"role": str(role), "content": str(content)})
        index += 1
    return out


def whole_prompts(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """span id -> the whole prompt of every model call (or replay stand-in) of one trace, compact or not."""
    calls = []
    for row in rows:
        if row["span_kind"] == "LLM" or _get(row, REPLAYED):
            prefix_len = _get(row, ATTR_PREFIX_LEN)
            calls.append(
                (row["context.span_id"], input_messages(row), _get(row, ATTR_PREFIX_FROM), int(prefix_len or 0))
            )
    return rebuild_prompts(calls)


def output_message(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model's reply as recorded: {"role", "content", "tool_calls"?}."""
    raw = _get(row, "output.value")
    if raw is None:
        return None
    try:
        message = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except ValueError:
        return {"role": "assistant", "content": str(raw)}
    if not isinstance(message, dict):
        return {"role": "assistant", "content": str(message)}
    return {k: message[k] for k in ("role", "content", "tool_calls") if message.get(k) is not None}


def _content_text(message: dict[str, Any] | None) -> str | None:
    if message is None:
        return None
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return None if content is None else str(content)


def extract_code(model_output: str | None) -> str | None:
    if not model_output:
        return None
    blocks = [a or b for a, b in CODE_BLOCK.findall(model_output)]
    blocks = [b for b in blocks if b.strip()]
    return "\n\n".join(blocks) if blocks else None


def _tool_arguments(row: Mapping[str, Any]) -> Any:
    raw = _get(row, "input.value")
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw
    if isinstance(value, dict) and set(value) <= {"args", "kwargs", "sanitize_inputs_outputs"}:
        args, kwargs = value.get("args") or [], value.get("kwargs") or {}
        if args and not kwargs and len(args) == 1 and isinstance(args[0], dict):
            return args[0]
        return kwargs if not args else {"args": args, **kwargs}
    return value


def _events(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    events = row.get("events")
    if events is None or (isinstance(events, float) and math.isnan(events)):
        return []
    return [e for e in list(events) if isinstance(e, dict)]


def _step_error(row: Mapping[str, Any]) -> str | None:
    if row.get("status_code") == "ERROR":
        message = row.get("status_message") or ""
        for event in _events(row):
            if event.get("name") == "exception":
                attrs = event.get("attributes") or {}
                kind = str(attrs.get("exception.type", "")).rsplit(".", 1)[-1]
                return f"{kind}: {attrs.get('exception.message', message)}" if kind else str(message)
        return str(message) or "error"
    for event in _events(row):
        if event.get("name") == "agent.step_recovery":
            attrs = event.get("attributes") or {}
            return str(attrs.get("message") or attrs)
    return None


def steps_from_frame(spans: pd.DataFrame) -> list[StepView]:
    """Every step of one cycle (Step CHAIN spans), in start order, with what happened in it."""
    if spans.empty:
        return []
    rows = spans.sort_values("start_time").to_dict("records")  # one conversion; iterrows converts each time
    by_id = {row["context.span_id"]: row for row in rows}
    children: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        children.setdefault(row["parent_id"], []).append(row)

    def agent_of(row: Mapping[str, Any]) -> tuple[str, int]:
        depth, name, parent = -1, "agent", row["parent_id"]
        while parent in by_id:
            ancestor = by_id[parent]
            if ancestor["span_kind"] == "AGENT" and str(ancestor["name"]).endswith(".run"):
                if depth == -1:
                    name = str(ancestor["name"])[: -len(".run")]
                depth += 1
            parent = ancestor["parent_id"]
        return name, max(depth, 0)

    prompts = whole_prompts(rows)
    views: list[StepView] = []
    for row in rows:
        match = STEP_NAME.match(str(row["name"]))
        if row["span_kind"] != "CHAIN" or not match:
            continue
        agent, depth = agent_of(row)
        view = StepView(
            number=len(views) + 1,
            agent=agent,
            local_number=int(match.group(1)),
            depth=depth,
            span_id=row["context.span_id"],
            status="error" if row["status_code"] == "ERROR" else "ok",
            duration_s=float((row["end_time"] - row["start_time"]).total_seconds()),
            observations=_get(row, "output.value"),
            error=_step_error(row),
        )
        for child in children.get(row["context.span_id"], []):
            kind = child["span_kind"]
            if kind == "LLM" or _get(child, REPLAYED):
                view.input_messages = prompts.get(child["context.span_id"]) or input_messages(child)
                view.model_output_message = output_message(child)
                view.model_output = _content_text(view.model_output_message)
                view.prompt_tokens = token_count(_get(child, "llm.token_count.prompt"))
                view.completion_tokens = token_count(_get(child, "llm.token_count.completion"))
                view.replayed = kind != "LLM"
            elif kind == "TOOL":
                failed = child["status_code"] == "ERROR"
                view.tool_calls.append(
                    ToolCall(
                        name=str(_get(child, "tool.name") or child["name"]),
                        arguments=_tool_arguments(child),
                        output=None if failed else _get(child, "output.value"),
                        error=(child.get("status_message") or "error") if failed else None,
                    )
                )
        view.code = extract_code(view.model_output)
        views.append(view)
    return views


def model_outputs(spans: pd.DataFrame) -> list[dict[str, Any]]:
    """Every model reply of the cycle in call order (LLM spans, or a replay's stand-ins)."""
    if spans.empty:
        return []
    kinds = spans["span_kind"] == "LLM"
    if f"attributes.{REPLAYED}" in spans:
        kinds = kinds | spans[f"attributes.{REPLAYED}"].fillna(False).astype(bool)
    calls = spans[kinds].sort_values("start_time")
    return [m for m in (output_message(row) for row in calls.to_dict("records")) if m is not None]


def tool_outputs(spans: pd.DataFrame) -> dict[str, list[tuple[str | None, str | None]]]:
    """Per tool name, its recorded (output, error) in call order."""
    out: dict[str, list[tuple[str | None, str | None]]] = {}
    if spans.empty:
        return out
    for row in spans[spans["span_kind"] == "TOOL"].sort_values("start_time").to_dict("records"):
        name = str(_get(row, "tool.name") or row["name"])
        failed = row["status_code"] == "ERROR"
        out.setdefault(name, []).append(
            (None if failed else _get(row, "output.value"), (row.get("status_message") or "error") if failed else None)
        )
    return out


def model_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """A recorded prompt (smolagents' roles, as OpenInference records them) as the model API was given it.

    smolagents' API models send `get_clean_message_list(..., role_conversions=tool_role_conversions)`: a
    `tool-call` message goes as `assistant`, a `tool-response` as `user`, and consecutive messages of one role are
    joined into one, their texts separated by a newline. Content is the text; images are not recorded."""
    from smolagents.models import get_clean_message_list, tool_role_conversions

    recorded = [
        {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
        for m in messages
        if m.get("role") in ROLES
    ]
    clean = get_clean_message_list(recorded, role_conversions=tool_role_conversions, flatten_messages_as_text=True)
    return [{"role": str(getattr(m["role"], "value", m["role"])), "content": str(m["content"])} for m in clean]


ROLES = ("system", "user", "assistant", "tool-call", "tool-response")  # smolagents' MessageRole values


def step_record(view: StepView) -> dict[str, Any]:
    """One step as `cogscope show --format json` prints it (README: "show --format json"); JSON-ready."""
    return {
        "step": view.number,
        "agent": view.agent,
        "agent_step": view.local_number,
        "depth": view.depth,
        "status": view.status,
        "duration_s": round(view.duration_s, 6),
        "input_messages": model_messages(view.input_messages),
        "model_output": view.model_output,
        "code": view.code,
        "tool_calls": [
            {"name": c.name, "arguments": c.arguments, "output": c.output, "error": c.error} for c in view.tool_calls
        ],
        "observations": view.observations,
        "error": view.error,
        "prompt_tokens": view.prompt_tokens,
        "completion_tokens": view.completion_tokens,
        "replayed": view.replayed,
    }
