"""Benchmark: how soon the Run tab shows the bundled model's words, and a finished step, in a real browser.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_live_tokens.py [--repeats 3]

Starts a Phoenix, the bundled SmolLM2 server (`ui.local_llm_server`), a loopback proxy in front of it that notes
when the model's first word leaves the server, and `cogscope ui` with its default model (`local`), which it finds
on the proxy's port (COGSCOPE_LLM_PORT) as it would find the server another cogscope started. Headless Chromium
presses Run (heartbeat agent) and a MutationObserver in the page notes when the draft "The model is writing" first
shows and when "Step 1" first shows. Per cycle it prints:

- Run -> first word on the page, and how much of that the model itself took (its first word out of the server);
  target: the page within 2 s of the model's first word;
- the end of step 1 (its span's end in the trace) -> step 1 on the page; target 200 ms or less.

The cycle is stopped after its first step (the bundled model needs a minute or two for a whole heartbeat cycle).
Everything runs on loopback. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cogscope.telemetry import ensure_phoenix, free_port, phoenix_client, wait_for_trace  # noqa: E402
from cogscope.ui.local_llm import LocalModelServer  # noqa: E402
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, cogscope_command, wait_for_app  # noqa: E402

PROJECT = "bench-live-tokens"
OBSERVER = """() => {
  window.__seen = {};
  const look = () => {
    const chat = document.querySelector('#run-chat');
    if (!chat) return;
    const text = chat.innerText;
    if (!window.__seen.writing && text.includes('The model is writing')) window.__seen.writing = Date.now();
    if (!window.__seen.step && /Step 1\\b/.test(text)) window.__seen.step = Date.now();
  };
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


class Proxy:
    """Forwards the OpenAI API to the model server as it streams; notes when the first word of each reply left."""

    def __init__(self, upstream: str) -> None:
        proxy = self
        self.first_word: list[float] = []  # time.time() of each streamed reply's first word
        self.posts: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                response = httpx.get(upstream + self.path, timeout=30)
                self._answer(response.status_code, response.headers.get("content-type", ""), response.content)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.posts.append(body)
                headers = {"content-type": self.headers.get("content-type", "application/json")}
                with httpx.stream("POST", upstream + self.path, content=body, headers=headers, timeout=600) as reply:
                    self.send_response(reply.status_code)
                    self.send_header("Content-Type", reply.headers.get("content-type", ""))
                    self.end_headers()
                    noted = False
                    for chunk in reply.iter_raw():
                        if not noted and b'"content": "' in chunk and b'"content": ""' not in chunk:
                            proxy.first_word.append(time.time())
                            noted = True
                        self.wfile.write(chunk)
                        self.wfile.flush()

            def _answer(self, status: int, kind: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-live-") as folder:
        work = Path(folder)
        phoenix = ensure_phoenix(working_dir=work / "phoenix", port=free_port())
        model = LocalModelServer(port=free_port(), log_path=work / "llm.log")
        proxy = Proxy(model.ensure(timeout=120).removesuffix("/v1"))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COGSCOPE_", "PHOENIX_"))}
        env.update(
            COGSCOPE_DATA_DIR=str(work / "data"),
            PHOENIX_COLLECTOR_ENDPOINT=phoenix.url,
            COGSCOPE_PROJECT=PROJECT,
            COGSCOPE_PORT=str(port),
            # the bundled model, found on the port cogscope looks for it: the proxy's, which answers as that server
            COGSCOPE_LLM_PORT=str(proxy.server.server_address[1]),
            COGSCOPE_LLM_TIMEOUT="600",
            GRADIO_ANALYTICS_ENABLED="False",
        )
        log = open(work / "ui.log", "w")  # noqa: SIM115
        app = subprocess.Popen([*cogscope_command(), "ui"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        rows = []
        try:
            url = wait_for_app(f"http://127.0.0.1:{port}", app, work / "ui.log", timeout=120)
            assert url is not None, "cogscope ui did not answer"
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
                page = browser.new_page()
                page.set_default_timeout(600_000)
                for number in range(args.repeats):
                    page.goto(url.link)
                    page.evaluate(OBSERVER)
                    page.get_by_label("Task").fill("Decide the next action.")
                    words_before = len(proxy.first_word)
                    pressed = time.time()
                    page.locator("#run-button").click()
                    page.wait_for_function("() => window.__seen.step !== undefined")
                    page.locator("#stop-button").click()
                    page.wait_for_function("() => /[0-9a-f]{32}/.test(document.querySelector('#run-totals').innerHTML)")
                    seen = page.evaluate("() => window.__seen")
                    trace_id = re.search(r"[0-9a-f]{32}", page.locator("#run-totals").inner_html()).group(0)
                    spans = wait_for_trace(phoenix_client(phoenix.url), project=PROJECT, trace_id=trace_id, timeout=60)
                    step = spans[spans["name"] == "Step 1"].iloc[0]
                    step_end = step["end_time"].timestamp()
                    if len(proxy.first_word) <= words_before:
                        print(f"no streamed word through the proxy: {len(proxy.posts)} calls; {seen}")
                        print(page.locator("#run-chat").inner_text()[:2000])
                        continue
                    first_word = proxy.first_word[words_before]
                    rows.append(
                        {
                            "model's first word": first_word - pressed,
                            "first word on the page": seen["writing"] / 1000 - pressed,
                            "page after the model": seen["writing"] / 1000 - first_word,
                            "step end -> on the page": seen["step"] / 1000 - step_end,
                        }
                    )
                    print(f"cycle {number + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in rows[-1].items()))
                browser.close()
        finally:
            app.terminate()
            app.wait(timeout=30)
            log.close()
            model.stop()
            phoenix.stop()
    print(f"\nbundled model (SmolLM2-135M), Run tab in headless Chromium, median of {len(rows)} cycles, from Run:")
    for key in rows[0]:
        print(f"  {key:<26} {statistics.median(r[key] for r in rows) * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
