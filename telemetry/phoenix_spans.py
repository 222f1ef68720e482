"""Reading spans back from Phoenix with its own client, in the layout of `frames.spans_to_frame`."""

from __future__ import annotations

import importlib.util
import re
import sys
import time
import types
from datetime import datetime
from typing import Any

import httpx
import pandas as pd

from .errors import PhoenixUnreachable

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def _client_package() -> Any:
    """`phoenix.client`, imported without the Phoenix server.

    Phoenix's client lives in the `phoenix` package of the server distribution, whose `__init__` imports the
    whole server: 17 s of CPU here, paid by every `cogscope traces`, `show` and `cost`. When nothing has imported
    `phoenix` yet, a bare package module stands in for it, so only the client and what it needs are imported
    (2 s). The server itself always runs in its own process (`phoenix serve`)."""
    if "phoenix" not in sys.modules:
        spec = importlib.util.find_spec("phoenix")
        if spec is not None and spec.submodule_search_locations:
            package = types.ModuleType("phoenix")
            package.__path__ = list(spec.submodule_search_locations)
            package.__spec__ = spec
            sys.modules["phoenix"] = package
    import phoenix.client

    return phoenix.client


def phoenix_client(url: str) -> Any:
    return _client_package().Client(base_url=url)


def span_query() -> Any:
    """A new Phoenix SpanQuery (the client's query builder)."""
    _client_package()
    from phoenix.client.types.spans import SpanQuery

    return SpanQuery()


def trace_url(phoenix_url: str, trace_id: str) -> str:
    """A link that opens the trace in Phoenix's UI (Phoenix resolves the project itself)."""
    return f"{phoenix_url.rstrip('/')}/redirects/traces/{trace_id}"


def _flatten(prefix: str, value: dict[str, Any], out: dict[str, Any]) -> None:
    for key, sub in value.items():
        name = f"{prefix}.{key}"
        if isinstance(sub, dict):
            _flatten(name, sub, out)
        else:
            out[name] = sub


def flatten_attribute_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Phoenix nests attributes it has no convention for (`attributes.cogscope` = {'agent': ...});
    spread them into dotted columns (`attributes.cogscope.agent`) as OTel has them."""
    nested = [c for c in frame.columns if c.startswith("attributes.") and frame[c].map(type).eq(dict).any()]
    if not nested:
        return frame
    frame = frame.copy()
    for column in nested:
        rows = []
        for value in frame[column]:
            flat: dict[str, Any] = {}
            if isinstance(value, dict):
                _flatten(column, value, flat)
            rows.append(flat)
        spread = pd.DataFrame(rows, index=frame.index)
        frame = frame.drop(columns=[column])
        for name in spread.columns:
            frame[name] = spread[name] if name not in frame else frame[name].fillna(spread[name])
    return frame


def trace_spans(client: Any, *, project: str, trace_id: str, timeout: int = 30) -> pd.DataFrame:
    """All spans of one trace, one row per span, in the column layout of `spans_to_frame`."""
    if not TRACE_ID.match(trace_id):
        raise ValueError(f"{trace_id!r} is not a trace id (32 hex digits)")
    try:
        frame = client.spans.get_spans_dataframe(
            query=span_query().where(f"trace_id == '{trace_id}'"),
            project_identifier=project,
            limit=100_000,
            timeout=timeout,
        )
    except httpx.HTTPStatusError as e:
        if e.response.status_code == 404:
            return pd.DataFrame()
        raise
    except httpx.TransportError as e:
        raise PhoenixUnreachable(f"Phoenix did not answer ({e}); start it with `cogscope ui` or check the URL") from e
    if frame.empty:
        return frame
    frame = frame.reset_index(drop="context.span_id" in frame.columns)
    return flatten_attribute_columns(frame)


def query_spans(
    client: Any,
    query: Any,
    project: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    limit: int = 100_000_000,
    timeout: int = 600,
) -> pd.DataFrame:
    """Phoenix's `get_spans_dataframe` for a SpanQuery (usually a few selected columns), filtered by time by
    Phoenix; an unknown project is an empty frame, an unreachable Phoenix one clear error."""
    try:
        frame = client.spans.get_spans_dataframe(
            query=query, project_identifier=project, start_time=since, end_time=until, limit=limit, timeout=timeout
        )
    except httpx.TransportError as e:
        raise PhoenixUnreachable(f"Phoenix did not answer ({e}); start it with `cogscope ui` or check the URL") from e
    except httpx.HTTPStatusError as e:
        if e.response.status_code == 404:  # no such project yet: no spans
            return pd.DataFrame()
        raise
    if frame.empty:
        return frame
    return frame.reset_index(drop=frame.index.name in frame.columns)


def wait_for_trace(
    client: Any, *, project: str, trace_id: str, min_spans: int = 1, timeout: float = 30.0
) -> pd.DataFrame:
    """Poll until Phoenix has ingested at least `min_spans` spans of the trace (ingestion is asynchronous)."""
    deadline = time.monotonic() + timeout
    frame = pd.DataFrame()
    while time.monotonic() < deadline:
        frame = trace_spans(client, project=project, trace_id=trace_id)
        if len(frame) >= min_spans:
            return frame
        time.sleep(0.25)
    return frame
