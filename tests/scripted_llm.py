"""A scripted OpenAI-compatible LLM server: the only test double in cogscope's tests.

It speaks real HTTP on loopback, so LiteLLM, the OpenInference instrumentor and
Phoenix all run for real, and token figures are known exactly because every
reply carries the `usage` numbers the test gave it.

    llm = ScriptedLLM().start()
    llm.enqueue("Thought: done\\n<code>\\nfinal_answer('ok')\\n</code>", prompt_tokens=1000, completion_tokens=100)
    ... point LiteLLM at llm.api_base with model "openai/scripted" ...
    assert len(llm.requests) == 1

When the script runs out the server answers HTTP 500 with a message that says so,
so a test that makes more calls than it planned fails loudly.

A reply can be held: the request waits until the test releases it, so the test can look at
the page (or the terminal) while that model call is in flight, then let the step go on.

    llm.enqueue(RECALL, held=True)
    ... start the run ...
    llm.wait_for_requests(1)   # the call has arrived and is held
    ... check what is shown while the model is "writing" ...
    llm.release()               # the held replies are released in script order

A streamed reply (LiteLLM's `stream=True`) comes word by word, then a chunk with its `usage`. It can be held
midway: the first half of its words is sent, then the stream waits for `release()`, so a test can check that
those words are shown before the model has finished.

    llm.enqueue(ANSWER, held="midway")

For many sessions at once, a responder answers every request the script has no reply for, from what the
request holds (so each session's replies follow from its own task, and cross-talk shows):

    llm.respond(lambda body: Reply(f"...{task_marker(body)}...", delay_s=1.0))

A held reply nobody releases is answered with HTTP 500 after `HOLD_TIMEOUT_S`, so a test that
forgets to release fails loudly instead of hanging. `reset()` releases whatever is still held.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD_TIMEOUT_S = 90.0  # a held reply never released is answered with an error (before the 120 s LLM timeout)


@dataclass
class Reply:
    content: str
    prompt_tokens: int = 100
    completion_tokens: int = 10
    delay_s: float = 0.0
    gate: threading.Event | None = None  # set: a held reply, sent once the test releases it
    midway: bool = False  # a streamed reply is held after half its words (a reply not streamed: before it)


def task_marker(body: dict[str, Any], pattern: re.Pattern[str]) -> str:
    """What `pattern` finds in a request's task (its first user message that has it), or "none": the name of the
    session a request belongs to, when each session's task names it."""
    for message in body.get("messages", []):
        if message.get("role") == "user":
            content = message.get("content")
            text = content if isinstance(content, str) else " ".join(str(p.get("text", "")) for p in content or [])
            found = pattern.search(text)
            if found:
                return found.group(0)
    return "none"


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


class ScriptedLLM:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._gates: deque[threading.Event] = deque()  # held replies not yet released, in script order
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._responder: Callable[[dict[str, Any]], Reply] | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> ScriptedLLM:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- script --------------------------------------------------------------------
    def enqueue(
        self,
        content: str,
        prompt_tokens: int = 100,
        completion_tokens: int = 10,
        delay_s: float = 0.0,
        *,
        held: bool | str = False,
    ) -> None:
        """Script the next reply; `held=True`: its request waits until `release()` lets it go; `held="midway"`:
        a streamed reply sends half its words first."""
        gate = threading.Event() if held else None
        with self._lock:
            self._replies.append(Reply(content, prompt_tokens, completion_tokens, delay_s, gate, held == "midway"))
            if gate is not None:
                self._gates.append(gate)

    def respond(self, responder: Callable[[dict[str, Any]], Reply] | None) -> None:
        """Answer each request the script has no reply for with `responder(request body)` (None: stop)."""
        with self._lock:
            self._responder = responder

    def release(self, count: int = 1) -> None:
        """Let the next `count` held replies go (in script order), whether their requests arrived yet or not."""
        with self._lock:
            if count > len(self._gates):
                raise AssertionError(f"scripted LLM: {count} held replies to release, {len(self._gates)} left")
            for _ in range(count):
                self._gates.popleft().set()

    def wait_for_requests(self, count: int, timeout: float = 60.0) -> None:
        """Return once `count` requests have arrived (held ones included); fail the test after `timeout`."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise AssertionError(
                    f"scripted LLM: {len(self.requests)} requests after {timeout:.0f} s, waited for {count}"
                )

    def reset(self) -> None:
        with self._lock:
            while self._gates:  # nothing stays blocked into the next test
                self._gates.popleft().set()
            self._replies.clear()
            self._responder = None
            self.requests.clear()
            self.headers.clear()

    @property
    def remaining(self) -> int:
        return len(self._replies)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply | None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            self._arrived.notify_all()
            if self._replies:
                return self._replies.popleft()
            responder = self._responder
        return responder(body) if responder is not None else None

    # -- HTTP ----------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):  # the client hung up mid-reply (a stopped cycle)
                    pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                reply = llm._next(body, {k.lower(): v for k, v in self.headers.items()})
                if reply is None:
                    self._send(
                        500,
                        {"error": {"message": "scripted LLM: the script ran out of replies", "type": "server_error"}},
                    )
                    return
                if reply.midway and body.get("stream"):
                    self._stream(body.get("model", "scripted"), reply)
                    return
                if reply.gate is not None and not reply.gate.wait(HOLD_TIMEOUT_S):
                    self._send(
                        500,
                        {
                            "error": {
                                "message": f"scripted LLM: a held reply was not released within {HOLD_TIMEOUT_S:.0f} s",
                                "type": "server_error",
                            }
                        },
                    )
                    return
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                usage = _usage(reply)
                model = body.get("model", "scripted")
                if body.get("stream"):
                    self._stream(model, reply)
                    return
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(llm.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    },
                )

            def _stream(self, model: str, reply: Reply) -> None:
                """Server-sent events as OpenAI streams them: the words, the finish, then the usage chunk."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {"id": f"chatcmpl-{len(llm.requests)}", "object": "chat.completion.chunk", "model": model}
                words = re.findall(r"\s*\S+\s*", reply.content) or [reply.content]
                half = len(words) // 2 if reply.midway else -1
                for number, word in enumerate(words):
                    if number == half and reply.gate is not None:
                        self.wfile.flush()
                        if not reply.gate.wait(HOLD_TIMEOUT_S):
                            return  # the client sees the stream end without its finish: an error, loudly
                    delta = {"role": "assistant", "content": word} if number == 0 else {"content": word}
                    self._event({**base, "choices": [{"index": 0, "delta": delta}]})
                self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._event({**base, "choices": [], "usage": _usage(reply)})
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, chunk: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())

        return Handler
