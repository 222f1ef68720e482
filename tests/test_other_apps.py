"""Cycles that other smolagents apps recorded in Phoenix are cycles: listed, costed, shown and replayed.

Each app runs in a process of its own and knows nothing of cogscope (tests/fixtures/plain_app.py traces with plain
OpenInference, as Phoenix's docs say)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SECRET

APP = ROOT / "tests" / "fixtures" / "plain_app.py"
ADD = "Thought: add them.\n<code>\nprint(add(a=6, b=7))\n</code>"
DONE = 'Thought: 13 it is.\n<code>\nfinal_answer("13")\n</code>'
TASK = "What is 6 plus 7?"


def _run_script(env: dict[str, str], *argv: str, cwd: Path = ROOT) -> str:
    """An app in a process of its own, as it runs in production; its output."""
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=180, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _run_app(env: dict[str, str], phoenix_url: str, project: str, api_base: str, *extra: str) -> str:
    return _run_script(env, str(APP), phoenix_url, project, api_base, TASK, *extra)


@pytest.fixture
def app_cycle(env, llm, phoenix, project, read_trace):  # type: ignore[no-untyped-def]
    """One 2-step cycle of the plain app: (1,000 + 100) then (1,200 + 50) tokens of gpt-4o-mini."""
    llm.enqueue(ADD, prompt_tokens=1000, completion_tokens=100)
    llm.enqueue(DONE, prompt_tokens=1200, completion_tokens=50)
    out = _run_app(env, phoenix.url, project, llm.api_base)
    assert out.strip().endswith("13")
    return out


def _by_hand(prompt: int, completion: int) -> float:
    """gpt-4o-mini's price from LiteLLM's own map, applied by hand."""
    import litellm

    price = litellm.model_cost["gpt-4o-mini"]
    return prompt * price["input_cost_per_token"] + completion * price["output_cost_per_token"]


def test_a_plain_app_cycle_is_listed_costed_and_shown_like_a_cogscope_cycle(app_cycle, cogscope, project):
    listed = cogscope("traces", "--format", "json")
    assert listed.code == 0, listed.out + listed.err
    (row,) = json.loads(listed.out)
    assert row["task"] == TASK  # the task text, not the JSON of the run's arguments
    assert row["agent"] == "CodeAgent" and row["models"] == "openai/gpt-4o-mini"
    assert row["cogscope"] is False and row["status"] == "ok"
    assert (row["steps"], row["llm_calls"], row["prompt_tokens"], row["completion_tokens"]) == (2, 2, 2200, 150)
    assert row["cost_usd"] == pytest.approx(_by_hand(2200, 150), rel=1e-9)

    # the filters: run in cogscope, from other apps, or all
    other = json.loads(cogscope("traces", "--format", "json", "--source", "other").out)
    assert [r["trace_id"] for r in other] == [row["trace_id"]]
    assert json.loads(cogscope("traces", "--format", "json", "--source", "cogscope").out) == []
    table = cogscope("traces")
    assert TASK in table.out and "CodeAgent" in table.out

    # the Dashboard's figures and `cogscope cost` count it, with the same numbers
    cost = cogscope("cost", "--since", "1h", "--source", "other", "--format", "json")
    assert cost.code == 0, cost.out + cost.err
    figures = json.loads(cost.out)
    (cycle,) = figures["cycles"]
    assert cycle["trace_id"] == row["trace_id"] and cycle["cost_usd"] == pytest.approx(row["cost_usd"], rel=1e-12)
    assert figures["per_cycle"]["tokens"]["mean"] == 2350
    assert [r["role"] for r in figures["by_role"]] == ["CodeAgent"]
    none_here = cogscope("cost", "--since", "1h", "--source", "cogscope")
    assert none_here.code == 2 and "no cycles run in cogscope in the last 1h" in none_here.err

    shown = cogscope("show", row["trace_id"])
    assert shown.code == 0, shown.out + shown.err
    assert "Step 1" in shown.out and "add(a=6, b=7)" in shown.out and "13" in shown.out


def test_read_any_project_and_an_unknown_one_is_one_line(app_cycle, cogscope, project, llm):
    # a cogscope cycle in another project: each project lists its own
    llm.enqueue(DONE, prompt_tokens=10, completion_tokens=1)
    ran = cogscope(
        "run", "--agent", "heartbeat", "--task", "Decide.", "--model", "openai/scripted", "--api-base", llm.api_base,
        COGSCOPE_PROJECT=f"{project}-ours",
    )  # fmt: skip
    assert ran.code == 0, ran.out + ran.err
    app = json.loads(cogscope("traces", "--format", "json", COGSCOPE_PROJECT=f"{project}-ours").out)
    assert [r["agent"] for r in app] == ["heartbeat"]
    named = json.loads(cogscope("traces", "--format", "json", "--project", project, COGSCOPE_PROJECT="elsewhere").out)
    assert [r["agent"] for r in named] == ["CodeAgent"]

    for command in (["traces"], ["cost", "--since", "1h"], ["show", "0" * 32]):
        result = cogscope(*command, "--project", f"{project}-nope")
        assert result.code == 2, result.out + result.err
        (line,) = [line for line in result.err.splitlines() if line.strip()]
        assert f"no Phoenix project '{project}-nope'" in line and project in line.split("its projects:")[1], line
    result = cogscope("traces", "--project", "a/b")
    assert result.code == 2 and "--project 'a/b' cannot name a Phoenix project" in result.err


RECORDED = ROOT / "tests" / "fixtures" / "recorded_app.py"
BESIDE_OPENAI_AGENTS = """
import runpy, sys
import agents
assert hasattr(agents, "Runner") and "site-packages" in agents.__file__, agents.__file__
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""  # `python -c BESIDE_OPENAI_AGENTS SCRIPT ARGS...`: SCRIPT as __main__, beside OpenAI's `agents`
EDITED = 'Thought: off by one, on purpose.\n<code>\nfinal_answer("14")\n</code>'


