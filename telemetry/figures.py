"""What one cycle costs, where it goes, and what that is per month: the figures behind the Dashboard tab and
`cogscope cost`, one set of pandas functions for both.

`CycleFigures` reads only the columns it needs from Phoenix (SpanQuery.select), lets Phoenix filter by
time, and keeps what it has aggregated, so `refresh()` fetches only cycles it has not seen. Tokens and
cost are summed over LLM spans only: the AGENT spans repeat the totals.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .cycle import ERROR, MAX_STEPS, ROOT_ATTRIBUTES
from .phoenix_spans import TRACE_ID, query_spans
from .prices import Prices
from .roles import ATTR_ROLE, ATTR_STEP, ATTR_TOOL_S, NO_ROLE, role_of, step_of

SECONDS_PER_DAY = 86_400
DAYS_PER_MONTH = 30
CALLS_CHUNK = 20_000  # cycles whose LLM calls are fetched in one query
BY_TRACE_ID = 500  # up to this many new cycles, their calls are looked up by trace id rather than by time
OVERLAP = timedelta(minutes=15)  # a refresh looks this far back for cycles that were still running
CYCLE_COLUMNS = ["trace_id", "start_time", "end_time", "agent", "status", "session_id", "models", "replay_of"]
CALL_COLUMNS = ["trace_id", "span_id", "start_time", "latency_s", "model", "role", "step", "prompt_tokens",
                "completion_tokens"]  # fmt: skip


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)


@dataclass
class CycleFigures:
    """Per-cycle and per-LLM-call rows of one Phoenix project, kept between refreshes."""

    client: Any
    project: str
    cycles: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CYCLE_COLUMNS))
    calls: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CALL_COLUMNS))
    tool_time: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # trace_id -> seconds in tools
    latest_start: datetime | None = None
    loaded: bool = False  # the first refresh has run
    covered_from: datetime | None = None  # the earliest start fetched (None: all time)

    def refresh(self, since: datetime | None = None) -> int:
        """Fetch the cycles started since `since` (None: all time) that are not held yet; returns how many.

        The first call fetches the window asked for; later calls fetch what started since the last one (less
        OVERLAP, for cycles that were still running) and, when `since` reaches further back than anything
        fetched so far, that older stretch only.
        """
        new = 0
        if not self.loaded:
            new = self._fetch(since, None)
            self.loaded, self.covered_from = True, since
            return new
        if self.covered_from is not None and (since is None or since < self.covered_from):
            new += self._fetch(since, self.covered_from)
            self.covered_from = since
        newer = self.latest_start - OVERLAP if self.latest_start is not None else self.covered_from
        return new + self._fetch(newer, None)

    def _fetch(self, since: datetime | None, until: datetime | None) -> int:
        """Cycles whose root started in [since, until) and are not held yet, with their LLM calls.

        Two queries in the usual case: the roots (one row per cycle, its time in tools included) and the LLM
        spans between the first new root's start and the last one's end (their role and step included).
        Traces recorded without those attributes cost two more.
        """
        from phoenix.client.types.spans import SpanQuery

        roots = query_spans(
            self.client,
            SpanQuery()
            .where("parent_id is None")
            .select(
                "trace_id",
                "start_time",
                "end_time",
                *ROOT_ATTRIBUTES,
                ATTR_TOOL_S,
            ),
            self.project,
            since,
            until,
        )
        if roots.empty:
            return 0
        roots = roots.rename(columns={"context.trace_id": "trace_id"})
        known = isin(roots["trace_id"], self.cycles["trace_id"])
        roots = roots[_col(roots, "cogscope.agent").notna().to_numpy() & ~known]
        if roots.empty:
            return 0
        new = pd.DataFrame(
            {
                "trace_id": roots["trace_id"],
                "start_time": pd.to_datetime(roots["start_time"], utc=True),
                "end_time": pd.to_datetime(roots["end_time"], utc=True),
                "agent": roots["cogscope.agent"],
                "status": _col(roots, "cogscope.cycle.status"),
                "session_id": _col(roots, "session.id"),
                "models": _col(roots, "cogscope.model"),
                "replay_of": _col(roots, "cogscope.replay_of"),
            }
        )
        first = new["start_time"].min().to_pydatetime()
        last = new["end_time"].max().to_pydatetime() + timedelta(microseconds=1)  # Phoenix's end is exclusive
        wanted = set(new["trace_id"])
        located = pd.concat([self._calls_between(chunk) for chunk in _chunks(new, CALLS_CHUNK)], ignore_index=True)
        tool_s = pd.to_numeric(_col(roots, ATTR_TOOL_S), errors="coerce")
        added = pd.Series(tool_s.to_numpy(), index=roots["trace_id"].to_numpy()).dropna()
        untimed = wanted - set(added.index)
        if untimed:  # recorded before roots carried their time in tools: sum the TOOL spans
            tools = query_spans(
                self.client,
                SpanQuery().where("span_kind == 'TOOL'").select("trace_id", "start_time", "end_time"),
                self.project,
                first,
                last,
            )
            if not tools.empty:
                tools = tools.rename(columns={"context.trace_id": "trace_id"})
                tools = tools[isin(tools["trace_id"], untimed)]
                seconds = pd.to_datetime(tools["end_time"], utc=True) - pd.to_datetime(tools["start_time"], utc=True)
                added = pd.concat([added, seconds.dt.total_seconds().groupby(tools["trace_id"]).sum()])
        self.cycles = (
            pd.concat([self.cycles, new], ignore_index=True) if len(self.cycles) else new.reset_index(drop=True)
        )
        self.calls = pd.concat([self.calls, located], ignore_index=True) if len(self.calls) else located
        self.tool_time = pd.concat([self.tool_time, added]) if len(self.tool_time) else added
        latest = self.cycles["start_time"].max().to_pydatetime()
        self.latest_start = latest if self.latest_start is None else max(self.latest_start, latest)
        return len(new)

    def _calls_between(self, cycles: pd.DataFrame) -> pd.DataFrame:
        """The LLM calls of `cycles` (new roots, in start order), located by role and step.

        Fetched per chunk of CALLS_CHUNK cycles: Phoenix answers in JSON, and holding the text of 300,000 calls
        at once was most of the first load's peak memory at 100,000 cycles."""
        from phoenix.client.types.spans import SpanQuery

        first: datetime | None = cycles["start_time"].min().to_pydatetime()
        last: datetime | None = cycles["end_time"].max().to_pydatetime() + timedelta(microseconds=1)  # exclusive
        where = "span_kind == 'LLM'"
        ids = [t for t in cycles["trace_id"].tolist() if TRACE_ID.match(str(t))]
        if len(ids) == len(cycles) <= BY_TRACE_ID:
            # a refresh's few new cycles: looked up by trace id (0.06 s at 1M spans), not by a time range (0.36 s)
            where, first, last = f"{where} and trace_id in {json.dumps(ids)}", None, None
        calls = query_spans(
            self.client,
            SpanQuery()
            .where(where)
            .select(
                "trace_id",
                "span_id",
                "parent_id",
                "start_time",
                "end_time",
                "llm.model_name",
                "llm.token_count.prompt",
                "llm.token_count.completion",
                ATTR_ROLE,
                ATTR_STEP,
            ),
            self.project,
            first,
            last,
        )
        calls = calls.rename(columns={"context.trace_id": "trace_id", "context.span_id": "span_id"})
        if not calls.empty:
            calls = calls[isin(calls["trace_id"], cycles["trace_id"])]
        structure = pd.DataFrame()
        if not calls.empty and _col(calls, ATTR_ROLE).isna().any():
            # recorded before calls carried their role: walk the span tree instead
            structure = query_spans(
                self.client,
                SpanQuery()
                .where("(span_kind == 'CHAIN' or span_kind == 'AGENT')" + where.removeprefix("span_kind == 'LLM'"))
                .select("trace_id", "span_id", "parent_id", "name", "span_kind"),
                self.project,
                first,
                last,
            )
        return _calls(calls, structure)


