"""Cycles read back from Phoenix: one row per cycle (trace), with its status, steps, LLM calls, tokens and cost.

Only the columns needed are fetched (Phoenix's SpanQuery.select), never whole spans:
root spans for what a cycle is, LLM spans for calls/tokens/cost, CHAIN spans for steps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from .costs import llm_costs
from .cycle import ERROR, FAILED, OK, ROOT_ATTRIBUTES
from .phoenix_spans import query_spans
from .signing import ATTR_SIGNATURE, SIGNED, Signer

COLUMNS = [
    "trace_id", "start_time", "agent", "models", "status", "steps", "llm_calls", "prompt_tokens",
    "completion_tokens", "tokens", "duration_s", "cost_usd", "task", "session_id", "replay_of", "cogscope",
    "recorded_here",
]  # fmt: skip
TRUST_ATTRIBUTES = tuple(a for a in (*SIGNED, ATTR_SIGNATURE) if a not in ROOT_ATTRIBUTES)


@dataclass(frozen=True)
class CycleFilter:
    failed_only: bool = False
    status: str | None = None
    agent: str | None = None
    text: str | None = None  # in the task
    since: datetime | None = None
    until: datetime | None = None


def _models_text(raw: Any) -> str:
    try:
        models = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return str(raw)
    return ", ".join(m if role == "default" else f"{role}={m}" for role, m in models.items())


def _recorded_here(roots: pd.DataFrame, signer: Signer | None) -> list[bool]:
    if signer is None:
        return [False] * len(roots)
    columns = [*SIGNED, ATTR_SIGNATURE]
    return [
        signer.verify(str(trace_id), dict(zip(columns, values, strict=True)))
        for trace_id, *values in roots[["trace_id", *columns]].itertuples(index=False)
    ]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})


def list_cycles(
    client: Any,
    *,
    project: str,
    filter: CycleFilter | None = None,
    limit: int | None = None,
    signer: Signer | None = None,
) -> pd.DataFrame:
    """Recent cycles, newest first, one row each (columns: COLUMNS).

    `recorded_here` is True for a cycle whose root span carries this installation's signature
    (`signer`); a forged or foreign trace is False.
    """
    from phoenix.client.types.spans import SpanQuery

    f = filter or CycleFilter()
    roots = query_spans(
        client,
        SpanQuery()
        .where("parent_id is None")
        .select(
            "trace_id",
            "start_time",
            "end_time",
            "status_code",
            "input.value",
            *ROOT_ATTRIBUTES,
            *TRUST_ATTRIBUTES,
        ),  # fmt: skip
        project,
        f.since,
        f.until,
    )
    if roots.empty:
        return _empty()
    roots = roots.rename(columns={"context.trace_id": "trace_id"})
    for column in (
        "cogscope.agent",
        "cogscope.model",
        "cogscope.cycle.status",
        "cogscope.replay_of",
        "session.id",
        "input.value",
        *TRUST_ATTRIBUTES,
    ):
        if column not in roots:
            roots[column] = None
    cycles = pd.DataFrame(
        {
            "trace_id": roots["trace_id"],
            "start_time": pd.to_datetime(roots["start_time"], utc=True),
            "agent": roots["cogscope.agent"],
            "models": roots["cogscope.model"].map(_models_text),
            "status": roots["cogscope.cycle.status"],
            "duration_s": (
                pd.to_datetime(roots["end_time"], utc=True) - pd.to_datetime(roots["start_time"], utc=True)
            ).dt.total_seconds(),
            "task": roots["input.value"].fillna("").astype(str),
            "session_id": roots["session.id"],
            "replay_of": roots["cogscope.replay_of"],
            "cogscope": roots["cogscope.agent"].notna(),
            "recorded_here": _recorded_here(roots, signer),
        }
    )
    # traces another app sent into the same project: status from the span status alone
    foreign = cycles["status"].isna()
    cycles.loc[foreign, "status"] = roots.loc[foreign, "status_code"].map(lambda s: ERROR if s == "ERROR" else OK)
    cycles.loc[foreign, "agent"] = cycles.loc[foreign, "agent"].fillna("(not cogscope)")

    if f.failed_only:
        cycles = cycles[cycles["status"].isin(FAILED)]
    if f.status:
        cycles = cycles[cycles["status"] == f.status]
    if f.agent:
        cycles = cycles[cycles["agent"] == f.agent]
    if f.text:
        cycles = cycles[cycles["task"].str.contains(f.text, case=False, regex=False)]
    cycles = cycles.sort_values("start_time", ascending=False)
    if limit is not None:
        cycles = cycles.head(limit)
    if cycles.empty:
        return _empty()

    since = cycles["start_time"].min().to_pydatetime()
    wanted = set(cycles["trace_id"])
    llm = query_spans(
        client,
        SpanQuery()
        .where("span_kind == 'LLM'")
        .select("trace_id", "llm.model_name", "llm.token_count.prompt", "llm.token_count.completion"),
        project,
        since,
        f.until,
    )
    steps = query_spans(
        client, SpanQuery().where("span_kind == 'CHAIN'").select("trace_id", "name"), project, since, f.until
    )
    cycles = cycles.set_index("trace_id")
    if not llm.empty:
        llm = llm.rename(columns={"context.trace_id": "trace_id"})
        llm = llm[llm["trace_id"].isin(wanted)]
        for column in ("llm.model_name", "llm.token_count.prompt", "llm.token_count.completion"):
            if column not in llm:
                llm[column] = None
        llm["cost"] = llm_costs(llm, "llm.model_name", "llm.token_count.prompt", "llm.token_count.completion")
        llm["prompt"] = pd.to_numeric(llm["llm.token_count.prompt"], errors="coerce").fillna(0)
        llm["completion"] = pd.to_numeric(llm["llm.token_count.completion"], errors="coerce").fillna(0)
        per = llm.groupby("trace_id").agg(
            llm_calls=("prompt", "size"),
            prompt_tokens=("prompt", "sum"),
            completion_tokens=("completion", "sum"),
            cost_usd=("cost", lambda c: c.sum(min_count=1) if not c.isna().any() else math.nan),
        )
        cycles = cycles.join(per)
    if not steps.empty:
        steps = steps.rename(columns={"context.trace_id": "trace_id"})
        steps = steps[steps["trace_id"].isin(wanted) & steps["name"].astype(str).str.fullmatch(r"Step \d+")]
        cycles = cycles.join(steps.groupby("trace_id").size().rename("steps"))
    for column in ("llm_calls", "prompt_tokens", "completion_tokens", "steps"):
        if column not in cycles:
            cycles[column] = 0
        cycles[column] = cycles[column].fillna(0).astype(int)
    if "cost_usd" not in cycles:
        cycles["cost_usd"] = 0.0
    cycles.loc[cycles["llm_calls"] == 0, "cost_usd"] = 0.0
    cycles["tokens"] = cycles["prompt_tokens"] + cycles["completion_tokens"]
    return cycles.reset_index()[COLUMNS]
