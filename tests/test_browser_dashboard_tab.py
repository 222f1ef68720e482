"""The Dashboard tab in a real headless Chromium: the numbers a user checks before rollout, and the CSV."""

from __future__ import annotations

import csv
import io
import re

import pytest

from .conftest import screenshot

pytestmark = pytest.mark.both_backends  # also against a Phoenix on PostgreSQL (conftest)

STEP = 'Thought: look.\n<code>\nprint(recall_memory(query="energy", limit=1))\n</code>'
DONE = 'Thought: done.\n<code>\nfinal_answer("rest")\n</code>'


def test_dashboard_shows_cost_per_cycle_and_the_monthly_projection(record, llm, read_trace, app, page):
    trace_ids = []
    for _ in range(2):
        for reply in (STEP, STEP, DONE):
            llm.enqueue(reply, prompt_tokens=1000, completion_tokens=100)
        trace_id = record("Decide", model="openai/gpt-4o-mini", api_base=llm.api_base)
        read_trace(trace_id, min_spans=11)
        trace_ids.append(trace_id)

    page.goto(app.link)
    page.get_by_role("tab", name="Dashboard").click()
    page.locator("#dash-refresh").click()
    numbers = page.locator("#dash-numbers")
    numbers.get_by_text("2 cycles").wait_for(timeout=60_000)
    text = numbers.inner_text()
    assert "cost per cycle $0.000630" in text
    assert "$326.59/month at one cycle every 5 s" in text  # 0.00063 x 518,400
    assert "17,280 cycles/day" in text and "518,400 cycles/month" in text
    assert re.search(r"LLM calls\s+3\.00\s+3\.00\s+3\.00\s+3\.00", text), text
    assert "Cost by role (window total): heartbeat $0.00126 (100%)" in text
    assert "Cost by model (window total): openai/gpt-4o-mini $0.00126 (100%)" in text
    assert page.locator("#dash-table").inner_text().count("heartbeat") == 2
    # the four plots draw their marks; the time axis reads as a 24-hour UTC clock, to the second for a short span
    for plot, mark in (("cost", "line"), ("step", "rect"), ("latency", "rect"), ("role", "rect")):
        page.locator(f"#dash-{plot}-plot svg.marks g.mark-{mark} path").first.wait_for(state="attached", timeout=30_000)
    ticks = page.locator("#dash-cost-plot svg text").all_text_contents()
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in ticks), ticks
    page.wait_for_timeout(500)
    page.screenshot(path=screenshot("dashboard-tab.png"), full_page=True)

    with page.expect_download() as download_info:
        page.locator("#dash-csv").click()
    path = download_info.value.path()
    rows = list(csv.DictReader(io.StringIO(open(path).read())))
    assert len(rows) == 2
    assert {round(float(r["cost_usd"]), 6) for r in rows} == {0.00063}
    assert {r["llm_calls"] for r in rows} == {"3"}

    page.locator("#dash-interval input").fill("60")
    page.locator("#dash-refresh").click()
    numbers.get_by_text("at one cycle every 60 s").wait_for()
    assert "$27.22/month" in numbers.inner_text()  # 0.00063 x 43,200

    # what-if: pick a role and a model from the price map instead of typing them
    page.locator("#dash-what-if").get_by_text("Prices and what-if").click()
    page.locator("#dash-role input").fill("heartbeat")
    page.locator("#dash-role input").press("Enter")
    page.locator("#dash-model input").click()
    page.locator("#dash-model input").press_sequentially("openai/gpt-4o-2024-08")
    page.get_by_role("option", name="openai/gpt-4o-2024-08-06 ($2.5 / $10)", exact=True).click()
    page.locator("#dash-add-what-if").click()
    page.wait_for_function(
        "document.querySelector('#dash-what-if-text textarea').value === 'heartbeat=openai/gpt-4o-2024-08-06'"
    )
    page.locator("#dash-refresh").click()
    numbers.get_by_text("What-if").wait_for()
    # the same tokens at $2.50 / $10 per million: 3 x (1,000 x 2.5 + 100 x 10) / 1e6 = $0.0105 per cycle
    assert "$27.22/month → $453.60/month" in numbers.inner_text()  # x 43,200 cycles at 60 s

    # a row opens its cycle in the Traces tab, ready to step through
    page.locator("#dash-table").get_by_text(trace_ids[0]).click()
    page.locator("#trace-summary").get_by_text("agent heartbeat").wait_for(timeout=30_000)
    assert page.get_by_role("tab", name="Traces").get_attribute("aria-selected") == "true"
    assert page.locator("#traces-trace-id textarea").input_value() == trace_ids[0]
    assert page.locator("#trace-steps").get_by_text("Step 1").count() >= 1
