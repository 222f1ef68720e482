"""What cycles cost and where it goes: the figures behind the Dashboard tab and `cogscope cost`, one set of
pandas functions for both, over the cycles and calls tables (`telemetry.tables`). The monthly projection and the
what-if are in `telemetry.projection`.

`CycleFigures` reads only the columns it needs from Phoenix (`telemetry.cycle_list`), lets Phoenix filter by time,
and keeps what it has read, so `refresh()` fetches only cycles it has not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from .attributes import ERROR, MAX_STEPS
from .cycle_list import by_source, by_user, fetch_calls, fetch_roots, fetch_tool_time
from .prices import Prices
from .projection import project
from .tables import CALL_COLUMNS, cycles_table, isin, priced, roots_table, sum_calls

CALLS_CHUNK = 20_000  # cycles whose LLM calls are fetched in one query
OVERLAP = timedelta(minutes=15)  # a refresh looks this far back for cycles that were still running


@dataclass
class CycleFigures:
    """Per-cycle and per-LLM-call rows of one Phoenix project, kept between refreshes."""

    client: Any
    project: str
    cycles: pd.DataFrame = field(default_factory=lambda: roots_table(pd.DataFrame()))
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
        spans of the new cycles (their role and step included), per chunk of CALLS_CHUNK cycles: Phoenix answers
        in JSON, and holding the text of 300,000 calls at once was most of the first load's peak memory at
        100,000 cycles. Traces recorded without those attributes cost more (`telemetry.cycle_list`)."""
        roots = fetch_roots(self.client, self.project, since, until)
        if roots.empty:
            return 0
        roots = roots[~isin(roots["trace_id"], self.cycles["trace_id"])]
        if roots.empty:
            return 0
        new = roots_table(roots)
        ordered = new.sort_values("start_time")
        chunks = [ordered.iloc[i : i + CALLS_CHUNK] for i in range(0, len(ordered), CALLS_CHUNK)]
        located = pd.concat([fetch_calls(self.client, self.project, chunk) for chunk in chunks], ignore_index=True)
        added = fetch_tool_time(self.client, self.project, new)
        self.cycles = pd.concat([self.cycles, new], ignore_index=True) if len(self.cycles) else new
        self.calls = pd.concat([self.calls, located], ignore_index=True) if len(self.calls) else located
        self.tool_time = pd.concat([self.tool_time, added]) if len(self.tool_time) else added
        latest = self.cycles["start_time"].max().to_pydatetime()
        self.latest_start = latest if self.latest_start is None else max(self.latest_start, latest)
        return len(new)


# -- figures over a window and a filter ----------------------------------------------------
@dataclass(frozen=True)
class Scope:
    since: datetime | None = None
    agent: str | None = None
    session: str | None = None
    model: str | None = None
    status: str | None = None
    source: str | None = None  # `cycles.by_source`: "cogscope", "other" or all
    user: str | None = None  # `cycles.by_user`: the cycles this user started, or everyone's (None)


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
    cycles = by_user(by_source(cycles, scope.source), scope.user)
    calls = figures.calls
    if len(cycles) < len(figures.cycles):
        calls = calls[isin(calls["trace_id"], cycles["trace_id"])]
    if scope.model:
        keep = calls.loc[calls["model"] == scope.model, "trace_id"].unique()
        cycles = cycles[isin(cycles["trace_id"], keep)]
        calls = calls[isin(calls["trace_id"], keep)]
    return cycles, calls


def per_cycle(figures: CycleFigures, cycles: pd.DataFrame, calls: pd.DataFrame, prices: Prices) -> pd.DataFrame:
    """The cycles table of `cycles` (held roots) and their calls, oldest first."""
    return cycles_table(cycles, calls, prices, tool_s=figures.tool_time).sort_values("start_time")


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


def summary(table: pd.DataFrame, calls: pd.DataFrame, *, interval_s: float, prices: Prices) -> dict[str, Any]:
    """The dashboard's numbers: per-cycle statistics (named as the cycles table's columns), call latency, time
    split, rates, the models of unknown price, and the monthly projection."""
    n = len(table)
    empty = pd.Series(dtype=float)
    statuses = table["status"].value_counts() if n else pd.Series(dtype=int)
    used = calls[(calls["prompt_tokens"] + calls["completion_tokens"]) > 0] if len(calls) else calls
    unknown = sorted({m for m in used["model"].unique() if not prices.known(m)}) if len(used) else []
    per_cycle = {
        name: _stats(table[name]) if n else _stats(empty)
        for name in ("llm_calls", "prompt_tokens", "completion_tokens", "tokens", "duration_s", "cost_usd")
    }
    if n and table["cost_usd"].isna().any():  # a cycle of unknown cost: every cost figure is unknown
        per_cycle["cost_usd"] = _stats(empty)
    cost = per_cycle["cost_usd"]
    return {
        "cycle_count": n,
        "per_cycle": per_cycle,
        "latency_s": _stats(calls["latency_s"]) if len(calls) else _stats(empty),
        "model_s": float(table["model_s"].sum()) if n else 0.0,
        "tool_s": float(table["tool_s"].sum()) if n else 0.0,
        "error_rate": float(statuses.get(ERROR, 0)) / n if n else math.nan,
        "max_steps_rate": float(statuses.get(MAX_STEPS, 0)) / n if n else math.nan,
        "unknown_prices": {m: prices.unknown_hint(m) for m in unknown},
        "projection": project(cost["mean"], cost["p95"], interval_s) if n else None,
    }


def breakdown(calls: pd.DataFrame, prices: Prices, by: str) -> pd.DataFrame:
    """Calls, tokens and cost per role or per model, with each one's share of the cost."""
    if calls.empty:
        return pd.DataFrame(columns=[by, "llm_calls", "prompt_tokens", "completion_tokens", "cost_usd", "share"])
    table = sum_calls(priced(calls, prices), by).drop(columns="model_s")
    total = table["cost_usd"].sum(min_count=1)
    table["share"] = table["cost_usd"] / total if total and not math.isnan(total) else math.nan
    return table.reset_index().sort_values("cost_usd", ascending=False)
