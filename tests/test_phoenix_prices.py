"""Phoenix's own cost of a cycle is cogscope's: the prices file's models are registered in Phoenix
(telemetry.phoenix_prices), once, and updated when a price changes; a Phoenix that refuses is one warning line.

Phoenix prices a span as it stores it, so these tests compare what Phoenix's GraphQL `costSummary` says for a real
cycle (recorded through the Runtime, as `cogscope run` does, against the scripted LLM) with what `cogscope traces`
says for it."""

from __future__ import annotations

import json
import logging
import re
import uuid

import pytest

from cogscope.telemetry import Prices, free_port, phoenix_client, register_prices
from cogscope.telemetry.phoenix_prices import custom_models, name_pattern

from .conftest import SECRET
from .helpers import phoenix_trace_cost

STEP = 'Thought: look.\n<code>\nprint(recall_memory(query="energy", limit=1))\n</code>'
DONE = 'Thought: done.\n<code>\nfinal_answer("rest")\n</code>'
PROMPT, COMPLETION = 3 * 1000, 3 * 100  # three calls of 1,000 + 100 tokens


def _record(record, llm, model: str) -> str:  # type: ignore[no-untyped-def]
    for reply in (STEP, STEP, DONE):
        llm.enqueue(reply, prompt_tokens=1000, completion_tokens=100)
    return record("Decide", model=model, api_base=llm.api_base)


def _cogscope_trace_cost(cogscope, trace_id: str) -> float:  # type: ignore[no-untyped-def]
    listed = cogscope("traces", "--format", "json")
    assert listed.code == 0, listed.out + listed.err
    return float({r["trace_id"]: r["cost_usd"] for r in json.loads(listed.out)}[trace_id])


def test_phoenix_costs_a_cycle_as_cogscope_does(env, cogscope, record, llm, read_trace, phoenix, project, tmp_path):  # type: ignore[no-untyped-def]
    house = f"openai/house-{uuid.uuid4().hex[:8]}"  # a model of this test's own: the shared Phoenix knows no other
    prices = tmp_path / "prices.toml"
    prices.write_text(f'["{house}"]\ninput = 2.0\noutput = 8.0\n')
    env["COGSCOPE_PRICES"] = str(prices)

    # (a) priced only by the prices file: Phoenix's table has no price for it
    trace_id = _record(record, llm, house)
    read_trace(trace_id, min_spans=8)
    want = (PROMPT * 2.0 + COMPLETION * 8.0) / 1e6
    assert _cogscope_trace_cost(cogscope, trace_id) == pytest.approx(want, rel=1e-9)
    assert phoenix_trace_cost(phoenix.url, project, trace_id) == pytest.approx(want, rel=1e-6)

    # (b) priced by LiteLLM's map, not named in the prices file: Phoenix's own table agrees
    trace_id = _record(record, llm, "openai/gpt-4o-mini")
    read_trace(trace_id, min_spans=8)
    want = (PROMPT * 0.15 + COMPLETION * 0.60) / 1e6
    assert _cogscope_trace_cost(cogscope, trace_id) == pytest.approx(want, rel=1e-9)
    assert phoenix_trace_cost(phoenix.url, project, trace_id) == pytest.approx(want, rel=1e-6)


def _registered(phoenix_url: str, model: str) -> list:  # type: ignore[type-arg]
    http = phoenix_client(phoenix_url)._client
    return [m for m in custom_models(http) if m.name == model or m.pattern == name_pattern(model)]


def test_registering_twice_adds_nothing_and_a_new_price_updates_the_one_model(phoenix):  # type: ignore[no-untyped-def]
    model = f"openai/priced-{uuid.uuid4().hex[:8]}"
    first = Prices(overrides={model: (1.0, 2.0)}, source="prices.toml")
    assert register_prices(phoenix.url, first, settle=False) == 1
    assert register_prices(phoenix.url, first, settle=False) == 0
    [registered] = _registered(phoenix.url, model)
    assert (registered.name, registered.provider, registered.per_million) == (model, None, (1.0, 2.0))

    assert register_prices(phoenix.url, Prices(overrides={model: (3.0, 4.5)}), settle=False) == 1
    [updated] = _registered(phoenix.url, model)
    assert (updated.id, updated.per_million) == (registered.id, (3.0, 4.5))

    # the pattern is the model id exactly, as the LLM span's llm.model_name holds it: not a longer or shorter name
    pattern = re.compile(updated.pattern)
    assert pattern.search(model)
    assert not any(pattern.search(other) for other in (f"{model}-2", f"x{model}", model.split("/", 1)[1]))


def test_a_phoenix_that_refuses_is_one_warning_line(phoenix, caplog, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PHOENIX_API_KEY", SECRET)  # sent to Phoenix as it is to every Phoenix cogscope reads
    prices = Prices(overrides={f"openai/refused-{uuid.uuid4().hex[:8]}": (1.0, 1.0)})
    with caplog.at_level(logging.WARNING, logger="cogscope.phoenix_prices"):
        assert register_prices(f"{phoenix.url}/no-phoenix-here", prices) is None  # HTML, not GraphQL
        assert register_prices(f"http://127.0.0.1:{free_port()}", prices) is None  # nothing listens
    lines = [r.getMessage() for r in caplog.records if r.name == "cogscope.phoenix_prices"]
    assert len(lines) == 2 and all("\n" not in line and "did not take the prices file" in line for line in lines)
    assert not any(SECRET in line for line in lines)
