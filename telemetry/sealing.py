"""The content seal: an HMAC, written on a cycle's root span as it is exported, over what replay takes from every
span of the cycle.

The root signature (telemetry.signing) vouches for the attributes replay rebuilds the agent from; the seal vouches
for the rest of what replay runs or shows: each span's id, parent, name, kind and status, and the attributes replay
reads (model outputs, tool names, arguments and outputs, observations, the task, the step budget). A span added to
the trace later (a second root, an extra LLM call), or a changed output, no longer matches.

The seal is made in the export pipeline, after compaction and redaction, from the very spans that go to the spool
and on to Phoenix: a cycle's spans end, and are exported, before its root span. `trace_trust` recomputes it from
the spans Phoenix hands back; the projection (`span_record`) reads the same values from a span and from a row.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .attributes import (
    ATTR_SEAL,
    ATTR_SIGNATURE,
    INPUT,
    KIND,
    LLM_KIND,
    OUTPUT,
    REPLAYED,
    SIGNED,
    TOOL_NAME,
)
from .signing import Signer

if TYPE_CHECKING:
    import pandas as pd  # the recorder imports this module: no pandas until a frame is read

MAX_STEPS_ATTR = "smolagents.max_steps"
SEALED = (OUTPUT, INPUT, TOOL_NAME, MAX_STEPS_ATTR, REPLAYED)  # the attributes replay reads, from any span
# how a cycle's trust reads (the Traces list, `cogscope show`, replay)
HERE, CHANGED, NOT_HERE = "recorded here", "changed after recording", "not recorded here"
MAX_OPEN_TRACES = 10_000  # traces whose root has not been exported yet, kept by the sealer (oldest dropped)


def _canon(value: Any) -> Any:
    """One spelling of a value whichever side reads it: None for missing or empty, numbers as numbers (Phoenix
    hands an int back as a float in a column with gaps), JSON text parsed."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy scalars and arrays from a frame
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            value = _canon(json.loads(value)) if value[:1] in '{["' else value
        except ValueError:
            pass
    if isinstance(value, (tuple, list)):
        value = list(value)
    return None if value in ({}, [], "") else value


def span_record(
    *,
    span_id: str,
    parent_id: str | None,
    name: str,
    kind: str | None,
    status_code: str,
    status_message: str | None,
    attributes: Mapping[str, Any],
) -> str:
    """What the seal covers of one span, as canonical JSON. An LLM span's prompt (compacted, and not what replay
    runs) is left out; every other span's input is in (a tool's arguments, the task)."""
    kind = str(kind or "UNKNOWN")
    fields: dict[str, Any] = {
        "span": span_id,
        "parent": parent_id or None,
        "name": str(name),
        "kind": kind,
        "status": str(status_code or "UNSET"),
        "message": status_message or None,
    }
    for key in SEALED:
        if key == INPUT and kind == LLM_KIND:
            continue
        fields[key] = _canon(attributes.get(key))
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def record_of_span(span: ReadableSpan) -> tuple[str, str]:
    """(span id, record) of a finished span, as it is exported."""
    attributes = dict(span.attributes or {})
    span_id = format(span.context.span_id, "016x") if span.context else ""
    parent = format(span.parent.span_id, "016x") if span.parent else None
    status = span.status
    return span_id, span_record(
        span_id=span_id,
        parent_id=parent,
        name=span.name,
        kind=str(attributes[KIND]) if attributes.get(KIND) else None,
        status_code=status.status_code.name,
        status_message=status.description,
        attributes=attributes,
    )


def records_of_frame(spans: pd.DataFrame) -> dict[str, str]:
    """span id -> `record_hash`, for the spans of one trace as Phoenix gives them back (`telemetry.phoenix_spans`)."""
    out: dict[str, str] = {}
    for row in spans.to_dict("records"):
        parent = row.get("parent_id")
        span_id = str(row["context.span_id"])
        record = span_record(
            span_id=span_id,
            parent_id=None if parent is None or parent != parent else str(parent),
            name=str(row.get("name")),
            kind=row.get("span_kind"),
            status_code=str(row.get("status_code") or "UNSET"),
            status_message=_canon_text(row.get("status_message")),
            attributes={key: row.get(f"attributes.{key}") for key in SEALED},
        )
        out[span_id] = record_hash(record)
    return out


