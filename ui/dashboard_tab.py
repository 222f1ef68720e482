"""The Dashboard tab: what one cycle costs, where it goes, and what that becomes per month."""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import gradio as gr
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from cogscope import agents
from cogscope.telemetry import (
    STATUSES,
    CycleFigures,
    Prices,
    Scope,
    breakdown,
    measured_interval,
    per_cycle,
    price_map_models,
    select,
    summary,
    usd,
    what_if,
)

from .errors import UsageError
from .inputs import TIME_WINDOWS, parse_lines, parse_models
from .pickers import SOURCES, chosen_project, chosen_user, project_pickers
from .render import inline, usd_cells
from .runtime import Runtime

WINDOWS = TIME_WINDOWS
TABLE_COLUMNS = ["time (UTC)", "agent", "status", "LLM calls", "tokens", "duration", "cost", "trace", "Phoenix"]
PHOENIX_COLUMN = TABLE_COLUMNS.index("Phoenix")  # a click on this cell follows the link, not the row
TABLE_CELLS: list[Literal["str", "markdown"]] = ["markdown" if c == "Phoenix" else "str" for c in TABLE_COLUMNS]
TABLE_ROWS = 500  # newest cycles shown in the table
PLOT_POINTS = 400  # the cost-over-time plot shows at most this many points (means over equal time bins)

_cache: dict[tuple[int, str], CycleFigures] = {}
_cache_lock = threading.Lock()


def _figures(runtime: Runtime, project: str) -> CycleFigures:
    with _cache_lock:
        figures = _cache.get((id(runtime), project))
        if figures is None:
            figures = _cache[(id(runtime), project)] = CycleFigures(runtime.client(), project)
        return figures


CSV_DIR = Path(tempfile.gettempdir()) / "cogscope-csv"
CSV_KEEP_S = 600  # Gradio copies a returned file into its own cache at once; older CSVs here are removed


def _csv_path() -> Path:
    """A fresh CSV file for this refresh; the ones older than CSV_KEEP_S go, so refreshing fills no disk."""
    CSV_DIR.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - CSV_KEEP_S
    for old in CSV_DIR.glob("cogscope-cycles-*.csv"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass
    handle, name = tempfile.mkstemp(suffix=".csv", prefix="cogscope-cycles-", dir=CSV_DIR)
    os.close(handle)
    return Path(name)


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:,.1f} s"


def prices_note(prices: Prices) -> str:
    """Which prices the figures use."""
    source = f"the prices file `{prices.source}`, then " if prices.source else ""
    return (
        f"Prices: {source}LiteLLM's price map; the bundled local model is free. "
        "Set the file with `COGSCOPE_PRICES=FILE` (or `cogscope ui --prices FILE`): "
        "the Traces list, `cogscope traces`, `show` and `cost` read the same one."
    )


EVERY_ROLE = "every role"


def _model_choices() -> list[tuple[str, str]]:
    return [(f"{m} (${p_in:g} / ${p_out:g})", m) for m, p_in, p_out in price_map_models()]


def add_what_if(role: str | None, model: str | None, text: str) -> Any:
    """Append ROLE=MODEL (or MODEL alone for every role) to the what-if lines, replacing that role's line."""
    if not model:
        return gr.skip()
    role = (role or "").strip()
    line = model if role in ("", EVERY_ROLE) else f"{role}={model}"
    key = line.split("=", 1)[0] if "=" in line else None
    kept = [
        old
        for old in (text or "").splitlines()
        if old.strip() and (old.split("=", 1)[0].strip() if "=" in old else None) != key
    ]
    return "\n".join([*kept, line])


def cost_over_time(table: pd.DataFrame) -> pd.DataFrame:
    """Cost per cycle against time: every cycle when there are few, else the mean over PLOT_POINTS equal bins
    (100,000 points would stall the browser and hide the trend)."""
    frame = table[["start_time", "cost_usd"]].rename(columns={"start_time": "time", "cost_usd": "cost (USD)"})
    if len(frame) <= PLOT_POINTS:
        return frame
    span = (frame["time"].max() - frame["time"].min()) / PLOT_POINTS
    step = max(span.ceil("s"), pd.Timedelta(seconds=1))
    binned = frame.set_index("time")["cost (USD)"].resample(step).mean().dropna()
    return binned.rename("cost (USD)").reset_index()


