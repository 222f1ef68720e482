"""What a cycle's cost becomes per day and per month, and what it would be with other models (what-if).

The month is 30 days of cycles around the clock: `cycles/month = 86,400 s/day / interval × 30`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .prices import Prices, usd
from .tables import price

SECONDS_PER_DAY = 86_400
DAYS_PER_MONTH = 30


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
            f"{DAYS_PER_MONTH} days = {self.cycles_per_month:,.0f} cycles/month × {usd(self.mean_cost)} mean/cycle "
            f"= {usd(self.monthly)}/month (p95 cycle: {usd(self.monthly_p95)}/month)"
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


def what_if(
    table: pd.DataFrame, calls: pd.DataFrame, prices: Prices, models_by_role: dict[str, str], interval_s: float
) -> dict[str, Any]:
    """Re-price the same recorded tokens with another model per role ('*' = every role): old vs new per month."""
    for model in models_by_role.values():
        if not prices.known(model):
            raise ValueError(prices.unknown_hint(model))
    n = max(1, len(table))
    old = float(price(calls, prices).sum()) / n if len(calls) else 0.0
    new = float(price(calls, prices, models_by_role).sum()) / n if len(calls) else 0.0
    old_p, new_p = project(old, old, interval_s), project(new, new, interval_s)
    return {
        "models": models_by_role,
        "old_monthly": old_p.monthly,
        "new_monthly": new_p.monthly,
        "difference": new_p.monthly - old_p.monthly,
        "note": "estimate: the same token counts re-priced; another model tokenizes and behaves differently",
    }