def _canon_text(value: Any) -> str | None:
    return None if value is None or value != value or value == "" else str(value)


def record_hash(record: str) -> str:
    return hashlib.sha256(record.encode("utf-8", "surrogatepass")).hexdigest()


def digest(hashes: Mapping[str, str]) -> str:
    """One hash over a trace's spans: span id -> `record_hash` of its record, in span id order."""
    lines = "".join(f"{span_id}:{hashes[span_id]}\n" for span_id in sorted(hashes))
    return hashlib.sha256(lines.encode()).hexdigest()


SPAN_COLUMNS = ("span_id", "parent_id", "name", "span_kind", "status_code", "status_message")


def trust_columns() -> list[str]:
    """What `trace_trust` reads of each span, for a Phoenix query that selects only these (the Traces list).

    The `cogscope.*` attributes are selected as one: Phoenix nests attribute keys at their dots, and
    `cogscope.agent` holds a value, so selecting `cogscope.agent.options` gives nothing (it sits under the key
    `agent.options`); the whole `cogscope` mapping, flattened as `trace_spans` flattens it, reads as `show` reads."""
    return [*SPAN_COLUMNS, *(c for c in SEALED if not c.startswith("cogscope.")), "cogscope"]


def full_layout(selected: pd.DataFrame) -> pd.DataFrame:
    """A frame of `trust_columns` as a SpanQuery.select gives it -> the layout of whole spans (`trace_spans`):
    `span_id` -> `context.span_id`, `output.value` -> `attributes.output.value`, `cogscope` spread into
    `attributes.cogscope.agent.options` and the rest."""
    from .phoenix_spans import flatten_attribute_columns

    plain = {"context.trace_id", "context.span_id", *SPAN_COLUMNS}
    renamed = {"span_id": "context.span_id", "trace_id": "context.trace_id"}
    renamed.update({c: f"attributes.{c}" for c in selected.columns if c not in plain and c not in renamed})
    return flatten_attribute_columns(selected.rename(columns=renamed))


def trace_trust(signer: Signer | None, trace_id: str, spans: pd.DataFrame) -> str:
    """HERE, CHANGED or NOT_HERE for one trace (all its spans, or at least the columns `frame_columns` names):
    signed here, and its spans are the ones sealed when the cycle ended?"""
    if signer is None or spans.empty:
        return NOT_HERE
    roots = spans[spans["parent_id"].isna()]
    signed = [row for row in roots.to_dict("records") if _signed(signer, trace_id, row)]
    if not signed:
        return NOT_HERE
    seal = signed[0].get(f"attributes.{ATTR_SEAL}")
    if len(roots) != 1 or not isinstance(seal, str):
        return CHANGED
    return HERE if signer.check_seal(trace_id, digest(records_of_frame(spans)), seal) else CHANGED


def _signed(signer: Signer, trace_id: str, row: Mapping[str, Any]) -> bool:
    return signer.verify(trace_id, {key: _value(row.get(f"attributes.{key}")) for key in (*SIGNED, ATTR_SIGNATURE)})


def _value(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) else value


class SealingExporter(SpanExporter):
    """Seals each signed root span (one carrying ATTR_SIGNATURE) over the spans of its trace exported before it,
    then hands every span to `inner`. Put it after compaction and redaction: it seals what Phoenix receives."""

    def __init__(self, inner: SpanExporter, signer: Signer) -> None:
        self.inner = inner
        self.signer = signer
        self._lock = threading.Lock()
        self._open: OrderedDict[int, dict[str, str]] = OrderedDict()  # trace id -> span id -> its record's hash

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._seen(span) for span in spans])

    def _seen(self, span: ReadableSpan) -> ReadableSpan:
        if span.context is None:
            return span
        trace_id = span.context.trace_id
        span_id, record = record_of_span(span)
        with self._lock:
            records = self._open.setdefault(trace_id, {})
            records[span_id] = record_hash(record)
            if len(self._open) > MAX_OPEN_TRACES:
                self._open.popitem(last=False)
            if not (isinstance((span.attributes or {}).get(ATTR_SIGNATURE), str) and span.parent is None):
                return span
            records = self._open.pop(trace_id)
        from .redacted_output import replace_span

        seal = self.signer.seal(format(trace_id, "032x"), digest(records))
        return replace_span(span, attributes={**dict(span.attributes or {}), ATTR_SEAL: seal})

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