def time_axis_format(times: pd.Series) -> str:
    """A d3 time format for an axis over `times`: seconds for a few minutes, days for weeks. (Vega-Lite's own
    choice prints ':54' for seconds and a 12-hour clock, which reads as the wrong time.)"""
    span = (times.max() - times.min()) if len(times) else pd.Timedelta(0)
    if span < pd.Timedelta(minutes=10):
        return "%H:%M:%S"
    if span < pd.Timedelta(days=2):
        return "%H:%M"
    return "%b %d %H:%M" if span < pd.Timedelta(days=14) else "%b %d"


def _headroom(values: pd.Series) -> list[float | None]:
    """A y range from 0 to a little over the largest value, so the top bar or line is not cut by the frame."""
    top = pd.to_numeric(values, errors="coerce").max() if len(values) else math.nan
    return [0, float(top) * 1.15] if top == top and top > 0 else [0, None]


class DashboardView(NamedTuple):
    """What one Refresh shows, in the order of the tab's outputs (a tuple, as Gradio takes it)."""

    numbers: Any  # markdown: the figures, the projection, the what-if, cost shares
    cost_plot: Any
    step_plot: Any
    latency_plot: Any
    role_plot: Any
    table: Any  # the newest TABLE_ROWS cycles
    trace_ids: Any  # the table's trace ids, row by row (a row click opens one in the Traces tab)
    csv: Any  # path of the CSV of every cycle in the window, or None
    role_choices: Any  # the what-if's role picker
    message: str


def _scope(window: str, agent: str, session: str, status: str, source: str, user: str | None) -> Scope:
    """The filters as a telemetry.Scope ("all" and blanks: no filter)."""
    delta = WINDOWS.get(window)
    return Scope(
        since=datetime.now(UTC) - delta if delta else None,
        agent=None if agent in ("", "all") else agent,
        session=(session or "").strip() or None,
        status=None if status in ("", "all") else status,
        source=SOURCES.get(source),
        user=user,
    )


def _figures_lines(figs: dict[str, Any], interval_s: float, measured: float | None) -> list[str]:
    """The headline, the projection's formula, the per-cycle table, where the time goes, the unknown prices."""
    p = figs["projection"]
    per = figs["per_cycle"]
    c = per["cost_usd"]
    lines = [
        f"### {figs['cycle_count']:,} cycle{'' if figs['cycle_count'] == 1 else 's'} · "
        f"cost per cycle **{usd(c['mean'])}** (p95 {usd(c['p95'])}) · "
        f"**{usd(p.monthly)}/month** at one cycle every {interval_s:g} s",
        "",
        f"`{p.formula()}`",
        "",
        "| per cycle | mean | p50 | p95 | max |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, key, fmt in (
        ("LLM calls", "llm_calls", "{:,.2f}"),
        ("prompt tokens", "prompt_tokens", "{:,.0f}"),
        ("completion tokens", "completion_tokens", "{:,.0f}"),
        ("cycle duration (s)", "duration_s", "{:,.2f}"),
        ("LLM call latency (s)", "latency_s", "{:,.2f}"),
    ):
        s = figs[key] if key == "latency_s" else per[key]
        lines.append(
            f"| {label} | "
            + " | ".join(fmt.format(s[k]) if not math.isnan(s[k]) else "–" for k in ("mean", "p50", "p95", "max"))
            + " |"
        )
    model_s, tool_s = figs["model_s"], figs["tool_s"]
    both = model_s + tool_s
    lines += [
        "",
        f"Time in the model {_seconds(model_s)}"
        + (f" ({model_s / both:.0%})" if both else "")
        + f" · in tools {_seconds(tool_s)}"
        + (f" ({tool_s / both:.0%})" if both else "")
        + " · "
        f"error rate {figs['error_rate']:.1%} · max-steps rate {figs['max_steps_rate']:.1%} · "
        f"per day {usd(p.daily)}" + (f" · measured interval {measured:.1f} s" if measured else ""),
    ]
    for hint in figs["unknown_prices"].values():
        lines.append(f"\n⚠️ Unknown price: {hint}")
    return lines


