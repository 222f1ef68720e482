"""Spans -> the three tables every view reads: **cycles**, **steps** and **calls**; and the one pricing function.

- calls: one row per LLM call (LLM span), CALL_COLUMNS: its model, role (the managed agent that made it), step,
  tokens, latency and cost.
- steps: one record per step (CHAIN `Step n` span) of a cycle: the StepViews of `telemetry.steps.steps_from_frame`,
  numbered across managed agents, with each step's role, status, tokens and content for the step-through; for many
  cycles, only their count per cycle (`step_counts`).
- cycles: one row per trace, CYCLE_COLUMNS: what the root span says (agent, models, status, task, session) and
  the sums of its calls.

Tokens and cost are summed over LLM spans only: the root AGENT span repeats the totals. A call of a model with no
known price costs NaN, and so does its cycle ("unknown", `null` in JSON), never 0; a cycle without calls costs 0.

The Run tab's totals, the Traces list and `cogscope traces`, the step-through and `cogscope show`, the Dashboard
and `cogscope cost` all build their numbers here, so one cycle shows the same numbers everywhere. The inputs are
span frames in the layout of Phoenix's `SpanQuery.select(...)` (columns named as selected: `trace_id`,
`llm.model_name`, ...); `selected` turns a whole-span frame (Phoenix's `get_spans_dataframe`, or
`frames.spans_to_frame` of in-process spans) into that layout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .attributes import (
    AGENT_KIND,
    ATTR_AGENT,
    ATTR_MODEL,
    ATTR_REPLAY_OF,
    ATTR_ROLE,
    ATTR_SESSION,
    ATTR_STATUS,
    ATTR_STEP,
    ATTR_STEPS,
    ATTR_TOOL_S,
    ATTR_USER,
    CHAIN_KIND,
    COMPLETION_TOKENS,
    ERROR,
    INPUT,
    KIND,
    LLM_KIND,
    MODEL_NAME,
    NO_ROLE,
    OK,
    PROMPT_TOKENS,
    STEP_NAME,
    app_agent,
    app_task,
    role_of,
    step_of,
)
from .prices import Prices
from .roles import step_count
from .steps import StepView, steps_from_frame, token_count

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

CALL_COLUMNS = ["trace_id", "span_id", "start_time", "latency_s", "model", "role", "step", "prompt_tokens",
                "completion_tokens"]  # fmt: skip
CYCLE_COLUMNS = ["trace_id", "start_time", "end_time", "agent", "models", "status", "steps", "llm_calls",
                 "prompt_tokens", "completion_tokens", "tokens", "duration_s", "model_s", "tool_s", "cost_usd",
                 "task", "session_id", "user", "replay_of", "cogscope"]  # fmt: skip


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """`frame[name]`, or a column of None when the spans carried no such attribute."""
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def selected(spans: pd.DataFrame) -> pd.DataFrame:
    """A whole-span frame -> the layout of a SpanQuery.select: `context.trace_id` -> `trace_id`,
    `attributes.llm.model_name` -> `llm.model_name`."""
    renamed = {"context.trace_id": "trace_id", "context.span_id": "span_id"}
    renamed.update({c: c.removeprefix("attributes.") for c in spans.columns if c.startswith("attributes.")})
    return spans.rename(columns=renamed)


def isin(values: pd.Series, allowed: Any) -> np.ndarray:
    """values.isin(allowed) through Arrow's is_in: pandas' own converts the strings one by one (15x slower)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    allowed = pa.array(list(allowed) if isinstance(allowed, (set, frozenset)) else allowed, type=pa.string())
    found = pc.is_in(pa.array(values, type=pa.string(), from_pandas=True), value_set=allowed)
    return np.asarray(found.to_numpy(zero_copy_only=False).astype(bool))  # asarray: typed, no copy


