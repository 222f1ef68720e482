"""Cost of LLM calls, summed over LLM spans only (AGENT spans repeat the totals), priced by `prices.Prices`.

A model with no known price has cost NaN, shown as "unknown" — never 0.
"""

from __future__ import annotations

import math

import pandas as pd

from .prices import Prices

DEFAULT_PRICES = Prices()


def llm_costs(
    llm: pd.DataFrame, model: str, prompt: str, completion: str, prices: Prices = DEFAULT_PRICES
) -> pd.Series:
    """Cost in USD of each LLM call (row) of `llm`; NaN where the model's price is unknown."""
    if llm.empty:
        return pd.Series(dtype=float, index=llm.index)
    per_model = {m: prices.per_million(m) for m in llm[model].fillna("").astype(str).unique()}
    models = llm[model].fillna("").astype(str)
    p_in = models.map(lambda m: per_model[m][0])
    p_out = models.map(lambda m: per_model[m][1])
    prompt_tokens = pd.to_numeric(llm[prompt], errors="coerce").fillna(0)
    completion_tokens = pd.to_numeric(llm[completion], errors="coerce").fillna(0)
    return (prompt_tokens * p_in + completion_tokens * p_out) / 1e6


def format_cost(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return f"${value:,.6f}" if value < 0.01 else f"${value:,.4f}"