def _what_if_line(
    table: pd.DataFrame, calls: pd.DataFrame, prices: Prices, mapping: dict[str, str], interval_s: float
) -> str:
    try:
        w = what_if(table, calls, prices, mapping, interval_s)
    except ValueError as e:
        return f"\n❌ What-if: {inline(e)}"
    chosen = ", ".join(f"{EVERY_ROLE if r == '*' else r} on {m}" for r, m in w["models"].items())
    return (
        f"\n**What-if** ({chosen}): {usd(w['old_monthly'])}/month → "
        f"{usd(w['new_monthly'])}/month ({'+' if w['difference'] >= 0 else '−'}"
        f"{usd(abs(w['difference']))}/month) — {w['note']}"
    )


def _share_lines(roles: pd.DataFrame, models: pd.DataFrame) -> list[str]:
    lines = []
    for by, frame in (("role", roles), ("model", models)):
        shares = ", ".join(
            f"{inline(getattr(r, by))} {usd(r.cost_usd)} ({r.share:.0%})"
            for r in frame.itertuples()
            if not math.isnan(r.share)
        )
        if shares:
            lines.append(f"\nCost by {by} (window total): {shares}")
    return lines


def _plots(table: pd.DataFrame, calls: pd.DataFrame, roles: pd.DataFrame) -> tuple[Any, Any, Any, Any]:
    """Cost over time, tokens per step, LLM call latency, cost by role."""
    over_time = cost_over_time(table)
    # UTC digits whatever the browser's time zone (Vega-Lite reads a time without a zone as local): the same
    # clock as the table below
    over_time["time"] = over_time["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    cost_plot = gr.LinePlot(
        value=over_time, x_axis_format=time_axis_format(over_time["time"]), y_lim=_headroom(over_time["cost (USD)"])
    )
    per_step = (calls.assign(tokens=calls["prompt_tokens"] + calls["completion_tokens"])
                .dropna(subset=["step"]).groupby("step", as_index=False)["tokens"].mean()
                .rename(columns={"tokens": "mean tokens"}))  # fmt: skip
    per_step["step"] = per_step["step"].astype(int).astype(str)
    bins = pd.cut(calls["latency_s"], bins=min(12, max(1, calls["latency_s"].nunique())))
    latency = bins.value_counts(sort=False).rename_axis("latency (s)").reset_index(name="LLM calls")
    latency["latency (s)"] = [f"{i.left:.2f}–{i.right:.2f}" for i in latency["latency (s)"]]
    by_role = roles[["role", "cost_usd"]].rename(columns={"cost_usd": "cost (USD)"}).fillna(0.0)
    latency_plot = gr.BarPlot(
        value=latency, sort=latency["latency (s)"].tolist(), y_lim=_headroom(latency["LLM calls"])
    )  # bins in order, not A-Z
    return (
        cost_plot,
        gr.BarPlot(value=per_step, y_lim=_headroom(per_step["mean tokens"])),
        latency_plot,
        gr.BarPlot(value=by_role, y_lim=_headroom(by_role["cost (USD)"])),
    )


