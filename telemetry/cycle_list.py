"""Cycles read back from Phoenix: the spans behind the cycles and calls tables (`telemetry.tables`), and the
Traces list.

Only the columns needed are fetched (Phoenix's SpanQuery.select), never whole spans: root spans for what a
cycle is, LLM spans for its calls, CHAIN spans for its steps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .attributes import (
    ATTR_ROLE,
    ATTR_STEP,
    ATTR_STEPS,
    ATTR_TOOL_S,
    COMPLETION_TOKENS,
    FAILED,
    INPUT,
    MODEL_NAME,
    PROMPT_TOKENS,
    ROOT_ATTRIBUTES,
)
from .phoenix_spans import TRACE_ID, query_spans, span_query
from .prices import Prices
from .sealing import CHANGED, HERE, NOT_HERE, full_layout, trace_trust, trust_columns
from .signing import Signer
from .tables import CYCLE_COLUMNS, calls_table, column, cycles_table, isin, roots_table, step_counts

BY_TRACE_ID = 500  # up to this many cycles, their calls are looked up by trace id rather than by time
LIST_COLUMNS = [*CYCLE_COLUMNS, "recorded_here", "changed"]  # changed: signed here, its spans changed since


def _ids(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={"context.trace_id": "trace_id", "context.span_id": "span_id"})


def fetch_roots(client: Any, project: str, since: datetime | None, until: datetime | None) -> pd.DataFrame:
    """The root spans started in [since, until): the columns `tables.roots_table` reads."""
    wanted = ["trace_id", "name", "start_time", "end_time", "status_code", INPUT, *ROOT_ATTRIBUTES, ATTR_TOOL_S,
              ATTR_STEPS]  # fmt: skip
    roots = query_spans(client, span_query().where("parent_id is None").select(*wanted), project, since, until)
    if roots.empty:
        return _ids(roots)
    # one cycle per trace: a span sent later as a second root (anyone can reach the collector) is not a cycle
    roots = roots.sort_values("start_time", kind="stable").drop_duplicates("context.trace_id", keep="first")
    return _ids(roots)


def _span(cycles: pd.DataFrame) -> tuple[datetime | None, datetime | None]:
    """The `since`, `until` of a query for `cycles`' spans (callers that query by trace id set both None)."""
    first = cycles["start_time"].min().to_pydatetime()
    last = cycles["end_time"].max().to_pydatetime() + timedelta(microseconds=1)  # Phoenix's end is exclusive
    return first, last


def fetch_calls(client: Any, project: str, cycles: pd.DataFrame) -> pd.DataFrame:
    """The calls table of `cycles` (roots_table rows): their LLM spans, located by role and step.

    A few cycles' calls are looked up by trace id (0.06 s at 1M spans), many by the time range they span (0.36 s).
    Traces recorded before calls carried their role cost one more query, for their span tree."""
    if cycles.empty:
        return calls_table(pd.DataFrame())
    first, last = _span(cycles)
    where = "span_kind == 'LLM'"
    ids = [t for t in cycles["trace_id"].tolist() if TRACE_ID.match(str(t))]
    if len(ids) == len(cycles) <= BY_TRACE_ID:
        where, first, last = f"{where} and trace_id in {json.dumps(ids)}", None, None
    llm = query_spans(
        client,
        span_query()
        .where(where)
        .select(
            "trace_id",
            "span_id",
            "parent_id",
            "start_time",
            "end_time",
            MODEL_NAME,
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
            ATTR_ROLE,
            ATTR_STEP,
        ),  # fmt: skip
        project,
        first,
        last,
    )
    llm = _ids(llm)
    if not llm.empty:
        llm = llm[isin(llm["trace_id"], cycles["trace_id"])]
    structure = None
    if not llm.empty and column(llm, ATTR_ROLE).isna().any():
        structure = _ids(
            query_spans(
                client,
                span_query()
                .where("(span_kind == 'CHAIN' or span_kind == 'AGENT')" + where.removeprefix("span_kind == 'LLM'"))
                .select("trace_id", "span_id", "parent_id", "name", "span_kind"),
                project,
                first,
                last,
            )
        )
    return calls_table(llm, structure)


def fetch_step_counts(client: Any, project: str, cycles: pd.DataFrame) -> pd.Series:
    """trace_id -> number of steps, for `cycles` (roots_table rows): from the root's own count where it has
    one, else from the cycle's CHAIN spans (traces recorded before roots carried it, other apps' traces)."""
    counted = cycles.set_index("trace_id")["steps"].dropna().astype("int64")
    cycles = cycles[cycles["steps"].isna()]
    if cycles.empty:
        return counted
    first, last = _span(cycles)
    where = "span_kind == 'CHAIN'"
    ids = [t for t in cycles["trace_id"].tolist() if TRACE_ID.match(str(t))]
    if len(ids) == len(cycles) <= BY_TRACE_ID:
        where, first, last = f"{where} and trace_id in {json.dumps(ids)}", None, None
    chains = _ids(query_spans(client, span_query().where(where).select("trace_id", "name"), project, first, last))
    if chains.empty:
        return counted
    return pd.concat([counted, step_counts(chains[isin(chains["trace_id"], cycles["trace_id"])])])


