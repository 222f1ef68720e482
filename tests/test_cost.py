"""`cogscope cost`: per-cycle calls, tokens and cost against hand computation, Phoenix's own cost, the monthly
projection, prices files, unknown prices, role breakdown, the budget gate and bad inputs."""

from __future__ import annotations

import json

import pytest

from cogscope.telemetry import free_port, project

from .helpers import phoenix_trace_cost

STEP = 'Thought: look.\n<code>\nprint(recall_memory(query="energy", limit=1))\n</code>'
DONE = 'Thought: done.\n<code>\nfinal_answer("rest")\n</code>'
PER_CYCLE = 3 * (1000 * 0.15 + 100 * 0.60) / 1e6  # gpt-4o-mini: $0.15 / $0.60 per million tokens


def _record(record, llm, model: str = "openai/gpt-4o-mini") -> str:  # type: ignore[no-untyped-def]
    for reply in (STEP, STEP, DONE):
        llm.enqueue(reply, prompt_tokens=1000, completion_tokens=100)
    return record("Decide", model=model, api_base=llm.api_base)


def _cost(cogscope, *args: str):  # type: ignore[no-untyped-def]
    result = cogscope("cost", "--since", "1h", "--format", "json", *args)
    assert result.code in (0, 1), result.out + result.err
    return result, json.loads(result.out)


@pytest.mark.both_backends  # also against a Phoenix on PostgreSQL (conftest)
def test_cycle_cost_matches_hand_computation_and_phoenix(cogscope, record, llm, read_trace, phoenix, project, tmp_path):
    trace_id = _record(record, llm)
    read_trace(trace_id, min_spans=11)
    result, figures = _cost(cogscope, "--interval", "5s")
    assert figures["cycle_count"] == 1 and [c["trace_id"] for c in figures["cycles"]] == [trace_id]
    assert figures["per_cycle"]["llm_calls"]["mean"] == 3
    assert (
        figures["per_cycle"]["prompt_tokens"]["mean"] == 3000
        and figures["per_cycle"]["completion_tokens"]["mean"] == 300
    )
    assert figures["per_cycle"]["cost_usd"]["mean"] == pytest.approx(PER_CYCLE)
    assert figures["projection"]["cycles_per_month"] == 518_400
    assert figures["projection"]["monthly_usd"] == pytest.approx(PER_CYCLE * 518_400)
    assert phoenix_trace_cost(phoenix.url, project, trace_id) == pytest.approx(PER_CYCLE, rel=1e-6)

    table = cogscope("cost", "--since", "1h", "--interval", "5s")
    assert "cost per cycle          mean $0.000630" in table.out
    assert "103,680 s/day" not in table.out and "86,400 s/day ÷ 5 s = 17,280 cycles/day" in table.out

    # the budget gate: $326.59/month projected
    assert cogscope("cost", "--since", "1h", "--interval", "5s", "--budget", "400").code == 0
    over = cogscope("cost", "--since", "1h", "--interval", "5s", "--budget", "300")
    assert over.code == 1 and "projection is OVER budget" in over.out

    # a prices file overrides LiteLLM's map
    prices = toml_file(tmp_path, '["openai/gpt-4o-mini"]\ninput = 1.0\noutput = 2.0\n')
    _, priced = _cost(cogscope, "--prices", prices)
    assert priced["per_cycle"]["cost_usd"]["mean"] == pytest.approx(3 * (1000 * 1.0 + 100 * 2.0) / 1e6)

    # what-if: the same tokens on gpt-4o ($2.50 / $10 per million)
    _, scenario = _cost(cogscope, "--interval", "5s", "--what-if", "openai/gpt-4o")
    new = 3 * (1000 * 2.5 + 100 * 10) / 1e6 * 518_400
    assert scenario["what_if"]["new_monthly"] == pytest.approx(new)
    assert "estimate" in scenario["what_if"]["note"]

    csv = cogscope("cost", "--since", "1h", "--format", "csv")
    assert csv.out.splitlines()[0].startswith("trace_id,") and trace_id in csv.out


