"""A trace's spans out of one Phoenix and into another, in Phoenix's own span shape.

Phoenix's client reads a trace's spans as plain records (`spans.get_spans`: name, context, kind, parent, times,
status, flattened attributes, events) and logs the same records into any project (`spans.log_spans`, Phoenix's
`POST /v1/projects/{project}/spans`), keeping their trace and span ids. Logging is all or nothing: Phoenix refuses
the whole batch when one span id is already stored (in any project) or one record is invalid, and queues the rest
for insertion, which lands a moment later (`wait_for_trace`).
"""

from __future__ import annotations

from typing import Any

import httpx

from .errors import PhoenixUnreachable, TelemetryError
from .phoenix_spans import TRACE_ID, phoenix_client

MAX_SPANS = 100_000  # the most spans one trace is read with
TIMEOUT_S = 120  # one request: a trace of many spans is one batch


class SpanTransferError(TelemetryError):
    """Phoenix refused spans, or answered something else than spans; the message says what to do."""


def _unreachable(url: str, error: Exception) -> PhoenixUnreachable:
    return PhoenixUnreachable(
        f"Phoenix at {url} did not answer ({error}); start it with `cogscope ui` or check the URL"
    )


def trace_span_records(phoenix_url: str, *, project: str, trace_id: str) -> list[dict[str, Any]]:
    """Every span of one trace as Phoenix's client gives them (`get_spans`), oldest first, without Phoenix's own row
    ids (they are not part of the span, and `log_spans` ignores them)."""
    if not TRACE_ID.match(trace_id):
        raise ValueError(f"{trace_id!r} is not a trace id (32 hex digits)")
    client = phoenix_client(phoenix_url)
    try:
        records = client.spans.get_spans(
            project_identifier=project, trace_ids=[trace_id], limit=MAX_SPANS, timeout=TIMEOUT_S
        )
    except httpx.TransportError as e:
        raise _unreachable(phoenix_url, e) from e
    except httpx.HTTPStatusError as e:
        if e.response.status_code == 404:
            return []
        raise
    spans = [{key: value for key, value in dict(r).items() if key != "id"} for r in records]
    return sorted(spans, key=lambda s: (str(s.get("start_time")), str(s.get("context", {}).get("span_id"))))


def trace_projects(phoenix_url: str, trace_id: str) -> list[str]:
    """The projects of this Phoenix that hold spans of the trace (a trace id names one trace in the whole Phoenix)."""
    client = phoenix_client(phoenix_url)
    try:
        names = [str(p["name"]) for p in client.projects.list()]
        return [
            name
            for name in names
            if client.spans.get_spans(project_identifier=name, trace_ids=[trace_id], limit=1, timeout=TIMEOUT_S)
        ]
    except httpx.TransportError as e:
        raise _unreachable(phoenix_url, e) from e


def log_trace_spans(phoenix_url: str, *, project: str, spans: list[dict[str, Any]]) -> int:
    """Log the spans of one trace into `project` (made when missing) with their own ids; returns how many Phoenix
    queued. SpanTransferError, with nothing stored, when Phoenix refuses any of them."""
    client = phoenix_client(phoenix_url)
    from phoenix.client.exceptions import SpanCreationError  # (after phoenix_client: the client alone is imported)

    try:
        result = client.spans.log_spans(project_identifier=project, spans=spans, timeout=TIMEOUT_S)
    except httpx.TransportError as e:
        raise _unreachable(phoenix_url, e) from e
    except httpx.HTTPStatusError as e:
        raise SpanTransferError(
            f"Phoenix at {phoenix_url} refused the spans (HTTP {e.response.status_code}); nothing was stored"
        ) from None
    except SpanCreationError as e:  # duplicates or invalid spans: none stored
        if e.total_duplicates:
            raise SpanTransferError(
                f"Phoenix at {phoenix_url} holds {e.total_duplicates} of these spans already (span ids are unique in "
                "a Phoenix); nothing was stored"
            ) from None
        reasons = "; ".join(str(s.get("error", "")) for s in e.invalid_spans[:2])
        raise SpanTransferError(
            f"Phoenix at {phoenix_url} refused invalid spans ({reasons}); nothing was stored"
        ) from None
    return int(result.get("total_queued", 0))