def test_an_app_with_the_one_line_recorder_is_a_cycle_that_replays_and_forks_with_the_model_stopped(
    env, llm, phoenix, project, cogscope, tmp_path
):
    llm.enqueue(ADD, prompt_tokens=1000, completion_tokens=100)
    llm.enqueue(DONE, prompt_tokens=1200, completion_tokens=50)
    data = str(tmp_path / "app-data")
    task = f"{TASK} (the key is {SECRET})"  # the app's environment holds it: the recorder blanks it, as cogscope does
    # with OpenAI's Agents SDK (a top-level `agents`, a test extra) imported first in the same process
    out = _run_script(
        env, "-c", BESIDE_OPENAI_AGENTS, str(RECORDED), phoenix.url, project, llm.api_base, data, task, cwd=tmp_path
    )
    assert out.splitlines()[-2:] == ["13", "spooled: 0"]

    listed = cogscope("traces", "--format", "json", "--source", "cogscope")
    assert SECRET not in listed.out
    (row,) = json.loads(listed.out)
    assert row["task"] == f"{TASK} (the key is [REDACTED])"
    assert row["agent"] == f"{RECORDED}:build" and row["models"] == "openai/gpt-4o-mini"
    assert (row["status"], row["steps"], row["llm_calls"], row["tokens"]) == ("ok", 2, 2, 2350)
    assert row["cost_usd"] == pytest.approx(_by_hand(2200, 150), rel=1e-9)
    assert row["recorded_here"] is False  # the app signed with its own data dir's key, not this cogscope's

    # replay without naming the factory (the trace names it; the operator confirms running it), model stopped
    llm.stop()
    needs = cogscope("replay", row["trace_id"])
    assert needs.code == 2 and f"import agent file {RECORDED}:build" in needs.out + needs.err
    replay = cogscope("replay", row["trace_id"], "--trust-recorded-code")
    assert replay.code == 0, replay.out + replay.err
    assert "Model:    2 outputs replayed, 0 LLM calls" in replay.out
    assert "Reproduced the recording" in replay.out

    edited = tmp_path / "step1.txt"
    edited.write_text(EDITED)
    fork = cogscope(
        "replay", row["trace_id"], "--trust-recorded-code", "--fork-at", "1", "--output-file", str(edited)
    )  # fmt: skip
    assert fork.code == 0, fork.out + fork.err
    assert "Final answer: 14" in fork.out and "0 LLM calls" in fork.out


def test_a_plain_app_cycle_replays_and_forks_with_the_factory_the_operator_names(app_cycle, cogscope, llm, tmp_path):
    (row,) = json.loads(cogscope("traces", "--format", "json").out)
    trace_id = row["trace_id"]
    unnamed = cogscope("replay", trace_id)
    assert unnamed.code == 2
    (line,) = [line for line in unnamed.err.splitlines() if line.strip()]
    assert "recorded by another app (CodeAgent)" in line and "--agent" in line

    llm.stop()  # zero LLM calls: the model is not even there
    replay = cogscope("replay", trace_id, "--agent", f"{APP}:build", "--option", "max_steps=4")
    assert replay.code == 0, replay.out + replay.err
    assert "Model:    2 outputs replayed, 0 LLM calls" in replay.out and "Reproduced the recording" in replay.out

    edited = tmp_path / "step1.txt"
    edited.write_text(EDITED)
    fork = cogscope("replay", trace_id, "--agent", f"{APP}:build", "--fork-at", "1", "--output-file", str(edited))
    assert fork.code == 0, fork.out + fork.err
    assert "Final answer: 14" in fork.out and "0 LLM calls" in fork.out

    # bad inputs: one line each, exit 2
    other = cogscope("replay", trace_id, "--agent", f"{ROOT / 'tests' / 'fixtures' / 'outside_agent.py'}:make")
    assert other.code == 2
    (line,) = [line for line in other.err.splitlines() if line.strip()]
    assert (
        "builds an agent with the tools ['final_answer', 'shout'], the recorded one had ['add', 'final_answer']" in line
    )
    missing = cogscope("replay", trace_id, "--agent", "no_such_package.agents:build")
    assert missing.code == 2 and "--agent" in missing.err
    stray = cogscope("replay", trace_id, "--option", "max_steps=4")
    assert stray.code == 2 and "--option goes with --agent" in stray.err


