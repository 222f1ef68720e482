"""The Traces tab in a real headless Chromium: filter failed cycles, open one, step through it, replay, fork."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

from .conftest import screenshot

GREETER = Path(__file__).parent / "fixtures" / "outside_agent.py"


def _record(record, llm, *replies: str, task: str) -> str:  # type: ignore[no-untyped-def]
    for reply in replies:
        llm.enqueue(reply, prompt_tokens=1000, completion_tokens=100)
    return record(task, model="openai/scripted", api_base=llm.api_base)


def test_find_a_failed_cycle_step_through_it_replay_and_fork(record, llm, read_trace, app, page, tmp_path):
    ok = _record(record, llm, 'Thought: done.\n<code>\nfinal_answer("all good")\n</code>', task="An easy one")
    failed = _record(
        record,
        llm,
        'Thought: recall.\n<code>\nprint(recall_memory(query="energy", limit=1))\n</code>',
        "Thought: compute.\n<code>\nratio = 1 / 0\n</code>",
        'Thought: give up.\n<code>\nfinal_answer("could not compute")\n</code>',
        task="Compute the energy ratio",
    )
    read_trace(ok, min_spans=4)
    read_trace(failed, min_spans=10)
    requests_before = len(llm.requests)

    page.goto(app.link)
    page.get_by_role("tab", name="Traces").click()
    page.locator("#traces-refresh").click()
    table = page.locator("#traces-table")
    table.get_by_text("An easy one").first.wait_for()
    assert "(not cogscope)" not in table.inner_text()  # the app's own HTTP requests are never traced
    page.locator("#traces-failed").click()  # one click: failed only
    page.locator("#traces-caption").get_by_text("1 cycle(s)").wait_for()
    assert "An easy one" not in table.inner_text()
    table.get_by_test_id("cell-0-8").click()

    summary = page.locator("#trace-summary")
    summary.get_by_text("step_errors").wait_for()
    assert "3 steps" in summary.inner_text()
    detail = page.locator("#step-detail")
    detail.get_by_text("Step 1 (step 1)").wait_for()
    assert "recall_memory" in detail.inner_text()
    page.locator("#step-next").click()
    detail.get_by_text("Step 2 (step 2)").wait_for()
    assert "ZeroDivisionError" in detail.inner_text() and "ratio = 1 / 0" in detail.inner_text()
    page.locator("#step-messages-accordion").get_by_text("Exact LLM input messages").click()
    page.locator("#step-messages").get_by_text("system", exact=True).wait_for()
    page.locator("#step-prev").click()
    detail.get_by_text("Step 1 (step 1)").wait_for()
    page.locator("#step-next").click()
    detail.get_by_text("Step 2 (step 2)").wait_for()
    page.screenshot(path=screenshot("traces-tab.png"), full_page=True)

    # the cycle's reproduction bundle downloads; uploading it back is refused: the trace is in this Phoenix already
    page.locator("#bundle-export").click()
    link = page.locator("#bundle-file a").first
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == f"cycle-{failed[:12]}.cogscope"
    saved = tmp_path / download.value.suggested_filename  # the upload button takes .cogscope files only
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as z:
        assert json.loads(z.read("manifest.json"))["trace_id"] == failed
    assert "Wrote" in page.locator("#bundle-report").inner_text()
    with page.expect_file_chooser() as chooser:
        page.locator("#bundle-import").click()
    chooser.value.set_files(saved)
    page.locator("#bundle-report").get_by_text("is in this Phoenix already").wait_for()
    page.locator("#bundle-export").click()  # the download again, for the picture
    page.locator("#bundle-report").get_by_text("Wrote").wait_for()
    page.screenshot(path=screenshot("traces-bundle.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 1000})

    page.locator("#replay-accordion").get_by_text("Replay or fork this cycle").click()
    page.locator("#replay-button").click()
    report = page.locator("#replay-report")
    report.get_by_text("Reproduced the recording").wait_for(timeout=60_000)
    assert len(llm.requests) == requests_before  # zero LLM calls

    page.locator("#fork-output textarea").fill(
        'Thought: do not divide.\n<code>\nfinal_answer("ratio undefined: zero divisor")\n</code>'
    )
    page.locator("#fork-edit-button").click()
    report.get_by_text("Fork finished.").wait_for(timeout=60_000)
    assert "ratio undefined: zero divisor" in report.inner_text()
    assert "fork at step 2" in report.inner_text()
    assert len(llm.requests) == requests_before

    # the cycle names the state it started from; the replays ran on scratch copies of it
    assert re.search(r"started from state m[0-9a-f]{8}\.\d+", summary.inner_text()), summary.inner_text()
    assert "Ran on a scratch copy of state" in report.inner_text()
    # beside it, the operator's rollback: what it would change (what the failed cycle wrote), then a confirmation
    page.locator("#state-rollback").click()
    note = page.locator("#state-rollback-note")
    note.get_by_text("It changes:").wait_for()
    assert "action_log:" in note.inner_text() and "removed" in note.inner_text()
    page.locator("#trace-summary").scroll_into_view_if_needed()
    page.mouse.wheel(0, -250)  # the trace id above it in view too
    page.screenshot(path=screenshot("traces-rollback.png"))
    page.locator("#state-rollback-confirm").click()
    note.get_by_text("Rolled back to state").wait_for()
    assert "cogscope state rollback --point m" in note.inner_text()
    assert not page.locator("#state-rollback-confirm").is_visible()

    # a filter nothing matches says which filters to loosen (it used to show "❌ Can only use .dt accessor ...")
    page.get_by_label("Text in task").fill("no task has these words")
    page.locator("#traces-refresh").click()
    page.locator("#traces-caption").get_by_text("No cycle matches these filters").wait_for()

    # an agent file whose instructions changed since its cycle was recorded: the replay says the prompt differs
    agent_file = tmp_path / "greeter.py"
    shutil.copy(GREETER, agent_file)
    llm.enqueue('Thought: shout.\n<code>\nprint(shout(text="hello team"))\n</code>')
    llm.enqueue('Thought: done.\n<code>\nfinal_answer("HELLO TEAM!")\n</code>')
    greeted = record("Greet the team", agent=f"{agent_file}:make", api_base=llm.api_base)
    read_trace(greeted, min_spans=8)
    requests_before = len(llm.requests)
    agent_file.write_text(agent_file.read_text().replace('f"Greet with', 'f"Greet warmly, in one short line, with'))
    page.locator("#traces-trace-id textarea").fill(greeted)
    page.locator("#traces-open").click()
    summary.get_by_text("Greet the team").wait_for()
    page.locator("#replay-button").click()
    page.locator("#replay-trust").get_by_role("checkbox").check()  # an agent file: shown, then confirmed
    page.locator("#replay-button").click()
    report.get_by_text("the prompt differs at call 1, message 0 (system)").wait_for(timeout=60_000)
    assert "- Greet with 'hello'." in report.inner_text()
    assert "+ Greet warmly, in one short line, with 'hello'." in report.inner_text()
    assert len(llm.requests) == requests_before
    report.scroll_into_view_if_needed()
    report.screenshot(path=screenshot("replay-prompt-diff.png"))
