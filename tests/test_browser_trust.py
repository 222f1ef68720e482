"""The Traces tab in a real headless Chromium: a forged trace is marked, and replay asks before running its code."""

from __future__ import annotations

from .conftest import screenshot
from .helpers import EVIL_AGENT, forge


def test_replaying_a_forged_trace_shows_the_code_and_runs_it_only_once_confirmed(
    app, page, phoenix, project, read_trace, tmp_path
):
    marker = tmp_path / "marker"
    agent_file = tmp_path / "evil.py"
    agent_file.write_text(EVIL_AGENT.format(marker=str(marker)))
    forged = forge(phoenix, project, {"cogscope.agent": f"{agent_file}:make"})
    read_trace(forged)

    page.goto(app.link)
    page.get_by_role("tab", name="Traces").click()
    page.locator("#traces-refresh").click()
    table = page.locator("#traces-table")
    page.locator("#traces-caption").get_by_text("1 cycle(s)").wait_for()
    assert "⚠ not recorded here" in table.inner_text() and "Forged decision" in table.inner_text()
    table.get_by_test_id("cell-0-8").click()  # the task
    summary = page.locator("#trace-summary")
    summary.get_by_text("may be forged").wait_for()

    page.locator("#replay-accordion").get_by_text("Replay or fork this cycle").click()
    page.locator("#replay-button").click()
    report = page.locator("#replay-report")
    report.get_by_text("This replay would run code the trace names").wait_for()
    assert f"import agent file {agent_file}:make" in report.inner_text()
    trust = page.locator("#replay-trust")
    trust.wait_for()
    page.screenshot(path=screenshot("replay-confirm.png"), full_page=True)
    assert not marker.exists()  # shown, not run

    trust.get_by_role("checkbox").check()
    page.locator("#replay-button").click()
    report.get_by_text("no longer loads").wait_for()
    assert marker.read_text() == "imported"  # confirmed: it ran
