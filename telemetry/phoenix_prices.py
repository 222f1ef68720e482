"""The prices file's models, registered in Phoenix, so that Phoenix's own cost of a cycle is cogscope's.

Phoenix computes each LLM span's cost once, as it stores the span, from its built-in price table and the custom
models people add (its "model pricing" settings: GraphQL `createModel` / `updateModel`). A model priced only in the
prices file (COGSCOPE_PRICES) would cost $0 there while every cogscope view shows its price, and a model the file
re-prices would cost there what Phoenix's table says. `register_prices` makes the two agree: for each model of the
prices file, one custom model in Phoenix

- named as the model id (`openai/house-model`), for any provider;
- whose name pattern is that model id exactly, `^openai/house\\-model$` (Phoenix searches the pattern in the LLM span's
  `llm.model_name`, which holds the model id cogscope ran; the anchors keep `openai/house-model-2` out);
- priced `input` / `output` USD per million tokens, as the file says (every prompt token at `input`, every
  completion token at `output`: what `tables.price` charges).

It is idempotent: a model already registered with the same prices is left alone, a changed price updates it (found by
its pattern, else its name), nothing is registered twice. Phoenix prefers custom models over its own table, and an
exact pattern over a looser one, so the file wins as it does in cogscope. Spans Phoenix stored before keep the cost
they were given (Phoenix never re-prices), and a model removed from the file stays registered until someone deletes
it in Phoenix. A Phoenix that cannot take them (a release without model pricing, a remote one where this user may not
change settings, an unreachable one) costs one warning line, never the cycle.

Phoenix reads custom models into memory every few seconds (PHOENIX_MODEL_REFRESH_S); after a change this waits that
long, so that the spans of the cycle that follows are priced with it.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from .phoenix_spans import phoenix_client
from .prices import Prices

log = logging.getLogger("cogscope.phoenix_prices")

# Phoenix 20.26's GenerativeModelStore re-reads custom models every 5 s; a change applies to spans stored after that
PHOENIX_MODEL_REFRESH_S = 5.0
_SETTLE_S = PHOENIX_MODEL_REFRESH_S + 2.0  # one refresh, and a margin for a busy Phoenix

_LIST = """query ($after: String) { generativeModels(first: 100, after: $after) {
  edges { node { id name provider namePattern kind tokenPrices { tokenType kind costPerMillionTokens } } }
  pageInfo { hasNextPage endCursor } } }"""
_CREATE = "mutation ($input: CreateModelMutationInput!) { createModel(input: $input) { model { id } } }"
_UPDATE = "mutation ($input: UpdateModelMutationInput!) { updateModel(input: $input) { model { id } } }"


class PhoenixRefused(Exception):
    """Phoenix did not take a query or change: the reason, in one line."""


@dataclass(frozen=True)
class CustomModel:
    """A custom model as Phoenix lists it: its id, name, pattern and (input, output) USD per million tokens."""

    id: str
    name: str
    pattern: str
    provider: str | None
    per_million: tuple[float, float] | None  # None: no input or no output price


def name_pattern(model: str) -> str:
    """The pattern that matches `model` and nothing else, as Phoenix searches it in `llm.model_name`."""
    return f"^{re.escape(model)}$"


def register_prices(phoenix_url: str, prices: Prices, *, settle: bool = True) -> int | None:
    """Register the prices file's models in the Phoenix at `phoenix_url` (see the module's docstring); returns how
    many it created or updated, or None when Phoenix refused (one warning line). `settle`: after a change, wait
    until Phoenix prices new spans with it."""
    if not prices.overrides:
        return 0
    try:
        http = phoenix_client(phoenix_url)._client  # Phoenix's own client: its URL, PHOENIX_API_KEY and headers
        changed = _register(http, prices)
    except (PhoenixRefused, httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        reason = str(e) if isinstance(e, PhoenixRefused) else f"{type(e).__name__}: {e}"
        log.warning(
            "cogscope: Phoenix at %s did not take the prices file's models (%s); Phoenix's own cost of their "
            "cycles stays its own, cogscope's views are not affected",
            phoenix_url,
            _short(reason),
        )
        return None
    if changed and settle:
        time.sleep(_SETTLE_S)
    return changed


def _register(http: Any, prices: Prices) -> int:
    custom = list(custom_models(http))
    changed = 0
    for model, (p_in, p_out) in sorted(prices.overrides.items()):
        pattern = name_pattern(model)
        mine = [m for m in custom if m.pattern == pattern and not m.provider] or [m for m in custom if m.name == model]
        if not mine:
            _graphql(http, _CREATE, {"input": _model_input(model, pattern, p_in, p_out)})
            changed += 1
            continue
        found = mine[0]
        if found.pattern == pattern and not found.provider and _same(found.per_million, (p_in, p_out)):
            continue
        _graphql(http, _UPDATE, {"input": {"id": found.id, **_model_input(found.name, pattern, p_in, p_out)}})
        changed += 1
    return changed


def custom_models(http: Any) -> Iterator[CustomModel]:
    """The custom models of the Phoenix `http` talks to (Phoenix lists them before its built-in ones)."""
    after: str | None = None
    while True:
        page = _graphql(http, _LIST, {"after": after})["generativeModels"]
        for edge in page["edges"]:
            node = edge["node"]
            if node["kind"] != "CUSTOM":
                return
            costs = {(p["kind"], p["tokenType"]): float(p["costPerMillionTokens"]) for p in node["tokenPrices"]}
            p_in, p_out = costs.get(("PROMPT", "input")), costs.get(("COMPLETION", "output"))
            yield CustomModel(
                id=str(node["id"]),
                name=str(node["name"]),
                pattern=str(node["namePattern"]),
                provider=node["provider"],
                per_million=None if p_in is None or p_out is None else (p_in, p_out),
            )
        if not page["pageInfo"]["hasNextPage"]:
            return
        after = page["pageInfo"]["endCursor"]


def _model_input(name: str, pattern: str, p_in: float, p_out: float) -> dict[str, Any]:
    return {
        "name": name,
        "provider": None,
        "namePattern": pattern,
        "costs": [
            {"tokenType": "input", "kind": "PROMPT", "costPerMillionTokens": p_in},
            {"tokenType": "output", "kind": "COMPLETION", "costPerMillionTokens": p_out},
        ],
    }


def _same(have: tuple[float, float] | None, want: tuple[float, float]) -> bool:
    """Phoenix stores USD per token: per million, read back, may differ in the last bits."""
    if have is None:
        return False
    return all(math.isclose(h, w, rel_tol=1e-9, abs_tol=1e-12) for h, w in zip(have, want, strict=True))


def _graphql(http: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/graphql", json={"query": query, "variables": variables}, timeout=10.0)
    if response.status_code != 200:
        raise PhoenixRefused(f"HTTP {response.status_code} from {response.request.url.path}")
    body = response.json()
    if body.get("errors"):
        raise PhoenixRefused("; ".join(str(error.get("message", error)) for error in body["errors"]))
    return dict(body["data"])


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
