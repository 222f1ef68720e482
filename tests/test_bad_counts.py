"""A heartbeat loop's number of cycles is 1 to 1,000 (CLI and Run tab), and option JSON nested past what Python's
parser can take is one line, exit 2: each bad input one clear line, nothing run, the app still up."""

from __future__ import annotations

import httpx
import pytest

BAD_COUNTS = ["0", "-1", "1000000000", "abc"]


@pytest.mark.parametrize("cycles", BAD_COUNTS)
def test_heartbeat_cycles_must_be_1_to_1000(cogscope, llm, cycles):
    result = cogscope("heartbeat", "--cycles", cycles, "--interval", "0", "--model", "openai/scripted",
                      "--api-base", llm.api_base)  # fmt: skip
    line = result.error_line()
    assert f"argument --cycles: {cycles!r} is not a number of cycles; give a whole number from 1 to 1,000" in line
    assert llm.requests == []


def test_option_json_nested_past_the_recursion_limit_is_one_line(cogscope, llm):
    for value in ("[" * 100_000, "{" * 1000, '[{"a": ' * 5000):
        result = cogscope("run", "--agent", "heartbeat", "--task", "decide", "--model", "openai/scripted",
                          "--api-base", llm.api_base, "--option", f"max_steps={value}", process=True)  # fmt: skip
        line = result.error_line()
        assert "option 'max_steps': its JSON value nests lists or objects more than 100 deep" in line
    assert llm.requests == []


def test_the_run_tab_loop_refuses_a_bad_number_of_cycles(app, page, llm):
    page.goto(app.link)
    page.locator("#loop-accordion").get_by_text("Heartbeat loop").click()
    status = page.locator("#run-status")
    for cycles in BAD_COUNTS[:3]:
        page.get_by_label("Cycles").fill(cycles)
        page.get_by_label("Interval (s)").fill("0")
        page.locator("#loop-button").click()
        status.get_by_text(f"Cycles '{cycles}' is not a number of cycles").wait_for(timeout=20_000)
        assert "from 1 to 1,000" in status.inner_text()
    # what a browser cannot type, an API client can send
    form = ["heartbeat", "openai/scripted", "", "", "", llm.api_base, "", "", "decide"]
    for cycles in ("abc", 1e9, -5):
        url = f"{app}/gradio_api/call/heartbeat_loop"
        call = httpx.post(url, json={"data": [*form, cycles, 0]}, headers=app.headers, timeout=30)
        assert call.status_code == 200, call.text
        events = httpx.get(f"{url}/{call.json()['event_id']}", headers=app.headers, timeout=60).text
        assert "Traceback" not in events
        assert "is not a number of cycles" in events or "event: error" in events, events
    assert llm.requests == []
    # the app still serves a cycle
    llm.enqueue('Thought: done.\n<code>\nfinal_answer("ok")\n</code>')
    page.get_by_label("Cycles").fill("1")
    page.locator("#loop-button").click()
    status.get_by_text("Loop finished: 1 cycle(s)").wait_for(timeout=120_000)