# -- calls --------------------------------------------------------------------------------------------------
def calls_table(llm: pd.DataFrame, structure: pd.DataFrame | None = None) -> pd.DataFrame:
    """LLM spans -> one row per call, with the role that made it and its step number.

    Role and step come from the call's own `cogscope.role`/`cogscope.step` (written while the span was live); for
    calls recorded without them, from `structure` (the cycle's AGENT and CHAIN spans: trace_id, span_id,
    parent_id, name, span_kind) by the rule of `attributes.role_of`/`step_of`."""
    if llm.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CALL_COLUMNS})
    roles = column(llm, ATTR_ROLE).tolist()  # .tolist(): Arrow-backed columns iterate value by value, slowly
    steps = pd.to_numeric(column(llm, ATTR_STEP), errors="coerce").tolist()
    if structure is not None and not structure.empty and not all(isinstance(r, str) for r in roles):
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
        for i, parent in enumerate(llm["parent_id"].tolist()):
            if isinstance(roles[i], str):
                continue
            role, step, node = None, None, parents.get(parent)
            while node is not None and role is None:
                grand, role, own_step = node
                step = own_step if step is None else step
                node = parents.get(grand)
            roles[i], steps[i] = role or NO_ROLE, step
    start = pd.to_datetime(llm["start_time"], utc=True)
    return pd.DataFrame(
        {
            "trace_id": llm["trace_id"].to_numpy(),
            "span_id": llm["span_id"].to_numpy(),
            "start_time": start.reset_index(drop=True),
            "latency_s": (pd.to_datetime(llm["end_time"], utc=True) - start).dt.total_seconds().to_numpy(),
            "model": column(llm, MODEL_NAME).fillna("").astype(str).to_numpy(),
            "role": [r if isinstance(r, str) else NO_ROLE for r in roles],
            "step": [None if s is None or s != s else int(s) for s in steps],
            "prompt_tokens": _tokens(column(llm, PROMPT_TOKENS)),
            "completion_tokens": _tokens(column(llm, COMPLETION_TOKENS)),
        }
    )


def _tokens(values: pd.Series) -> np.ndarray:
    return np.asarray(pd.to_numeric(values, errors="coerce").fillna(0).astype("int64").to_numpy())


def price(calls: pd.DataFrame, prices: Prices, models_by_role: Mapping[str, str] | None = None) -> pd.Series:
    """The cost in USD of each call (NaN where its model's price is unknown): the one pricing function.

    `models_by_role` re-prices a role's calls as if another model had made them ('*': every role). Prices are
    looked up once per (role, model) pair and spread with numpy: a lookup per call was most of the dashboard's
    time at 100,000 cycles."""
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
    cost = (tokens_in * p_in[inverse] + tokens_out * p_out[inverse]) / 1e6
    # a call that used no tokens (it failed before the model answered, and so has no model name) cost nothing
    return pd.Series(np.where(tokens_in + tokens_out == 0, 0.0, cost), index=calls.index)


def priced(calls: pd.DataFrame, prices: Prices) -> pd.DataFrame:
    """`calls` with their `cost_usd`."""
    return calls.assign(cost_usd=price(calls, prices))


def sum_calls(calls: pd.DataFrame, by: str) -> pd.DataFrame:
    """Calls, tokens, time in the model and cost per `by` (a column of priced calls); the cost is NaN where one
    call's price is unknown. Built-in aggregations only: a Python lambda per group was most of the time at
    100,000 cycles."""
    grouped = (
        calls.assign(unpriced=calls["cost_usd"].isna())
        .groupby(by)
        .agg(
            llm_calls=("span_id", "size"),
            prompt_tokens=("prompt_tokens", "sum"),
            completion_tokens=("completion_tokens", "sum"),
            model_s=("latency_s", "sum"),
            cost_usd=("cost_usd", "sum"),
            unpriced=("unpriced", "any"),
        )
    )
    grouped.loc[grouped["unpriced"], "cost_usd"] = math.nan
    return grouped.drop(columns="unpriced")


# -- steps --------------------------------------------------------------------------------------------------
def step_counts(chains: pd.DataFrame) -> pd.Series:
    """trace_id -> number of steps, from CHAIN spans (columns trace_id, name)."""
    if chains.empty:
        return pd.Series(dtype="int64")
    kept = chains[chains["name"].astype(str).str.fullmatch(STEP_NAME.pattern[1:-1])]
    return kept.groupby("trace_id").size()


