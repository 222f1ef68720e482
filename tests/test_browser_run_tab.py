"""The Run tab in a real headless Chromium against `cogscope ui` started as a user starts it."""

from __future__ import annotations

import re

import pytest

from .conftest import ARTIFACTS, SharedApp, screenshot

# one `cogscope ui` for the module (conftest's shared_app): its tests run on one worker, in this order
pytestmark = pytest.mark.xdist_group("run-tab-app")

RECALL = 'Thought: recall first.\n<code>\nprint(recall_memory(query="energy", limit=2))\n</code>'
ANSWER = 'Thought: decided.\n<code>\nfinal_answer("Take a short walk, then review the course outline.")\n</code>'


def test_steps_stream_one_by_one_then_the_trace_opens_in_phoenix(shared_app: SharedApp, page) -> None:
    app, llm = shared_app.app, shared_app.llm
    # both replies are held: each model call waits until the test lets it go
    llm.enqueue(RECALL, prompt_tokens=1000, completion_tokens=100, held=True)
    llm.enqueue(ANSWER, prompt_tokens=1100, completion_tokens=40, held="midway")  # streams half its words first
    page.goto(app.link)
    page.get_by_label("Task").fill("Recall what you know about my energy and decide the next action.")
    page.locator("#run-button").click()

    chat = page.locator("#run-chat")
    llm.wait_for_requests(1)  # the model is "writing" the first step: no step on the page yet
    assert chat.get_by_text("Step 1", exact=True).count() == 0
    llm.release()
    chat.get_by_text("Step 1", exact=True).first.wait_for()
    llm.wait_for_requests(2)
    # the first step, its tool's observation included, is on the page while the model is still writing the second
    chat.get_by_text("Long reasoning chains drain energy").first.wait_for()  # the page may still be rendering it
    # the model's first words of step 2 show as they come, before the step is done
    chat.get_by_text("The model is writing").wait_for()
    chat.get_by_text(re.compile(r"Thought: decided")).first.wait_for()
    assert chat.get_by_text("Step 2", exact=True).count() == 0
    assert "Final answer" not in chat.inner_text() and "course outline" not in chat.inner_text()  # not written yet
    page.screenshot(path=screenshot("run-tab-writing.png"), full_page=True)
    llm.release()
    chat.get_by_text("Step 2", exact=True).first.wait_for()
    chat.get_by_text("Final answer:").wait_for()
    assert chat.get_by_text("The model is writing").count() == 0  # the finished step took the draft's place
    assert "Final answer:Take a short walk, then review the course outline." in chat.inner_text().replace("\n", "")

    totals = page.locator("#run-totals")
    totals.get_by_text("Open this trace in Phoenix").wait_for()
    text = totals.inner_text()
    assert "2 steps · 2 LLM calls · 2,240 tokens (2,100 prompt + 140 completion)" in text
    assert "Input tokens: 1,000 | Output tokens: 100" in chat.inner_text()  # per step
    page.wait_for_timeout(500)  # let the last markdown blocks finish rendering before the picture
    page.screenshot(path=screenshot("run-tab.png"), full_page=True)

    trace_id = re.search(r"[0-9a-f]{32}", text).group(0)
    href = totals.get_by_role("link", name="Open this trace in Phoenix").get_attribute("href")
    assert href.endswith(f"/redirects/traces/{trace_id}")
    page.goto(href)
    page.wait_for_url(re.compile(rf"/projects/.+/traces/{trace_id}"))
    page.get_by_text("heartbeat.cycle").first.wait_for()
    page.get_by_text("Step 1").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "phoenix-trace.png"))


def test_bad_input_shows_an_error_and_the_app_keeps_working(shared_app: SharedApp, page) -> None:
    app, llm = shared_app.app, shared_app.llm
    page.goto(app.link)
    page.locator("#run-button").click()
    status = page.locator("#run-status")
    status.get_by_text("the task is empty").wait_for()

    page.get_by_label("Task").fill("decide")
    model = page.get_by_label("Model")
    model.fill("nosuchprovider-model")
    model.press("Enter")
    page.locator("#run-button").click()
    status.get_by_text("unknown model 'nosuchprovider-model'").wait_for()

    llm.enqueue(ANSWER, prompt_tokens=10, completion_tokens=5)
    model.fill("openai/scripted")
    model.press("Enter")
    page.locator("#run-button").click()
    page.locator("#run-chat").get_by_text("Final answer:").wait_for()
    assert llm.requests and len(llm.requests) == 1


def test_stop_ends_the_cycle_after_the_current_step(shared_app: SharedApp, page) -> None:
    app, llm = shared_app.app, shared_app.llm
    llm.enqueue(RECALL)
    for _ in range(4):
        llm.enqueue("Thought: again.\n<code>\nx = 1\n</code>", held=True)
    page.goto(app.link)
    page.get_by_label("Task").fill("Think forever")
    page.locator("#run-button").click()
    page.locator("#run-chat").get_by_text("Step 1", exact=True).first.wait_for()
    llm.wait_for_requests(2)  # step 2's model call is held: Stop comes in the middle of a step
    page.locator("#stop-button").click()
    page.locator("#run-status").get_by_text("Stopping after the current step").wait_for()
    llm.release()  # step 2 ends; no step 3 begins
    page.locator("#run-status").get_by_text("Cycle failed").wait_for()
    totals = page.locator("#run-totals").inner_text()
    assert "error: the run stopped with an error" in totals and "Agent interrupted." in totals
    assert len(llm.requests) == 2  # steps 1 and 2, none of the three scripted after them


def test_one_model_picker_per_role_and_the_heartbeat_loop(shared_app: SharedApp, page) -> None:
    app, llm = shared_app.app, shared_app.llm
    page.goto(app.link)
    # the consciousness agent has three roles: three pickers appear, labelled by role
    page.get_by_label("Agent").fill("consciousness")
    page.get_by_label("Agent").press("Enter")
    page.get_by_label("Model for perception").wait_for()
    assert page.get_by_label("Model for reasoning").is_visible()
    assert page.get_by_label("Model for metacognition").is_visible()
    assert "Options: memory, max_steps, member_max_steps" in page.locator("#run-agent-info").inner_text()
    page.get_by_label("Agent").fill("heartbeat")
    page.get_by_label("Agent").press("Enter")
    page.get_by_label("Model for perception").wait_for(state="hidden")

    # the heartbeat loop: two cycles, the memory state after each
    for n in range(2):
        llm.enqueue(
            f'Thought: beat.\n<code>\nremember(text="beat number {n}", kind="episodic")\n'
            f'final_answer("beat {n}")\n</code>'
        )
    page.locator("#loop-accordion").get_by_text("Heartbeat loop").click()
    page.get_by_label("Cycles").fill("2")
    page.get_by_label("Interval (s)").fill("0")
    page.locator("#loop-button").click()
    page.locator("#run-status").get_by_text("Loop ").wait_for(timeout=120_000)
    totals = page.locator("#run-totals").inner_text()
    assert "Loop finished: 2 cycle(s)" in page.locator("#run-status").inner_text(), totals
    assert "Cycle 1" in totals and "Cycle 2" in totals
    state = page.locator("#run-state").inner_text()
    # regenerated to 100 each cycle, then 2 (step) + 2 (remember) spent in the last one
    assert "Energy 96/100" in state and "remember" in state
    page.screenshot(path=screenshot("heartbeat-loop.png"), full_page=True)
    assert len(llm.requests) == 2