def _chunks(new: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    ordered = new.sort_values("start_time")
    return [ordered.iloc[i : i + size] for i in range(0, len(ordered), size)] or [ordered]


def _calls(calls: pd.DataFrame, structure: pd.DataFrame) -> pd.DataFrame:
    """LLM spans -> one row per call, with the role (the managed agent that made it) and its step number:
    from the call's own attributes (`telemetry.roles`), or for older traces from the span tree."""
    if calls.empty:
        return pd.DataFrame(columns=CALL_COLUMNS)
    roles = _col(calls, ATTR_ROLE).tolist()  # .tolist(): Arrow-backed columns iterate value by value, slowly
    steps = pd.to_numeric(_col(calls, ATTR_STEP), errors="coerce").tolist()
    if not structure.empty:
        structure = structure.rename(columns={"context.span_id": "span_id", "context.trace_id": "trace_id"})
        parents = {
            s: (p, role_of(k, n), step_of(k, n))
            for s, p, n, k in zip(
                structure["span_id"].tolist(),
                structure["parent_id"].tolist(),
                structure["name"].tolist(),
                structure["span_kind"].tolist(),
                strict=True,
            )
        }
        for i, parent in enumerate(calls["parent_id"].tolist()):
            if isinstance(roles[i], str):
                continue
            role, step, node = None, None, parents.get(parent)
            while node is not None and role is None:
                grand, role, own_step = node
                step = own_step if step is None else step
                node = parents.get(grand)
            roles[i], steps[i] = role or NO_ROLE, step
    start = pd.to_datetime(calls["start_time"], utc=True)
    return pd.DataFrame(
        {
            "trace_id": calls["trace_id"].to_numpy(),
            "span_id": calls["span_id"].to_numpy(),
            "start_time": start.reset_index(drop=True),
            "latency_s": (pd.to_datetime(calls["end_time"], utc=True) - start).dt.total_seconds().to_numpy(),
            "model": _col(calls, "llm.model_name").fillna("").astype(str).to_numpy(),
            "role": [r if isinstance(r, str) else NO_ROLE for r in roles],
            "step": [None if s is None or s != s else int(s) for s in steps],
            "prompt_tokens": pd.to_numeric(_col(calls, "llm.token_count.prompt"), errors="coerce").fillna(0).to_numpy(),
            "completion_tokens": pd.to_numeric(_col(calls, "llm.token_count.completion"), errors="coerce")
            .fillna(0)
            .to_numpy(),
        }
    )


# -- figures over a window and a filter ----------------------------------------------------
@dataclass(frozen=True)
class Scope:
    since: datetime | None = None
    agent: str | None = None
    session: str | None = None
    model: str | None = None
    status: str | None = None


def select(figures: CycleFigures, scope: Scope) -> tuple[pd.DataFrame, pd.DataFrame]:
    cycles = figures.cycles
    if scope.since is not None:
        cycles = cycles[cycles["start_time"] >= pd.Timestamp(scope.since)]
    if scope.agent:
        cycles = cycles[cycles["agent"] == scope.agent]
    if scope.session:
        cycles = cycles[cycles["session_id"] == scope.session]
    if scope.status:
        cycles = cycles[cycles["status"] == scope.status]
    calls = figures.calls
    if len(cycles) < len(figures.cycles):
        calls = calls[isin(calls["trace_id"], cycles["trace_id"])]
    if scope.model:
        keep = calls.loc[calls["model"] == scope.model, "trace_id"].unique()
        cycles = cycles[isin(cycles["trace_id"], keep)]
        calls = calls[isin(calls["trace_id"], keep)]
    return cycles, calls


def price_calls(calls: pd.DataFrame, prices: Prices, models_by_role: dict[str, str] | None = None) -> pd.Series:
    """Cost of each call; `models_by_role` re-prices a role's calls as if another model had made them.

    Prices are looked up once per (role, model) pair and spread with numpy: a lookup per call was most of
    the dashboard's time at 100,000 cycles."""
    if calls.empty:
        return pd.Series(dtype=float, index=calls.index)
    role_codes, roles = pd.factorize(calls["role"].fillna(NO_ROLE))
    model_codes, models = pd.factorize(calls["model"].fillna(""))
    width = max(1, len(models))
    pairs, inverse = np.unique(role_codes.astype(np.int64) * width + model_codes, return_inverse=True)
    p_in, p_out = np.empty(len(pairs)), np.empty(len(pairs))
    for i, pair in enumerate(pairs.tolist()):
        role, model = roles[pair // width], models[pair % width]
        if models_by_role:
            model = models_by_role.get(role, models_by_role.get("*", model))
        p_in[i], p_out[i] = prices.per_million(model)
    tokens_in = calls["prompt_tokens"].to_numpy(dtype=float)
    tokens_out = calls["completion_tokens"].to_numpy(dtype=float)
    return pd.Series((tokens_in * p_in[inverse] + tokens_out * p_out[inverse]) / 1e6, index=calls.index)


def isin(values: pd.Series, allowed: Any) -> np.ndarray:
    """values.isin(allowed) through Arrow's is_in: pandas' own converts the strings one by one (15x slower)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    allowed = pa.array(list(allowed) if isinstance(allowed, (set, frozenset)) else allowed, type=pa.string())
    found = pc.is_in(pa.array(values, type=pa.string(), from_pandas=True), value_set=allowed)
    return found.to_numpy(zero_copy_only=False).astype(bool)


def per_cycle(figures: CycleFigures, cycles: pd.DataFrame, calls: pd.DataFrame, prices: Prices) -> pd.DataFrame:
    """One row per cycle: calls, tokens, cost (NaN when a model's price is unknown), duration, time in tools."""
    calls = calls.assign(cost=price_calls(calls, prices)) if len(calls) else calls.assign(cost=pd.Series(dtype=float))
    grouped = (
        calls.assign(unpriced=calls["cost"].isna())
        .groupby("trace_id")
        .agg(
            llm_calls=("span_id", "size"),
            prompt_tokens=("prompt_tokens", "sum"),
            completion_tokens=("completion_tokens", "sum"),
            model_s=("latency_s", "sum"),
            cost_usd=("cost", "sum"),
            unpriced=("unpriced", "any"),
        )
    )  # built-in aggregations only: a Python lambda per cycle was most of the time at 100,000 cycles
    grouped.loc[grouped["unpriced"], "cost_usd"] = math.nan  # a call of unknown price makes the cycle's cost unknown
    grouped = grouped.drop(columns="unpriced")
    table = cycles.set_index("trace_id").join(grouped)
    for column in ("llm_calls", "prompt_tokens", "completion_tokens"):
        table[column] = table[column].fillna(0).astype(int)
    table["model_s"] = table["model_s"].fillna(0.0)
    table["cost_usd"] = table["cost_usd"].where(table["llm_calls"] > 0, 0.0)
    table["tool_s"] = figures.tool_time.reindex(table.index).fillna(0.0) if len(figures.tool_time) else 0.0
    table["duration_s"] = (table["end_time"] - table["start_time"]).dt.total_seconds()
    table["tokens"] = table["prompt_tokens"] + table["completion_tokens"]
    return table.reset_index().sort_values("start_time")


def _stats(series: pd.Series) -> dict[str, float]:
    values = pd.to_numeric(series, errors="coerce").dropna()
    if values.empty:
        return {"mean": math.nan, "p50": math.nan, "p95": math.nan, "max": math.nan}
    return {
        "mean": float(values.mean()),
        "p50": float(values.quantile(0.5)),
        "p95": float(values.quantile(0.95)),
        "max": float(values.max()),
    }


@dataclass(frozen=True)
class Projection:
    interval_s: float
    cycles_per_day: float
    cycles_per_month: float
    mean_cost: float
    p95_cost: float

    @property
    def daily(self) -> float:
        return self.mean_cost * self.cycles_per_day

    @property
    def monthly(self) -> float:
        return self.mean_cost * self.cycles_per_month

    @property
    def monthly_p95(self) -> float:
        return self.p95_cost * self.cycles_per_month

    def formula(self) -> str:
        return (
            f"{SECONDS_PER_DAY:,} s/day ÷ {self.interval_s:g} s = {self.cycles_per_day:,.0f} cycles/day × "
            f"{DAYS_PER_MONTH} days = {self.cycles_per_month:,.0f} cycles/month × ${self.mean_cost:.6f} mean/cycle "
            f"= ${self.monthly:,.2f}/month (p95 cycle: ${self.monthly_p95:,.2f}/month)"
        )


def project(mean_cost: float, p95_cost: float, interval_s: float) -> Projection:
    """Cycles every `interval_s` seconds, around the clock for a 30-day month."""
    if not interval_s > 0:
        raise ValueError("the cycle interval must be more than 0 seconds")
    per_day = SECONDS_PER_DAY / interval_s
    return Projection(interval_s, per_day, per_day * DAYS_PER_MONTH, mean_cost, p95_cost)


def measured_interval(cycles: pd.DataFrame) -> float | None:
    """The median gap between cycle starts of one session (a heartbeat loop), if there are two or more."""
    if len(cycles) < 2:
        return None
    gaps = cycles.sort_values("start_time")["start_time"].diff().dt.total_seconds().dropna()
    gaps = gaps[gaps > 0]
    return float(gaps.median()) if len(gaps) else None


def summary(table: pd.DataFrame, calls: pd.DataFrame, *, interval_s: float, prices: Prices) -> dict[str, Any]:
    """The dashboard's numbers: per-cycle statistics, rates, time split, cost, and the monthly projection."""
    n = len(table)
    statuses = table["status"].value_counts() if n else pd.Series(dtype=int)
    unknown = sorted({m for m in calls["model"].unique() if not prices.known(m)}) if len(calls) else []
    cost = (
        _stats(table["cost_usd"])
        if n and not unknown
        else {"mean": math.nan, "p95": math.nan, "p50": math.nan, "max": math.nan}
    )
    model_s, tool_s = float(table["model_s"].sum()) if n else 0.0, float(table["tool_s"].sum()) if n else 0.0
    return {
        "cycles": n,
        "llm_calls": _stats(table["llm_calls"]) if n else _stats(pd.Series(dtype=float)),
        "prompt_tokens": _stats(table["prompt_tokens"]) if n else _stats(pd.Series(dtype=float)),
        "completion_tokens": _stats(table["completion_tokens"]) if n else _stats(pd.Series(dtype=float)),
        "cycle_duration_s": _stats(table["duration_s"]) if n else _stats(pd.Series(dtype=float)),
        "llm_latency_s": _stats(calls["latency_s"]) if len(calls) else _stats(pd.Series(dtype=float)),
        "time_in_model_s": model_s,
        "time_in_tools_s": tool_s,
        "error_rate": float(statuses.get(ERROR, 0)) / n if n else math.nan,
        "max_steps_rate": float(statuses.get(MAX_STEPS, 0)) / n if n else math.nan,
        "cost_per_cycle": cost,
        "unknown_prices": {m: prices.unknown_hint(m) for m in unknown},
        "projection": project(cost["mean"], cost["p95"], interval_s) if n else None,
    }


def breakdown(calls: pd.DataFrame, prices: Prices, by: str) -> pd.DataFrame:
    """Calls, tokens and cost per role or per model, with each one's share of the cost."""
    if calls.empty:
        return pd.DataFrame(columns=[by, "llm_calls", "prompt_tokens", "completion_tokens", "cost_usd", "share"])
    priced = calls.assign(cost=price_calls(calls, prices))
    table = (
        priced.assign(unpriced=priced["cost"].isna())
        .groupby(by)
        .agg(
            llm_calls=("span_id", "size"),
            prompt_tokens=("prompt_tokens", "sum"),
            completion_tokens=("completion_tokens", "sum"),
            cost_usd=("cost", "sum"),
            unpriced=("unpriced", "any"),
        )
    )
    table.loc[table["unpriced"], "cost_usd"] = math.nan  # one call of unknown price: the total is unknown
    table = table.drop(columns="unpriced")
    total = table["cost_usd"].sum(min_count=1)
    table["share"] = table["cost_usd"] / total if total and not math.isnan(total) else math.nan
    return table.reset_index().sort_values("cost_usd", ascending=False)


def what_if(
    table: pd.DataFrame, calls: pd.DataFrame, prices: Prices, models_by_role: dict[str, str], interval_s: float
) -> dict[str, Any]:
    """Re-price the same recorded tokens with another model per role ('*' = every role): old vs new per month."""
    for model in models_by_role.values():
        if not prices.known(model):
            raise ValueError(prices.unknown_hint(model))
    n = max(1, len(table))
    old = float(price_calls(calls, prices).sum()) / n if len(calls) else 0.0
    new = float(price_calls(calls, prices, models_by_role).sum()) / n if len(calls) else 0.0
    old_p, new_p = project(old, old, interval_s), project(new, new, interval_s)
    return {
        "models": models_by_role,
        "old_monthly": old_p.monthly,
        "new_monthly": new_p.monthly,
        "difference": new_p.monthly - old_p.monthly,
        "note": "estimate: the same token counts re-priced; another model tokenizes and behaves differently",
    }


def models_of(table: pd.DataFrame) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in table.get("models", pd.Series(dtype=object)).dropna():
        try:
            out.update(json.loads(raw))
        except ValueError:
            continue
    return out
