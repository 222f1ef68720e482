"""`cogscope cost`: what one cycle costs and what that becomes per month — a gate for rolling an agent out."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cogscope.defaults import EXIT_FAILED, EXIT_OK
from cogscope.telemetry import (
    CycleFigures,
    Scope,
    breakdown,
    cycle_records,
    measured_interval,
    per_cycle,
    select,
    summary,
    usd,
    what_if,
)

from .config import Settings
from .errors import UsageError
from .inputs import parse_duration, parse_models, parse_money

EXIT_OVER_BUDGET = EXIT_FAILED  # `cost --budget`: the projection exceeds the budget


def _clean(value: Any) -> Any:
    """NaN (an unknown price) -> null, so the JSON is valid and says 'unknown' plainly."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True)
class CostReport:
    """What `cogscope cost` found: the figures of the cycles in the window, by role and model, the what-if."""

    since: str  # the window as typed, e.g. 24h
    agent: str | None
    interval: float  # seconds between cycles the projection assumes
    budget: float | None
    table: Any  # pandas.DataFrame: one row per cycle
    figs: dict[str, Any]  # telemetry.summary
    roles: Any  # pandas.DataFrame: telemetry.breakdown by role
    models: Any  # pandas.DataFrame: by model
    scenario: dict[str, Any] | None  # telemetry.what_if, when --what-if was given
    prices_file: str | None

    @property
    def projection(self) -> Any:
        return self.figs["projection"]

    @property
    def over(self) -> bool:
        monthly = self.projection.monthly
        return self.budget is not None and not math.isnan(monthly) and monthly > self.budget


def _what_if_mapping(args: argparse.Namespace, prices: Any) -> dict[str, str]:
    """--what-if ROLE=MODEL as a mapping (MODEL alone: every role, `*`); UsageError for a model with no price."""
    mapping = parse_models(args.what_if, "--what-if")
    if "default" in mapping:
        mapping["*"] = mapping.pop("default")
    for model in mapping.values():
        if not prices.known(model):
            raise UsageError(f"--what-if: unknown model {model!r}: {prices.unknown_hint(model)}")
    return mapping


def _read_figures(settings: Settings, since_s: float) -> tuple[Any, datetime]:
    """The cycles and LLM calls of the window, read from Phoenix: (telemetry.CycleFigures, the window's start)."""
    from .runtime import Runtime

    runtime = Runtime.start(settings)
    try:
        if settings.project_named:
            runtime.check_project()
        figures = CycleFigures(runtime.client(), settings.project)
        since = datetime.now(UTC) - timedelta(seconds=since_s)
        figures.refresh(since)
    finally:
        runtime.close()
    return figures, since


def _no_cycles(args: argparse.Namespace, settings: Settings) -> UsageError:
    where = f" of agent {args.agent}" if args.agent else ""
    where += f" in session {args.session}" if args.session else ""
    where += f" started by {args.user}" if args.user else ""
    where += {"cogscope": " run in cogscope", "other": " from other apps"}.get(args.source, "")
    return UsageError(
        f"no cycles{where} in the last {args.since} (Phoenix project {settings.project!r}); run some, or widen --since"
    )


def cost_command(args: argparse.Namespace, settings: Settings) -> int:
    since_s = parse_duration(args.since, "--since")
    interval = parse_duration(args.interval, "--interval") if args.interval else None
    budget = parse_money(args.budget, "--budget") if args.budget is not None else None
    prices = settings.prices  # COGSCOPE_PRICES, or this command's --prices
    mapping = _what_if_mapping(args, prices)
    figures, since = _read_figures(settings, since_s)
    source = None if args.source == "all" else args.source
    scope = Scope(since=since, agent=args.agent, session=args.session, source=source, user=args.user)
    cycles, calls = select(figures, scope)
    if cycles.empty:
        raise _no_cycles(args, settings)
    if interval is None:
        interval = (measured_interval(cycles) if args.session else None) or 5.0
    table = per_cycle(figures, cycles, calls, prices)
    report = CostReport(
        since=args.since,
        agent=args.agent,
        interval=interval,
        budget=budget,
        table=table,
        figs=summary(table, calls, interval_s=interval, prices=prices),
        roles=breakdown(calls, prices, "role"),
        models=breakdown(calls, prices, "model"),
        scenario=what_if(table, calls, prices, mapping, interval) if mapping else None,
        prices_file=prices.source,
    )
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(json.dumps(_clean(_json_report(report)), indent=2, default=str, allow_nan=False))
    else:
        _print_report(report)
    if budget is not None and math.isnan(report.projection.monthly):
        raise UsageError(
            "the projection is unknown (a model has no price); "
            "add it to a prices file (COGSCOPE_PRICES or --prices) before gating"
        )
    return EXIT_OVER_BUDGET if report.over else EXIT_OK