# -- cycles -------------------------------------------------------------------------------------------------
def models_text(raw: Any) -> str:
    """`{"default": "m"}` -> `m`; `{"perception": "a", "reasoning": "b"}` -> `perception=a, reasoning=b`."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return ""
    try:
        models = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return str(raw)
    if not isinstance(models, dict):
        return str(raw)
    return ", ".join(m if role == "default" else f"{role}={m}" for role, m in models.items())


def roots_table(roots: pd.DataFrame) -> pd.DataFrame:
    """Root spans (selected layout) -> what each cycle is: trace_id, times, agent, models, status, task,
    session, user, replay_of, cogscope (recorded by cogscope), tool_s (its seconds in tools) and steps (its number
    of steps), the last two when the root recorded them.

    A trace another app sent has no `cogscope.cycle.status`: its status is its root span's."""
    if roots.empty:
        return pd.DataFrame(columns=["trace_id", "start_time", "end_time", "agent", "models", "status", "task",
                                     "session_id", "user", "replay_of", "cogscope", "tool_s", "steps"])  # fmt: skip
    agent = column(roots, ATTR_AGENT)
    ours = agent.notna().to_numpy()  # recorded by cogscope (or an app using its recorder): else another app's
    status = column(roots, ATTR_STATUS).astype(object)
    foreign = status.isna()
    status[foreign] = column(roots, "status_code")[foreign].map(lambda s: ERROR if s == "ERROR" else OK)
    inputs = column(roots, INPUT).tolist()
    names = column(roots, "name").tolist()
    return pd.DataFrame(
        {
            "trace_id": roots["trace_id"].to_numpy(),
            "start_time": pd.to_datetime(roots["start_time"], utc=True).to_numpy(),
            "end_time": pd.to_datetime(roots["end_time"], utc=True).to_numpy(),
            # another app's cycle: the agent's name or class, and the task out of the run's arguments
            "agent": [a if here else app_agent(n) for a, n, here in zip(agent.tolist(), names, ours, strict=True)],
            "models": column(roots, ATTR_MODEL).map(models_text).to_numpy(),
            "status": status.to_numpy(),
            "task": [
                ("" if t is None or t != t else str(t)) if here else app_task(t)
                for t, here in zip(inputs, ours, strict=True)
            ],
            "session_id": column(roots, ATTR_SESSION).to_numpy(),
            "user": column(roots, ATTR_USER).to_numpy(),  # who started it on a shared cogscope (else None)
            "replay_of": column(roots, ATTR_REPLAY_OF).to_numpy(),
            "cogscope": ours,
            "tool_s": pd.to_numeric(column(roots, ATTR_TOOL_S), errors="coerce").to_numpy(),
            "steps": pd.to_numeric(column(roots, ATTR_STEPS), errors="coerce").to_numpy(),
        }
    ).assign(
        start_time=lambda f: pd.to_datetime(f["start_time"], utc=True),
        end_time=lambda f: pd.to_datetime(f["end_time"], utc=True),
    )


