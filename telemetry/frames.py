"""In-process spans as a pandas frame in the column layout of Phoenix's `get_spans_dataframe()`.

The tables (`telemetry.tables`) are built from this frame for a cycle that just ran and from Phoenix's own frame
for a cycle read back, so a figure never depends on where the spans came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pandas as pd
from opentelemetry.sdk.trace import ReadableSpan

KIND = "span_kind"


def encodable(value: Any) -> Any:
    """`value` with every string valid UTF-8: a lone surrogate ('\\ud800', from a task, a model or a tool)
    becomes its escape `\\ud800`. pandas' Arrow-backed strings, like OTLP and JSON, refuse lone surrogates."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(encodable(v) for v in value)
    return value


def spans_to_frame(spans: Iterable[ReadableSpan]) -> pd.DataFrame:
    """Finished OTel spans -> the column layout of Phoenix's get_spans_dataframe().

    Spans collected in-process carry whatever the agent produced, lone surrogates included: every string
    goes through `encodable` (building the frame would raise otherwise, and a cycle must always end).
    """
    rows = []
    for span in spans:
        if span.start_time is None or span.end_time is None or span.context is None:
            continue
        attributes = dict(span.attributes or {})
        row = {
            "context.span_id": format(span.context.span_id, "016x"),
            "context.trace_id": format(span.context.trace_id, "032x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
            "name": encodable(span.name),
            KIND: attributes.get("openinference.span.kind"),
            "status_code": span.status.status_code.name,
            "status_message": encodable(span.status.description or ""),
            "start_time": pd.Timestamp(span.start_time, unit="ns", tz="UTC"),
            "end_time": pd.Timestamp(span.end_time, unit="ns", tz="UTC"),
        }
        nested: dict[str, dict[int, dict[str, Any]]] = {}
        for key, value in attributes.items():
            match = _MESSAGE_KEY.match(key)
            if match:  # as Phoenix gives them: one column, a list of {"message.role": ..., "message.contents": ...}
                message = nested.setdefault(match.group(1), {}).setdefault(int(match.group(2)), {})
                _nest(message, match.group(3), encodable(value))
            else:
                row[f"attributes.{encodable(key)}"] = encodable(value)
        for prefix, messages in nested.items():
            row[f"attributes.{prefix}"] = [messages[i] for i in sorted(messages)]
        rows.append(row)
    frame = pd.DataFrame(rows)
    # text as Python objects: a frame this small spends most of its time converting Arrow strings (3x slower)
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) and frame[c].dtype != object]
    return frame.astype({c: object for c in text}) if text else frame


_MESSAGE_KEY = re.compile(r"^(llm\.(?:input|output)_messages)\.(\d+)\.(.+)$")


def _nest(message: dict[str, Any], suffix: str, value: Any) -> None:
    """`message.contents.0.message_content.text` -> message["message.contents"][0]["message_content.text"]."""
    head, _, rest = suffix.partition(".contents.")
    if rest and head == "message":
        index, _, key = rest.partition(".")
        contents = message.setdefault("message.contents", [])
        while len(contents) <= int(index):
            contents.append({})
        contents[int(index)][key] = value
    else:
        message[suffix] = value
