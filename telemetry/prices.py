"""Prices per model: LiteLLM's price map (its offline copy), overridden and extended by a user prices file.

The prices file is TOML, model id -> input/output USD per million tokens:

    ["openai/gpt-4o-mini"]
    input = 0.15
    output = 0.60

    ["ollama/llama3.1"]
    input = 0
    output = 0

Models the caller names free (the bundled local model) cost 0. A model with no known price is `nan`
("unknown"), never 0. `usd` is how every view writes an amount.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TelemetryError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class PricesError(TelemetryError):
    pass


@functools.cache
def _offline_price_map() -> dict[str, Any]:
    """LiteLLM's offline price map, as `litellm.model_cost` holds it under LITELLM_LOCAL_MODEL_COST_MAP=True, read
    from the JSON file LiteLLM ships without importing LiteLLM: `import litellm` costs ~6 s of CPU, and `cogscope
    traces`, `show`, `cost` and `replay` need its prices, not its clients. Like LiteLLM's loader, it drops the
    `fallback_generalizations` block and serves each alias (`alias_of`, `aliases`) as its model's entry;
    tests/test_packages.py checks the result against `litellm.model_cost`."""
    spec = importlib.util.find_spec("litellm")  # finds the package without running its __init__
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            data = json.loads((Path(folder) / "model_prices_and_context_window_backup.json").read_text())
        except (OSError, ValueError):
            continue
        data.pop("fallback_generalizations", None)
        entries = {key: entry for key, entry in data.items() if isinstance(entry, dict)}
        pointers = {key: entry["alias_of"] for key, entry in entries.items() if isinstance(entry.get("alias_of"), str)}
        aliases: dict[str, str] = {}
        for key, entry in entries.items():
            names = entry.pop("aliases", None)
            if key in pointers or not isinstance(names, list):
                continue
            for alias in names:
                if (alias not in entries or alias in pointers) and alias not in aliases:
                    aliases[alias] = key
        for alias, target in pointers.items():
            entries.pop(alias)
            if target in entries and target not in pointers and alias not in aliases:
                aliases[alias] = target
        entries.update({alias: entries[target] for alias, target in aliases.items()})
        return entries
    import litellm  # an install without the file: LiteLLM's own loader

    return dict(litellm.model_cost)


def _price_map() -> Mapping[str, Any]:
    """`litellm.model_cost` once LiteLLM is loaded (it holds what `litellm.register_model` added) or when the user
    asked LiteLLM for its online map; otherwise the same offline map read from its file."""
    offline = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").strip().lower() == "true"
    if "litellm" in sys.modules or not offline:
        import litellm

        return litellm.model_cost
    return _offline_price_map()


def _litellm_price(model: str) -> tuple[float, float] | None:
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    cost_map = _price_map()
    for candidate in candidates:
        entry = cost_map.get(candidate)
        if entry and entry.get("input_cost_per_token") is not None:
            return float(entry["input_cost_per_token"]) * 1e6, float(entry.get("output_cost_per_token") or 0.0) * 1e6
    return None


def price_map_models() -> list[tuple[str, float, float]]:
    """Chat models of LiteLLM's price map as (model id with its provider, input, output USD per million), sorted:
    what a what-if can re-price with."""
    out: dict[str, tuple[float, float]] = {}
    for key, entry in _price_map().items():
        if not isinstance(entry, dict) or entry.get("mode") != "chat" or entry.get("input_cost_per_token") is None:
            continue
        provider = str(entry.get("litellm_provider") or "")
        model = key if "/" in key or not provider else f"{provider}/{key}"
        out[model] = (float(entry["input_cost_per_token"]) * 1e6, float(entry.get("output_cost_per_token") or 0) * 1e6)
    return sorted((m, p_in, p_out) for m, (p_in, p_out) in out.items())


@dataclass(frozen=True)
class Prices:
    """USD per million tokens, (input, output), per model id."""

    overrides: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    source: str | None = None
    free: frozenset[str] = frozenset()  # models that cost nothing (a local model)

    def per_million(self, model: str) -> tuple[float, float]:
        if model in self.overrides:
            return self.overrides[model]
        if model in self.free:
            return 0.0, 0.0
        return _litellm_price(model) or (math.nan, math.nan)

    def known(self, model: str) -> bool:
        return not math.isnan(self.per_million(model)[0])

    def unknown_hint(self, model: str) -> str:
        where = self.source or "a prices file (COGSCOPE_PRICES=FILE, or --prices FILE)"
        return (
            f'no price for {model!r}; add it to {where}: ["{model}"] input = ... output = ... (USD per million tokens)'
        )


def load_prices(path: str | Path | None, *, free: frozenset[str] = frozenset()) -> Prices:
    """The prices file at `path` (None: LiteLLM's map only); PricesError with one clear line when it is wrong."""
    if path is None:
        return Prices(free=free)
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PricesError(f"prices file {path} does not exist; give a TOML file of model -> input/output") from None
    except OSError as e:
        raise PricesError(f"cannot read prices file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise PricesError(f"prices file {path} is not valid TOML ({e}); see README for the format") from None
    overrides: dict[str, tuple[float, float]] = {}
    for model, entry in data.items():
        if not isinstance(entry, dict) or not {"input", "output"} <= set(entry):
            raise PricesError(
                f'prices file {path}: ["{model}"] needs input = ... and output = ... (USD per million tokens)'
            )
        try:
            p_in, p_out = float(entry["input"]), float(entry["output"])
        except (TypeError, ValueError):
            raise PricesError(f'prices file {path}: ["{model}"] prices must be numbers') from None
        if p_in < 0 or p_out < 0 or math.isnan(p_in) or math.isnan(p_out):
            raise PricesError(
                f'prices file {path}: ["{model}"] has a negative price; prices are USD per million tokens, >= 0'
            )
        overrides[model] = (p_in, p_out)
    return Prices(overrides=overrides, source=str(path), free=free)


def counted(n: int, noun: str) -> str:
    """A count as people read it: `1 step`, `2 steps`, `0 LLM calls`, `1,200 cycles`."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def usd(value: float | None) -> str:
    """An amount as people read it: `$1,234.56`, `$0.0123`, `$0.000150` (three significant digits below a cent),
    `$0`, and `unknown` for a missing or unknown amount (a model with no price)."""
    if value is None or not math.isfinite(value):
        return "unknown"
    sign, amount = ("-" if value < 0 else ""), abs(value)
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    if amount >= 0.01:
        return f"{sign}${amount:.4f}"
    decimals = min(12, 2 - math.floor(math.log10(amount)))
    return f"{sign}${amount:.{decimals}f}"
