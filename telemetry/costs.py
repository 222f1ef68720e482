"""Prices of LLM calls: LiteLLM's price map (its offline copy), the bundled local model at zero.

A model with no known price has cost NaN, shown as "unknown" — never 0.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import pandas as pd

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

FREE_MODELS = {"openai/smollm2-135m"}  # the bundled local model (see ui/local_llm.py)


@lru_cache(maxsize=512)
def price_per_token(model: str) -> tuple[float, float]:
    """(input, output) USD per token for a LiteLLM model id, or (nan, nan) when unknown."""
    if model in FREE_MODELS:
        return 0.0, 0.0
    import litellm

    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for candidate in candidates:
        entry = litellm.model_cost.get(candidate)
        if entry and entry.get("input_cost_per_token") is not None:
            return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)
    return math.nan, math.nan


def llm_costs(llm: pd.DataFrame, model: str, prompt: str, completion: str) -> pd.Series:
    """Cost in USD of each LLM call (row) of `llm`; NaN where the model's price is unknown."""
    if llm.empty:
        return pd.Series(dtype=float, index=llm.index)
    prices = llm[model].fillna("").astype(str).map(price_per_token)
    p_in = prices.map(lambda p: p[0])
    p_out = prices.map(lambda p: p[1])
    prompt_tokens = pd.to_numeric(llm[prompt], errors="coerce").fillna(0)
    completion_tokens = pd.to_numeric(llm[completion], errors="coerce").fillna(0)
    return prompt_tokens * p_in + completion_tokens * p_out


def format_cost(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return f"${value:,.6f}" if value < 0.01 else f"${value:,.4f}"