def fetch_tool_time(client: Any, project: str, cycles: pd.DataFrame) -> pd.Series:
    """trace_id -> seconds in TOOL spans, for cycles recorded before roots carried their time in tools."""
    untimed = cycles[cycles["tool_s"].isna()]
    if untimed.empty:
        return pd.Series(dtype=float)
    first, last = _span(untimed)
    tools = _ids(
        query_spans(
            client,
            span_query().where("span_kind == 'TOOL'").select("trace_id", "start_time", "end_time"),
            project,
            first,
            last,
        )
    )
    if tools.empty:
        return pd.Series(dtype=float)
    tools = tools[isin(tools["trace_id"], untimed["trace_id"])]
    seconds = pd.to_datetime(tools["end_time"], utc=True) - pd.to_datetime(tools["start_time"], utc=True)
    return seconds.dt.total_seconds().groupby(tools["trace_id"].to_numpy()).sum()


# -- the Traces list ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CycleFilter:
    failed_only: bool = False
    status: str | None = None
    agent: str | None = None
    text: str | None = None  # in the task
    source: str | None = None  # "cogscope": run in cogscope (or with its recorder); "other": other apps'; else all
    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None  # only the cycles this user started (on a shared cogscope); None: everyone's


def fetch_trust(client: Any, project: str, cycles: pd.DataFrame, signer: Signer | None) -> dict[str, str]:
    """trace_id -> HERE, CHANGED or NOT_HERE for `cycles` (roots_table rows): `sealing.trace_trust` over the
    spans of each cycle cogscope recorded, the very check `cogscope show` and replay make."""
    ours = cycles[cycles["cogscope"].astype(bool)] if signer is not None else cycles.iloc[:0]
    trust = dict.fromkeys(cycles["trace_id"].tolist(), NOT_HERE)
    if ours.empty:
        return trust
    first, last = _span(ours)
    query = span_query()
    ids = [t for t in ours["trace_id"].tolist() if TRACE_ID.match(str(t))]
    if len(ids) == len(ours) <= BY_TRACE_ID:
        query, first, last = query.where(f"trace_id in {json.dumps(ids)}"), None, None
    spans = query_spans(client, query.select("trace_id", *trust_columns()), project, first, last)
    if spans.empty:
        return trust
    spans = full_layout(spans)
    for trace_id, group in spans.groupby("context.trace_id", sort=False):
        if trace_id in trust:
            trust[str(trace_id)] = trace_trust(signer, str(trace_id), group)
    return trust


def filter_cycles(cycles: pd.DataFrame, f: CycleFilter) -> pd.DataFrame:
    if f.failed_only:
        cycles = cycles[cycles["status"].isin(FAILED)]
    if f.status:
        cycles = cycles[cycles["status"] == f.status]
    if f.agent:
        cycles = cycles[cycles["agent"] == f.agent]
    if f.text:
        cycles = cycles[cycles["task"].str.contains(f.text, case=False, regex=False)]
    return by_user(by_source(cycles, f.source), f.user)


def by_user(cycles: pd.DataFrame, user: str | None) -> pd.DataFrame:
    """The cycles `user` started (their root's `user.id`), or all when `user` is None."""
    if user is None:
        return cycles
    return cycles[cycles["user"] == user]


def by_source(cycles: pd.DataFrame, source: str | None) -> pd.DataFrame:
    """The cycles run in cogscope (`cogscope`), those other apps recorded (`other`), or all (anything else)."""
    if source == "cogscope":
        return cycles[cycles["cogscope"].astype(bool)]
    if source == "other":
        return cycles[~cycles["cogscope"].astype(bool)]
    return cycles


def list_cycles(
    client: Any,
    *,
    project: str,
    prices: Prices,
    filter: CycleFilter | None = None,
    limit: int | None = None,
    signer: Signer | None = None,
) -> pd.DataFrame:
    """Recent cycles, newest first: rows of the cycles table (LIST_COLUMNS).

    The roots are filtered and cut to `limit` first; only the kept cycles' calls and steps are fetched.
    `recorded_here` is True for a cycle this installation signed and sealed (`signer`) whose spans still match
    the seal; `changed` for one it signed whose spans were added to or changed since; a forged or foreign trace
    is neither."""
    f = filter or CycleFilter()
    roots = fetch_roots(client, project, f.since, f.until)
    if roots.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LIST_COLUMNS})
    described = filter_cycles(roots_table(roots), f).sort_values("start_time", ascending=False)
    if limit is not None:
        described = described.head(limit)
    if described.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LIST_COLUMNS})
    calls = fetch_calls(client, project, described)
    steps = fetch_step_counts(client, project, described)
    tool_s = fetch_tool_time(client, project, described)
    trust = fetch_trust(client, project, described, signer)
    table = cycles_table(described, calls, prices, steps=steps, tool_s=tool_s)
    table["recorded_here"] = table["trace_id"].map(lambda t: trust.get(t) == HERE).astype(bool)
    table["changed"] = table["trace_id"].map(lambda t: trust.get(t) == CHANGED).astype(bool)
    return table.sort_values("start_time", ascending=False).reset_index(drop=True)[LIST_COLUMNS]


def cycle_records(table: pd.DataFrame, columns: Sequence[str] = LIST_COLUMNS) -> list[dict[str, Any]]:
    """Rows of the cycles table as JSON-ready records: times as ISO text, unknown (NaN, None) as None."""
    out = []
    for record in table[[c for c in columns if c in table]].to_dict("records"):
        out.append({k: _plain(v) for k, v in record.items()})
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value
