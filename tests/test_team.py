"""One cogscope for a team: two people signed in, in browsers and through the Gradio API at the same time.

Cycles wait in line for a slot (their place shown), Stop reaches only one's own cycle, nobody's steps reach
another's page, and the Traces tab and the Dashboard show "mine" by default, everyone's on request."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import CHROMIUM, CHROMIUM_FLAGS, running_app, screenshot
from .scripted_llm import Reply, task_marker

USERS = {"ana": "ana-password-1", "bo": "bo-password-22"}
MARKER = re.compile(r"\bM\d{2}\b")


def marker_of(body: dict[str, Any]) -> str:
    """The session marker in a request's task."""
    return task_marker(body, MARKER)


def marker_replies(gate: threading.Event, calls: int = 2, delay_s: float = 0.0):  # type: ignore[no-untyped-def]
    """A responder: each cycle makes `calls` calls that print its own marker, then answers with it. Every reply
    waits for `gate` first, so the test decides when cycles may end."""

    def respond(body: dict[str, Any]) -> Reply:
        gate.wait(60)
        marker = marker_of(body)
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        if done + 1 < calls:
            code = f'print("{marker} step {done + 1}")'
        else:
            code = f'final_answer("{marker}")'
        return Reply(f"Thought: step {done + 1} of {marker}.\n<code>\n{code}\n</code>", 200, 20, delay_s)

    return respond


@pytest.fixture
def team_app(env: dict[str, str], llm, tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    logins = tmp_path / "logins.txt"
    logins.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    logins.chmod(0o600)
    with running_app(dict(env, COGSCOPE_MAX_CYCLES="2"), llm, "--auth-file", str(logins)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def signed_in_page(browser: Any, url: str, user: str) -> Any:
    """A browser context of its own (its own cookies), signed in as `user`, on the app."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    assert context.request.post(url + "/login", form={"username": user, "password": USERS[user]}).ok
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.locator("#run-button").wait_for()
    return page


def api_client(url: str, user: str) -> Any:
    from gradio_client import Client

    return Client(url, auth=(user, USERS[user]), verbose=False)


def run_via_api(client: Any, task: str, api_base: str) -> tuple[str, str, str]:
    """Run one cycle of the heartbeat agent through the Gradio API: (status, totals, the steps as shown)."""
    chat, status, totals, _state = client.predict(
        "heartbeat", "openai/scripted", "", "", "", api_base, "", "", task, api_name="/run_cycle"
    )
    return str(status), str(totals), json.dumps(chat)


def test_two_users_at_once_wait_in_line_stop_their_own_and_see_their_own(team_app: str, llm, browser, cogscope):
    gate = threading.Event()
    llm.respond(marker_replies(gate))
    ana_api, bo_api = api_client(team_app, "ana"), api_client(team_app, "bo")
    with ThreadPoolExecutor(4) as pool:
        try:
            # ana and bo each start a cycle through the API: the app's 2 slots are taken
            ana_job = pool.submit(run_via_api, ana_api, "Decide for M01.", llm.api_base)
            bo_job = pool.submit(run_via_api, bo_api, "Decide for M02.", llm.api_base)
            llm.wait_for_requests(2)

            # ana, in her browser, starts a third: it waits in line, and says so
            ana = signed_in_page(browser, team_app, "ana")
            bo = signed_in_page(browser, team_app, "bo")
            ana.get_by_label("Task").fill("Decide for M03.")
            ana.locator("#run-button").click()
            status = ana.locator("#run-status")
            status.get_by_text(re.compile(r"Waiting in line: 1st for a free slot")).wait_for()
            assert "2 of 2 cycles on API models are running" in status.inner_text()
            server = ana.locator("#run-server")
            server.get_by_text("waiting, 1st in line").wait_for()
            rows = server.locator("tbody tr")
            assert rows.count() == 3
            assert "ana (you)" in server.inner_text() and "bo" in server.inner_text()
            ana.screenshot(path=screenshot("team-waiting.png"), full_page=True)

            # bo's Stop reaches only bo's own session: ana's waiting cycle stays in line, the API cycles run on
            bo.locator("#stop-button").click()
            bo.locator("#run-status").get_by_text("Nothing is running.").wait_for()
            assert "Waiting in line: 1st" in status.inner_text()

            # ana's Stop takes her cycle out of the line; nothing of it ran
            ana.locator("#stop-button").click()
            status.get_by_text("Left the line: the cycle did not run.").wait_for()
            assert ana.locator("#run-chat").get_by_text("Decide for M03.").count() == 1  # her task, no step

            gate.set()
            for job, mine, other in ((ana_job, "M01", "M02"), (bo_job, "M02", "M01")):
                job_status, totals, steps = job.result(timeout=120)
                assert "Cycle finished" in job_status, (job_status, totals)
                assert f"{mine} step 1" in steps and other not in steps and "M03" not in steps
            # no cross-talk: every call the model got for a task held only that task's marker and its own steps
            for body in llm.requests:
                text = str(body.get("messages"))
                assert len(set(MARKER.findall(text))) == 1, text[:500]
            assert {marker_of(b) for b in llm.requests} == {"M01", "M02"}  # M03 never reached the model
        finally:
            gate.set()

    # "mine" by default: ana sees her cycle, bo his; everyone's on request
    for who, mine, other in ((ana, "M01", "M02"), (bo, "M02", "M01")):
        who.get_by_role("tab", name="Traces").click()
        whose = who.locator("#traces-whose")
        assert whose.get_by_label("mine").is_checked()
        who.locator("#traces-refresh").click()
        table, caption = who.locator("#traces-table"), who.locator("#traces-caption")
        table.locator("span", has_text=f"Decide for {mine}.").first.wait_for()
        assert caption.inner_text().startswith("1 cycle(s)")
        assert f"Decide for {other}." not in table.inner_text()
        whose.get_by_label("everyone's").check()
        table.locator("span", has_text=f"Decide for {other}.").first.wait_for()
        assert caption.inner_text().startswith("2 cycle(s)")
        assert "started by" in table.inner_text()

    ana.get_by_role("tab", name="Dashboard").click()
    ana.locator("#dash-refresh").click()
    numbers = ana.locator("#dash-numbers")
    numbers.get_by_text(re.compile(r"\b1 cycles?\b")).wait_for()
    ana.locator("#dash-whose").get_by_label("everyone's").check()
    ana.locator("#dash-refresh").click()
    numbers.get_by_text(re.compile(r"\b2 cycles\b")).wait_for()
    ana.screenshot(path=screenshot("team-dashboard-everyone.png"), full_page=True)

    # the operator's CLI reads who started what, too
    listed = cogscope("traces", "--user", "bo", "--format", "json")
    assert listed.code == 0, listed.err
    records = json.loads(listed.out)
    assert [(r["user"], r["task"]) for r in records] == [("bo", "Decide for M02.")]
    costed = cogscope("cost", "--user", "nobody")
    assert costed.code == 2 and "no cycles started by nobody" in costed.err