def toml_file(tmp_path, text: str) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / f"prices-{abs(hash(text))}.toml"
    path.write_text(text)
    return str(path)


def test_unknown_price_stays_unknown(cogscope, record, llm, read_trace):
    read_trace(_record(record, llm, model="openai/scripted"), min_spans=11)
    _, figures = _cost(cogscope)
    assert figures["per_cycle"]["cost_usd"]["mean"] is None
    assert "no price for 'openai/scripted'; add it to a prices file" in figures["unknown_prices"]["openai/scripted"]
    table = cogscope("cost", "--since", "1h")
    assert "mean unknown" in table.out and "unknown price: no price for 'openai/scripted'" in table.out
    gated = cogscope("cost", "--since", "1h", "--budget", "10")
    assert gated.code == 2 and "the projection is unknown" in gated.err


def test_role_breakdown_for_consciousness_with_two_models(cogscope, llm, read_trace):
    llm.enqueue('Thought: ask.\n<code>\nprint(perception(task="Observe"))\n</code>', 2000, 200)
    llm.enqueue('{"name": "observe", "arguments": {}}', 500, 20)
    llm.enqueue('{"name": "final_answer", "arguments": {"answer": "full energy"}}', 600, 20)
    llm.enqueue('Thought: done.\n<code>\nfinal_answer("walk")\n</code>', 2500, 100)
    result = cogscope(
        "run",
        "--agent",
        "consciousness",
        "--task",
        "Cycle",
        "--model",
        "openai/gpt-4o",
        "--model",
        "perception=openai/gpt-4o-mini",
        "--api-base",
        llm.api_base,
    )
    assert result.code == 0, result.out + result.err
    read_trace(result.trace_id, min_spans=11)
    _, figures = _cost(cogscope)
    roles = {r["role"]: r for r in figures["by_role"]}
    manager = (2000 + 2500) * 2.5 / 1e6 + (200 + 100) * 10 / 1e6
    perception = (500 + 600) * 0.15 / 1e6 + (20 + 20) * 0.60 / 1e6
    assert roles["consciousness"]["cost_usd"] == pytest.approx(manager)
    assert roles["perception"]["cost_usd"] == pytest.approx(perception)
    assert roles["consciousness"]["share"] == pytest.approx(manager / (manager + perception))
    assert {m["model"] for m in figures["by_model"]} == {"openai/gpt-4o", "openai/gpt-4o-mini"}


def test_projection_arithmetic():
    p = project(0.001, 0.002, 5)
    assert p.cycles_per_day == 17_280 and p.cycles_per_month == 518_400
    assert p.monthly == pytest.approx(518.40) and p.monthly_p95 == pytest.approx(1036.80)
    assert p.daily == pytest.approx(17.28)


def test_bad_cost_inputs(cogscope, llm, read_trace, tmp_path):
    def error(*args: str, **env: str | None) -> str:
        result = cogscope("cost", *args, **env)
        assert result.code == 2, result.out + result.err
        (line,) = [line for line in result.err.splitlines() if line.strip()]
        return line

    assert "no cycles in the last 1h" in error("--since", "1h")
    assert "--since 'yesterday' is not a duration" in error("--since", "yesterday")
    assert "--interval '0s' is not a duration" in error("--interval", "0s")
    assert "--budget '-5' must be 0 or more" in error("--budget", "-5")
    assert "--budget 'lots' is not an amount" in error("--budget", "lots")
    bad_toml = toml_file(tmp_path, "[unclosed\n")
    assert "is not valid TOML" in error("--prices", bad_toml)
    negative = toml_file(tmp_path, '["openai/gpt-4o-mini"]\ninput = -1\noutput = 2\n')
    assert "has a negative price" in error("--prices", negative)
    assert "does not exist" in error("--prices", "/nonexistent/prices.toml")
    assert "--what-if: unknown model 'openai/nonesuch-9'" in error("--what-if", "reasoning=openai/nonesuch-9")
    assert "no Phoenix answers at" in error(PHOENIX_COLLECTOR_ENDPOINT=f"http://127.0.0.1:{free_port()}")
