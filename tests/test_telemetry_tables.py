"""The one pricing function on hand-built calls: a known price, an unknown one, and a call that failed; and a
cycle's totals counted from its spans as they end (the Run tab's) equal to those of its tables (every other view)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cogscope.telemetry import Prices
from cogscope.telemetry.tables import price


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


# -- a cycle's totals straight from its spans (the Run tab's) equal those of its tables (every other view) --------
def _cycle(calls: list[tuple[str | None, object, object]], *, root: bool = True, steps: int = 2) -> list:
    """Finished spans of one cycle: root AGENT > `Step n` CHAINs, the calls (model, prompt, completion tokens)
    spread over the steps, and one TOOL span."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    def body() -> None:
        for number in range(1, steps + 1):
            with tracer.start_as_current_span(f"Step {number}", attributes={"openinference.span.kind": "CHAIN"}):
                for model, prompt, completion in calls[number - 1 :: steps]:
                    attributes: dict = {"openinference.span.kind": "LLM"}
                    if model is not None:
                        attributes["llm.model_name"] = model
                    if prompt is not None:
                        attributes["llm.token_count.prompt"] = prompt
                    if completion is not None:
                        attributes["llm.token_count.completion"] = completion
                    with tracer.start_as_current_span("LiteLLMModel.generate", attributes=attributes):
                        pass
                with tracer.start_as_current_span("recall", attributes={"openinference.span.kind": "TOOL"}):
                    pass

    if root:
        with tracer.start_as_current_span("heartbeat.cycle", attributes={"openinference.span.kind": "AGENT"}):
            body()
    else:
        with tracer.start_as_current_span("orphan", attributes={"openinference.span.kind": "CHAIN"}):
            body()
    spans = list(exporter.get_finished_spans())
    if not root:  # a trace whose root never arrived: drop it
        spans = [s for s in spans if s.parent is not None]
    return spans


CYCLES = {
    "priced by the prices file": [("team/house-model", 1000, 100), ("team/house-model", 1200, 50)],
    "priced by LiteLLM's map": [("gpt-4o-mini", 1000, 100), ("gpt-4o-mini", 3, 7)],
    "free": [("local", 5000, 500)],
    "of unknown price": [("team/house-model", 1000, 100), ("nobody/knows", 10, 1)],
    "a call that failed": [(None, None, None), ("gpt-4o-mini", 1000, 0)],
    "odd token counts": [("gpt-4o-mini", "12", 3.0), ("gpt-4o-mini", "n/a", True)],
    "no calls": [],
}


@pytest.mark.parametrize("name", list(CYCLES))
@pytest.mark.parametrize("root", [True, False], ids=["whole", "no root"])
def test_cycle_totals_from_spans_equal_those_of_the_tables(name: str, root: bool):
    from cogscope.telemetry.frames import spans_to_frame
    from cogscope.telemetry.tables import cycle_totals, trace_tables

    spans = _cycle(CYCLES[name], root=root)
    fast = cycle_totals(spans, PRICES)
    tables = trace_tables(spans_to_frame(spans), PRICES).totals
    assert (fast.steps, fast.llm_calls, fast.prompt_tokens, fast.completion_tokens) == (
        tables.steps,
        tables.llm_calls,
        tables.prompt_tokens,
        tables.completion_tokens,
    )
    assert fast.duration_s == pytest.approx(tables.duration_s, abs=1e-9)
    if tables.cost_usd is None:
        assert fast.cost_usd is None
    else:
        assert fast.cost_usd == pytest.approx(tables.cost_usd, rel=1e-12, abs=0)
    assert fast.llm_calls == len(CYCLES[name]) and fast.steps == 2


def test_cycle_totals_name_the_numbers_a_user_checks():
    totals = cycle_totals_of([("team/house-model", 1000, 100), ("local", 5000, 500)])
    assert (totals.llm_calls, totals.prompt_tokens, totals.completion_tokens) == (2, 6000, 600)
    assert totals.cost_usd == pytest.approx((1000 * 2.0 + 100 * 8.0) / 1e6)
    assert cycle_totals_of([("nobody/knows", 10, 1)]).cost_usd is None  # unknown, never 0
    assert cycle_totals_of([]).cost_usd == 0.0  # no call, no cost


def cycle_totals_of(calls: list) -> object:
    from cogscope.telemetry.tables import cycle_totals

    return cycle_totals(_cycle(calls), PRICES)


def test_an_apps_cycle_names_its_models_by_role_from_its_calls():
    """Another app's root does not name its models: they come from its calls, one per role (a managed agent's name)."""
    from cogscope.telemetry.tables import models_of_calls

    calls = pd.DataFrame(
        {
            "trace_id": ["a", "a", "a", "b", "b"],
            "start_time": pd.to_datetime([1, 2, 3, 1, 2], unit="s", utc=True),
            "role": ["manager", "perception", "manager", "CodeAgent", "CodeAgent"],
            "model": ["openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4o-mini", ""],
        }
    )
    assert models_of_calls(calls).to_dict() == {
        "a": "manager=openai/gpt-4o, perception=openai/gpt-4o-mini",
        "b": "openai/gpt-4o-mini",  # one role: the model alone; a call that failed names none
    }