def test_a_trace_that_is_not_a_smolagents_run_is_one_line(phoenix, project, cogscope):
    from cogscope.telemetry import setup_tracing, wait_for_trace
    from cogscope.telemetry.tracing import uninstrument

    tracing = setup_tracing(endpoint=phoenix.url + "/v1/traces", project_name=project, batch=False)
    try:
        with tracing.tracer().start_as_current_span("GET /health") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
        tracing.flush()
    finally:
        uninstrument()
        tracing.shutdown()
    from cogscope.telemetry import phoenix_client

    wait_for_trace(phoenix_client(phoenix.url), project=project, trace_id=trace_id, timeout=60)
    result = cogscope("replay", trace_id, "--agent", f"{APP}:build")
    assert result.code == 2
    (line,) = [line for line in result.err.splitlines() if line.strip()]
    assert f"trace {trace_id} is not a smolagents run (its root span is 'GET /health'" in line


def test_the_traces_tab_and_the_dashboard_read_an_apps_project(env, llm, phoenix, project, app, page):
    from .conftest import screenshot

    llm.enqueue(ADD, prompt_tokens=1000, completion_tokens=100)
    llm.enqueue(DONE, prompt_tokens=1200, completion_tokens=50)
    _run_app(env, phoenix.url, f"{project}-app", llm.api_base)

    page.goto(app.link)
    page.get_by_role("tab", name="Traces").click()
    picker = page.locator("#traces-project input")
    picker.fill(f"{project}-app")
    picker.press("Enter")
    table = page.locator("#traces-table")
    # the task text, not the JSON of the run's arguments
    table.locator("span", has_text=TASK).first.wait_for(timeout=60_000)
    assert "CodeAgent" in table.inner_text()
    page.screenshot(path=screenshot("traces-tab-other-app.png"), full_page=True)
    table.locator("span", has_text=TASK).first.click()  # step through it
    page.locator("#step-detail").get_by_text("add(a=6, b=7)").first.wait_for()

    # replay it here too: the operator names the factory; the model is not even there
    llm.stop()
    page.locator("#replay-accordion").get_by_text("Replay or fork this cycle").click()
    page.locator("#replay-button").click()
    report = page.locator("#replay-report")
    report.get_by_text("recorded by another app (CodeAgent)").wait_for(timeout=60_000)
    page.locator("#replay-factory").get_by_role("textbox").fill(f"{APP}:build")
    page.locator("#replay-button").click()
    report.get_by_text("Reproduced the recording").wait_for(timeout=120_000)
    assert "2 recorded outputs replayed" in report.inner_text()
    page.screenshot(path=screenshot("traces-tab-other-app-replay.png"), full_page=True)

    picker.fill(f"{project}-nope")
    picker.press("Enter")
    page.locator("#traces-caption").get_by_text(f"no Phoenix project '{project}-nope'").wait_for()

    page.get_by_role("tab", name="Dashboard").click()
    dash = page.locator("#dash-project input")
    dash.fill(f"{project}-app")
    dash.press("Enter")
    page.locator("#dash-refresh").click()
    numbers = page.locator("#dash-numbers")
    numbers.get_by_text("1 cycle").first.wait_for(timeout=60_000)
    assert "Cost by model (window total): openai/gpt-4o-mini $0.00042" in numbers.inner_text()


ASK = 'Thought: the helper adds.\n<code>\nprint(helper(task="Add 6 and 7."))\n</code>'
HELP = "Thought: add.\n<code>\nfinal_answer(add(a=6, b=7))\n</code>"


def test_an_app_with_a_managed_agent_shows_its_roles_and_replays_with_the_factory(env, llm, phoenix, cogscope):
    for reply in (ASK, HELP, DONE):
        llm.enqueue(reply, prompt_tokens=500, completion_tokens=20)
    assert _run_app(env, phoenix.url, env["COGSCOPE_PROJECT"], llm.api_base, "managed").strip().endswith("13")
    (row,) = json.loads(cogscope("traces", "--format", "json").out)
    assert row["models"] == "CodeAgent=openai/gpt-4o-mini, helper=openai/gpt-4o-mini"  # a role per managed agent
    assert (row["llm_calls"], row["tokens"]) == (3, 1560)
    cost = json.loads(cogscope("cost", "--since", "1h", "--format", "json").out)
    assert sorted(r["role"] for r in cost["by_role"]) == ["CodeAgent", "helper"]

    llm.stop()
    replay = cogscope("replay", row["trace_id"], "--agent", f"{APP}:build", "--option", "managed=true")
    assert replay.code == 0, replay.out + replay.err
    assert "Model:    3 outputs replayed, 0 LLM calls" in replay.out and "Reproduced the recording" in replay.out
    alone = cogscope("replay", row["trace_id"], "--agent", f"{APP}:build")  # the factory, without its option
    assert alone.code == 2
    assert "the tools ['add', 'final_answer'], the recorded one had ['final_answer']" in alone.err
