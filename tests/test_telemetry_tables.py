"""The one pricing function on hand-built calls: a known price, an unknown one, and a call that failed."""

from __future__ import annotations

import math

import pandas as pd

from telemetry import Prices
from telemetry.tables import price


def calls(*rows: tuple[str, int, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"role": "heartbeat", "model": m, "prompt_tokens": p, "completion_tokens": c} for m, p, c in rows]
    )


PRICES = Prices(overrides={"team/house-model": (2.0, 8.0)}, free=frozenset({"local"}))


def test_price_per_call_from_the_prices_file_or_free():
    cost = price(calls(("team/house-model", 1000, 100), ("local", 5000, 500)), PRICES).tolist()
    assert cost == [1000 * 2.0 / 1e6 + 100 * 8.0 / 1e6, 0.0]


def test_a_model_of_unknown_price_is_nan_never_zero():
    assert math.isnan(price(calls(("nobody/knows", 10, 1)), PRICES).iloc[0])


def test_a_call_that_failed_before_the_model_answered_costs_nothing():
    """OpenInference writes the model name and tokens only when a call succeeds: a timed-out call has neither.
    It must not make its cycle's cost unknown."""
    assert price(calls(("", 0, 0), ("team/house-model", 1000, 0)), PRICES).tolist() == [0.0, 1000 * 2.0 / 1e6]


def test_what_if_reprices_a_role():
    cost = price(calls(("local", 1_000_000, 0)), PRICES, {"heartbeat": "team/house-model"})
    assert cost.tolist() == [2.0]