def _grid(shown: pd.DataFrame, runtime: Runtime) -> pd.DataFrame:
    """The table's rows, as shown (TABLE_COLUMNS)."""
    return pd.DataFrame(
        {
            "time (UTC)": shown["start_time"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "agent": shown["agent"],
            "status": shown["status"],
            "LLM calls": shown["llm_calls"],
            "tokens": shown["tokens"],
            "duration": [f"{s:.1f} s" for s in shown["duration_s"].tolist()],
            "cost": usd_cells(shown["cost_usd"]),
            "trace": shown["trace_id"],
            "Phoenix": [f"[open]({runtime.trace_url(t)})" for t in shown["trace_id"].tolist()],
        }
    )


def _no_cycles(user: str | None, new: int) -> DashboardView:
    return DashboardView(
        "No cycles match. Run some in the Run tab, or widen the filters"
        + (" (or show everyone's cycles)." if user else "."),
        pd.DataFrame(),
        pd.DataFrame(),
        pd.DataFrame(),
        pd.DataFrame(),
        pd.DataFrame(columns=TABLE_COLUMNS),
        [],
        None,
        gr.skip(),
        f"{new} new cycle(s) fetched",
    )


def dashboard(
    runtime: Runtime,
    window: str,
    agent: str,
    session: str,
    status: str,
    interval: float | None,
    what_if_text: str,
    project: str | None = None,
    source: str = "all",
    user: str | None = None,
) -> DashboardView:
    """What the tab shows for the filters (DashboardView).

    `project`: any Phoenix project (default: the one cogscope records into); `source`: a key of SOURCES;
    `user`: only the cycles this user started (None: everyone's)."""
    prices = runtime.settings.prices
    project = chosen_project(runtime, project)
    mapping = parse_models(parse_lines(what_if_text))
    if "default" in mapping:
        mapping["*"] = mapping.pop("default")
    scope = _scope(window, agent, session, status, source, user)
    figures = _figures(runtime, project)
    with _cache_lock:
        new = figures.refresh(scope.since)  # only the window asked for, and only what is not held yet
    cycles, calls = select(figures, scope)
    if cycles.empty:
        return _no_cycles(user, new)
    measured = measured_interval(cycles) if scope.session else None
    interval_s = float(interval) if interval and interval > 0 else (measured or 5.0)
    table = per_cycle(figures, cycles, calls, prices)
    figs = summary(table, calls, interval_s=interval_s, prices=prices)
    lines = _figures_lines(figs, interval_s, measured)
    if mapping:
        lines.append(_what_if_line(table, calls, prices, mapping, interval_s))
    roles = breakdown(calls, prices, "role")
    lines += _share_lines(roles, breakdown(calls, prices, "model"))
    plots = _plots(table, calls, roles)
    newest = table.sort_values("start_time", ascending=False)
    shown = newest.head(TABLE_ROWS)  # a browser table of 100,000 rows helps nobody; the CSV has them all
    grid = _grid(shown, runtime)
    csv = _csv_path()
    # Arrow's writer: 4x faster than DataFrame.to_csv at 100,000 rows (0.23 s vs 0.93 s, mostly datetimes)
    pacsv.write_csv(pa.Table.from_pandas(newest, preserve_index=False), csv)
    rows_note = (
        f"Showing the newest {len(shown):,} of {len(newest):,} cycles (the CSV holds all of them). "
        if len(shown) < len(newest)
        else ""
    )
    return DashboardView(
        "\n".join(lines),
        *plots,
        grid,
        shown["trace_id"].tolist(),
        str(csv),
        gr.update(choices=[EVERY_ROLE, *sorted(roles["role"].astype(str))]),
        f"{new} new cycle(s) fetched · {len(figures.cycles):,} cached · {rows_note}"
        "Click a row to step through that cycle in the Traces tab.",
    )


@dataclass
class _DashboardTab:
    """The tab's filters and outputs, in the order the Refresh event takes and fills them."""

    filters: list[Any]  # window, agent, session, status, interval, what-if, project, source, whose
    outputs: list[Any]  # as DashboardView
    refresh: Any
    project: Any
    table: Any
    trace_ids: Any


def _filter_row() -> tuple[list[Any], Any]:
    """(window, agent, session, status, interval), and the Refresh button."""
    with gr.Row():
        window = gr.Dropdown(list(WINDOWS), value="last 24 hours", label="Window", scale=1)
        agent = gr.Dropdown(["all", *agents.names()], value="all", allow_custom_value=True, label="Agent", scale=1)
        session = gr.Textbox(label="Session", placeholder="e.g. heartbeat-1a2b3c4d", scale=1)
        status = gr.Dropdown(["all", *STATUSES], value="all", label="Status", scale=1)
        interval = gr.Number(
            value=5,
            minimum=0,
            label="Cycle interval (s)",
            elem_id="dash-interval",
            scale=1,
            info="0: the session's measured interval",
        )
        refresh = gr.Button("Refresh", variant="primary", elem_id="dash-refresh", scale=1)
    return [window, agent, session, status, interval], refresh


def _what_if_controls(runtime: Runtime) -> tuple[Any, Any]:
    """The (folded) prices note and what-if: (the what-if text box, the role picker Refresh fills)."""
    with gr.Accordion("Prices and what-if", open=False, elem_id="dash-what-if"):
        gr.Markdown(prices_note(runtime.settings.prices), elem_id="dash-prices")
        with gr.Row():
            role_pick = gr.Dropdown(
                [EVERY_ROLE], value=EVERY_ROLE, allow_custom_value=True, label="Role", elem_id="dash-role", scale=1
            )
            model_pick = gr.Dropdown(
                _model_choices(),
                value=None,
                label="Re-price it with (LiteLLM's price map, USD per million tokens in / out)",
                elem_id="dash-model",
                scale=3,
            )
            add = gr.Button("Add to what-if", elem_id="dash-add-what-if", scale=1)
        what_if_box = gr.Textbox(
            label="What-if: ROLE=MODEL per line (MODEL alone: every role); press Refresh to see it",
            lines=2,
            placeholder="reasoning=openai/gpt-4o-mini",
            elem_id="dash-what-if-text",
        )
        # api_name=False (no API endpoint) works in Gradio 6 but its hints say str | None
        add.click(add_what_if, inputs=[role_pick, model_pick, what_if_box], outputs=what_if_box, api_name=False)  # type: ignore[arg-type]
    return what_if_box, role_pick


def _plot_rows() -> list[Any]:
    """Cost over time, tokens per step, LLM call latency, cost by role: two rows of two."""
    with gr.Row():
        cost_plot = gr.LinePlot(
            x="time", y="cost (USD)", x_title="time (UTC)", title="Cost per cycle over time", height=260,
            elem_id="dash-cost-plot",
        )  # fmt: skip
        step_plot = gr.BarPlot(
            x="step", y="mean tokens", title="Tokens per step (mean)", height=260, elem_id="dash-step-plot"
        )
    with gr.Row():
        latency_plot = gr.BarPlot(
            x="latency (s)", y="LLM calls", title="LLM call latency", height=260, elem_id="dash-latency-plot"
        )
        role_plot = gr.BarPlot(x="role", y="cost (USD)", title="Cost by role", height=260, elem_id="dash-role-plot")
    return [cost_plot, step_plot, latency_plot, role_plot]


def _dashboard_layout(runtime: Runtime) -> _DashboardTab:
    project, source, whose = project_pickers(runtime, "dash")
    filters, refresh = _filter_row()
    what_if_box, role_pick = _what_if_controls(runtime)
    message = gr.Markdown("", elem_id="dash-message")
    numbers = gr.Markdown("Press Refresh to read the cycles from Phoenix.", elem_id="dash-numbers")
    plots = _plot_rows()
    table = gr.Dataframe(
        headers=TABLE_COLUMNS,
        datatype=TABLE_CELLS,
        interactive=False,
        label="Cycles (click a row to step through it in the Traces tab)",
        elem_id="dash-table",
    )
    trace_ids = gr.State([])
    download = gr.DownloadButton("Download CSV", elem_id="dash-csv")
    return _DashboardTab(
        # the API's parameters: the newer ones last
        filters=[*filters, what_if_box, project, source, whose],
        outputs=[numbers, *plots, table, trace_ids, download, role_pick, message],
        refresh=refresh,
        project=project,
        table=table,
        trace_ids=trace_ids,
    )


def _on_refresh(runtime: Runtime) -> Callable[..., tuple[Any, ...]]:
    # explicit parameters: Gradio finds the gr.Request parameter (who is signed in) by its type hint
    def on_refresh(
        window_v: str,
        agent_v: str,
        session_v: str,
        status_v: str,
        interval_v: float | None,
        what_if_v: str,
        project_v: str,
        source_v: str,
        whose_v: str,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        try:
            return dashboard(
                runtime,
                window_v,
                agent_v,
                session_v,
                status_v,
                interval_v,
                what_if_v,
                project_v,
                source_v,
                user=chosen_user(whose_v, request),
            )
        except (UsageError, agents.AgentsError, Exception) as e:  # noqa: B014 - any failure: say it, stay up
            return (gr.skip(),) * 9 + (f"❌ {inline(e)}",)

    return on_refresh


def build_dashboard_tab(runtime: Runtime, open_in_traces: Callable[..., None] | None = None) -> None:
    """`open_in_traces(table, trace_ids_state, project)` wires a row click to the Traces tab (see app.py)."""
    tab = _dashboard_layout(runtime)
    tab.refresh.click(_on_refresh(runtime), inputs=tab.filters, outputs=tab.outputs, api_name="dashboard")
    if open_in_traces is not None:
        open_in_traces(tab.table, tab.trace_ids, tab.project)