def _json_report(report: CostReport) -> dict[str, Any]:
    figs, projection = report.figs, report.projection
    out: dict[str, Any] = {"window": report.since, **{k: v for k, v in figs.items() if k != "projection"}}
    out["projection"] = {
        "interval_s": report.interval, "cycles_per_day": projection.cycles_per_day,
        "cycles_per_month": projection.cycles_per_month, "daily_usd": projection.daily,
        "monthly_usd": projection.monthly, "monthly_p95_usd": projection.monthly_p95,
        "formula": projection.formula(),
    }  # fmt: skip
    out["by_role"] = report.roles.to_dict("records")
    out["by_model"] = report.models.to_dict("records")
    out["what_if"] = report.scenario
    out["budget_usd_per_month"] = report.budget
    out["over_budget"] = report.over
    out["prices_file"] = report.prices_file
    out["cycles"] = cycle_records(report.table.sort_values("start_time", ascending=False))
    return out


def _print_figures(report: CostReport) -> None:
    """The per-cycle figures: calls, tokens, durations, latency, errors, cost."""
    figs = report.figs
    per = figs["per_cycle"]
    c = per["cost_usd"]
    print(
        f"{figs['cycle_count']} cycles in the last {report.since}" + (f", agent {report.agent}" if report.agent else "")
    )
    print(
        f"LLM calls per cycle     mean {per['llm_calls']['mean']:.2f}  p95 {per['llm_calls']['p95']:.0f}  "
        f"max {per['llm_calls']['max']:.0f}"
    )
    print(f"prompt tokens / cycle   mean {per['prompt_tokens']['mean']:,.0f}  p95 {per['prompt_tokens']['p95']:,.0f}")
    print(
        f"completion tokens       mean {per['completion_tokens']['mean']:,.0f}  "
        f"p95 {per['completion_tokens']['p95']:,.0f}"
    )
    print(
        f"cycle duration          p50 {per['duration_s']['p50']:.2f} s  "
        f"p95 {per['duration_s']['p95']:.2f} s  max {per['duration_s']['max']:.2f} s"
    )
    print(f"LLM latency             p50 {figs['latency_s']['p50']:.2f} s  p95 {figs['latency_s']['p95']:.2f} s")
    print(f"time in model / tools   {figs['model_s']:.1f} s / {figs['tool_s']:.1f} s")
    print(f"error rate / max steps  {figs['error_rate']:.1%} / {figs['max_steps_rate']:.1%}")
    print(f"cost per cycle          mean {usd(c['mean'])}  p95 {usd(c['p95'])}")
    for hint in figs["unknown_prices"].values():
        print(f"  unknown price: {hint}")


def _print_report(report: CostReport) -> None:
    """The table format: the figures, the projection, by role and by model, the what-if and the budget."""
    _print_figures(report)
    projection, scenario = report.projection, report.scenario
    print(f"projection              {projection.formula()}")
    print(f"per day / per month     {usd(projection.daily)} / {usd(projection.monthly)}")
    print("by role:")
    for row in report.roles.itertuples():
        share = "" if math.isnan(row.share) else f" ({row.share:.0%})"
        print(f"  {row.role:<16}{row.llm_calls:>6} calls  {usd(row.cost_usd)}{share}")
    print("by model:")
    for row in report.models.itertuples():
        share = "" if math.isnan(row.share) else f" ({row.share:.0%})"
        print(f"  {row.model:<32}{row.llm_calls:>6} calls  {usd(row.cost_usd)}{share}")
    if scenario:
        print(
            f"what-if {scenario['models']}: {usd(scenario['old_monthly'])}/month -> "
            f"{usd(scenario['new_monthly'])}/month ({'+' if scenario['difference'] >= 0 else ''}"
            f"{usd(scenario['difference'])}); {scenario['note']}"
        )
    if report.budget is not None:
        verdict = "OVER" if report.over else "within"
        print(f"budget                  {usd(report.budget)}/month: projection is {verdict} budget")