def cycles_table(
    roots: pd.DataFrame,
    calls: pd.DataFrame,
    prices: Prices,
    *,
    steps: pd.Series | None = None,
    tool_s: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per cycle (CYCLE_COLUMNS) from `roots_table` rows and their `calls_table` calls.

    `steps` (trace_id -> count) is None when the steps were not read: the column is then missing values.
    `tool_s` (trace_id -> seconds) fills in the time in tools of cycles whose root did not record it."""
    table = roots.set_index("trace_id")
    calls = calls[isin(calls["trace_id"], table.index)] if len(calls) else calls
    if len(calls):
        table = table.join(sum_calls(priced(calls, prices), "trace_id"))
    for name in ("llm_calls", "prompt_tokens", "completion_tokens"):
        table[name] = (table[name] if name in table else pd.Series(0, index=table.index)).fillna(0).astype("int64")
    table["model_s"] = (table["model_s"] if "model_s" in table else pd.Series(0.0, index=table.index)).fillna(0.0)
    cost = table["cost_usd"] if "cost_usd" in table else pd.Series(0.0, index=table.index)
    table["cost_usd"] = cost.where(table["llm_calls"] > 0, 0.0).astype(float)
    table["tokens"] = table["prompt_tokens"] + table["completion_tokens"]
    if len(calls) and (table["models"] == "").any():
        table["models"] = table["models"].where(table["models"] != "", models_of_calls(calls).reindex(table.index))
        table["models"] = table["models"].fillna("")
    table["duration_s"] = (table["end_time"] - table["start_time"]).dt.total_seconds()
    if tool_s is not None and len(tool_s):
        table["tool_s"] = table["tool_s"].fillna(tool_s.reindex(table.index))
    table["tool_s"] = table["tool_s"].fillna(0.0).astype(float)
    table["steps"] = steps.reindex(table.index).fillna(0).astype("int64") if steps is not None else None
    return table.reset_index()[CYCLE_COLUMNS]


def models_of_calls(calls: pd.DataFrame) -> pd.Series:
    """trace_id -> its models as `models_text` writes them, from its calls: for cycles whose root does not
    name them (another app's). One role: `model`; several: `role=model, ...` in the order of first use."""
    used = calls[calls["model"] != ""].sort_values("start_time").drop_duplicates(["trace_id", "role", "model"])
    by_trace: dict[str, dict[str, list[str]]] = {}
    for trace_id, role, model in zip(used["trace_id"], used["role"], used["model"], strict=True):
        by_trace.setdefault(trace_id, {}).setdefault(role, []).append(model)
    return pd.Series(
        {
            trace_id: ", ".join(" / ".join(m) for m in roles.values())
            if len(roles) == 1
            else ", ".join(f"{r}={' / '.join(m)}" for r, m in roles.items())
            for trace_id, roles in by_trace.items()
        },
        dtype=object,
    )


# -- one cycle, whole: the Run tab's totals, `show`, the step-through ---------------------------------------
@dataclass(frozen=True)
class CycleTotals:
    """One cycle's row of the cycles table, as a record: what the Run tab and `show` print."""

    steps: int
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    duration_s: float
    cost_usd: float | None = None  # None: a model's price is unknown

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> CycleTotals:
        cost = row["cost_usd"]
        return cls(
            steps=int(row["steps"] or 0),
            llm_calls=int(row["llm_calls"]),
            prompt_tokens=int(row["prompt_tokens"]),
            completion_tokens=int(row["completion_tokens"]),
            duration_s=float(row["duration_s"]),
            cost_usd=None if cost is None or math.isnan(cost) else float(cost),
        )


@dataclass(frozen=True)
class TraceTables:
    """The three tables of one trace."""

    cycle: pd.Series | None  # None: the trace has no root span (yet)
    steps: list[StepView]
    calls: pd.DataFrame

    @property
    def totals(self) -> CycleTotals:
        if self.cycle is None:
            return CycleTotals(len(self.steps), len(self.calls), 0, 0, 0.0, 0.0)
        return CycleTotals.of(self.cycle)


def trace_tables(spans: pd.DataFrame, prices: Prices) -> TraceTables:
    """The tables of one trace from its whole spans (Phoenix's `get_spans_dataframe` or `spans_to_frame`)."""
    if spans.empty:
        return TraceTables(None, [], calls_table(pd.DataFrame()))
    flat = selected(spans)
    llm = flat[flat["span_kind"] == LLM_KIND]
    structure = flat[flat["span_kind"].isin((AGENT_KIND, CHAIN_KIND))]
    calls = priced(calls_table(llm, structure), prices)
    views = steps_from_frame(spans)
    roots = flat[flat["parent_id"].isna()]
    if roots.empty:
        return TraceTables(None, views, calls)
    cycles = cycles_table(
        roots_table(roots.head(1)), calls, prices, steps=pd.Series({roots["trace_id"].iloc[0]: len(views)})
    )
    return TraceTables(cycles.iloc[0], views, calls)


def cycle_totals(spans: Sequence[ReadableSpan], prices: Prices) -> CycleTotals:
    """One cycle's totals straight from its finished spans, without building its tables.

    The same rules as `trace_tables(spans_to_frame(spans), prices).totals` (tests/test_telemetry_tables.py
    holds them equal): tokens and cost summed over LLM spans, a call without tokens costs 0, one unknown price
    makes the cost unknown, the duration is the root span's, the steps are its `Step n` spans. A frame costs
    tens of milliseconds of pandas' fixed costs; this is what lets a cycle's result reach its caller at once.
    """
    roots = [s for s in spans if s.parent is None]
    calls = [s for s in spans if (s.attributes or {}).get(KIND) == LLM_KIND]
    prompt = completion = 0
    costs: list[float] = []
    for call in calls:
        attributes = call.attributes or {}
        tokens_in = token_count(attributes.get(PROMPT_TOKENS))
        tokens_out = token_count(attributes.get(COMPLETION_TOKENS))
        prompt, completion = prompt + tokens_in, completion + tokens_out
        if tokens_in + tokens_out == 0:
            costs.append(0.0)
            continue
        model = attributes.get(MODEL_NAME)
        p_in, p_out = prices.per_million("" if model is None else str(model))
        costs.append((tokens_in * p_in + tokens_out * p_out) / 1e6)
    steps = step_count(spans)
    if not roots:
        return CycleTotals(steps, len(calls), 0, 0, 0.0, 0.0)
    root = roots[0]
    duration = ((root.end_time or 0) - (root.start_time or 0)) / 1e9
    cost = math.fsum(costs) if calls else 0.0
    return CycleTotals(
        steps=steps,
        llm_calls=len(calls),
        prompt_tokens=prompt,
        completion_tokens=completion,
        duration_s=duration,
        cost_usd=None if math.isnan(cost) else cost,
    )
