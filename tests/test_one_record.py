"""One cycle, the same numbers in every view: the Run tab's totals, the Traces list (tab and `cogscope traces`),
the step-through (tab and `cogscope show`), the Dashboard and `cogscope cost`, for four kinds of model.

Every cycle makes two calls of known tokens (1,000 + 100, then 1,200 + 50: 2,200 prompt + 150 completion):
- `openai/house-model`, priced only by the prices file (COGSCOPE_PRICES, $2 / $8 per million): $0.00560;
- `openai/gpt-4o-mini`, priced by LiteLLM's map ($0.15 / $0.60 per million): $0.000420;
- `openai/smollm2-135m`, the bundled local model: free, $0;
- `openai/scripted`, priced nowhere: unknown (null in JSON).
"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import running_app

STEP = 'Thought: look.\n<code>\nprint(recall_memory(query="energy", limit=1))\n</code>'
DONE = 'Thought: done.\n<code>\nfinal_answer("rest")\n</code>'
CALLS, PROMPT, COMPLETION = 2, 2200, 150
MODELS = {  # model -> (what a person reads, what JSON says)
    "openai/house-model": ("$0.00560", (2200 * 2.0 + 150 * 8.0) / 1e6),
    "openai/gpt-4o-mini": ("$0.000420", (2200 * 0.15 + 150 * 0.60) / 1e6),
    "openai/smollm2-135m": ("$0", 0.0),
    "openai/scripted": ("unknown", None),
}
TOTALS = f"2 steps · {CALLS} LLM calls · 2,350 tokens (2,200 prompt + 150 completion) · cost {{cost}}"


def _rows(table: dict) -> list[dict]:  # type: ignore[type-arg]
    """A gr.Dataframe's value (headers + data) as records."""
    return [dict(zip(table["headers"], row, strict=True)) for row in table["data"]]


def _same_cost(got: float | None, want: float | None) -> bool:
    return got is None if want is None else got is not None and abs(got - want) < 1e-12


def test_one_cycle_shows_the_same_numbers_in_every_view(env, cogscope, llm, read_trace, tmp_path):  # type: ignore[no-untyped-def]
    from gradio_client import Client

    prices = tmp_path / "prices.toml"
    prices.write_text('["openai/house-model"]\ninput = 2.0\noutput = 8.0\n')
    env["COGSCOPE_PRICES"] = str(prices)  # the one prices setting: the app and every command read it

    traces: dict[str, str] = {}  # model -> trace id
    with running_app(env, llm) as app:
        client = Client(app, verbose=False, headers=app.headers)
        for model, (cost_text, _) in MODELS.items():
            llm.enqueue(STEP, prompt_tokens=1000, completion_tokens=100)
            llm.enqueue(DONE, prompt_tokens=1200, completion_tokens=50)
            _, status, totals, _ = client.predict(
                "heartbeat", model, "", "", "", llm.api_base, "", "", "Decide.", api_name="/run_cycle"
            )
            # the Run tab's totals
            assert "✅ ok" in totals, (model, status, totals)
            assert TOTALS.format(cost=cost_text) in totals, (model, totals)
            traces[model] = re.search(r"Trace `([0-9a-f]{32})`", totals).group(1)
        for trace_id in traces.values():
            read_trace(trace_id, min_spans=8)  # root, run, 2 steps, 2 calls, 2 tools
        by_trace = {t: m for m, t in traces.items()}

        # the Traces tab: list, then each cycle's step-through summary
        table = client.predict("all", "all", "last hour", "", api_name="/traces")[0]
        listed = {r["trace"][1:13]: r for r in _rows(table)}
        for model, trace_id in traces.items():
            row = listed[trace_id[:12]]
            assert (row["status"], row["steps"], row["LLM calls"], row["tokens"]) == ("ok", 2, CALLS, 2350), row
            assert row["cost"] == MODELS[model][0], (model, row)
            summary = client.predict(trace_id, False, api_name="/open_trace")[0]
            assert TOTALS.format(cost=MODELS[model][0]) in summary, (model, summary)
            assert "✅ ok" in summary

        # the Dashboard: its table of cycles
        dash = client.predict("last hour", "all", "", "all", 5, "", api_name="/dashboard")
        grid = {r["trace"]: r for r in _rows(dash[5])}
        for model, trace_id in traces.items():
            row = grid[trace_id]
            assert (row["status"], row["LLM calls"], row["tokens"], row["cost"]) == (
                "ok", CALLS, 2350, MODELS[model][0]
            ), (model, row)  # fmt: skip

    # `cogscope traces`, as JSON (strict: unknown is null, never NaN) and as a table
    listed = json.loads(cogscope("traces", "--format", "json").out, parse_constant=_no_nan)
    records = {r["trace_id"]: r for r in listed}
    # `cogscope cost`, as JSON: the same field names for the same things
    cost = cogscope("cost", "--since", "1h", "--format", "json")
    assert cost.code == 0, cost.out + cost.err
    costed = {r["trace_id"]: r for r in json.loads(cost.out, parse_constant=_no_nan)["cycles"]}
    table = cogscope("traces").out
    for trace_id, model in by_trace.items():
        for record in (records[trace_id], costed[trace_id]):
            assert record["status"] == "ok" and record["llm_calls"] == CALLS, record
            assert (record["prompt_tokens"], record["completion_tokens"], record["tokens"]) == (
                PROMPT,
                COMPLETION,
                2350,
            )
            assert _same_cost(record["cost_usd"], MODELS[model][1]), (model, record)
        assert records[trace_id]["steps"] == 2
        line = next(line for line in table.splitlines() if line.startswith(trace_id))
        assert MODELS[model][0] in line.split(), (model, line)
        # `cogscope show`
        shown = cogscope("show", trace_id).out
        assert f"Totals: {TOTALS.format(cost=MODELS[model][0]).replace(' · ', ', ')}" in shown, shown
        assert "status ok" in shown
    assert json.loads(cost.out)["per_cycle"]["cost_usd"]["mean"] is None  # one cycle's cost is unknown

    # without the prices file, the house model's price is unknown in every view alike
    unpriced = json.loads(cogscope("traces", "--format", "json", COGSCOPE_PRICES=None).out)
    assert {r["trace_id"]: r["cost_usd"] for r in unpriced}[traces["openai/house-model"]] is None
    # and --prices overrides it for one command
    other = tmp_path / "other.toml"
    other.write_text('["openai/house-model"]\ninput = 1.0\noutput = 0\n')
    repriced = json.loads(cogscope("traces", "--format", "json", "--prices", str(other)).out)
    assert {r["trace_id"]: r["cost_usd"] for r in repriced}[traces["openai/house-model"]] == pytest.approx(2200 / 1e6)


def _no_nan(name: str) -> None:
    raise AssertionError(f"{name} in JSON output: unknown must be null")
