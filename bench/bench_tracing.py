"""Benchmark: what tracing adds to one cycle, side by side: bare smolagents, OpenInference alone, cogscope.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_tracing.py [--steps 10] [--repeats 15]

One cycle is a CodeAgent with no tools running N steps against the zero-latency scripted server of
tests/scripted_llm.py, through LiteLLM over real HTTP. Four ways, interleaved repeat by repeat:

- bare: smolagents alone, not instrumented;
- OpenInference alone: the smolagents instrumentor, a BatchSpanProcessor and OpenTelemetry's OTLP/HTTP exporter;
- cogscope: `setup_tracing` with its spool (the default: every span on disk, the sender thread delivering) and a
  `Cycle`, timed until the cycle's result (totals included) reaches the caller;
- its tracer alone: the same tracing, the agent run under a root span in the caller's thread, without the `Cycle`
  (which runs the agent in a thread of its own and hands each step to the caller as it ends).

Spans go to a loopback sink that answers as Phoenix does (OTLP POSTs, and the REST look-up the spool's sender
makes to confirm that a span is stored), so Phoenix's own ingest does not share the cores with what is measured.
The scripted model and the sink run in a child process, as a model server and Phoenix are processes of their own:
in the measured process their threads would compete with the agent's for the interpreter lock at every call.
The ways take turns going first, each after a garbage collection. Prints the median wall time per cycle,
and, paired repeat by repeat (the machine's speed drifts over a run), the median ratio to bare and to
OpenInference alone and the median time per step over bare; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_trace_size import TASK, agent, replies  # noqa: E402

from tests.scripted_llm import Reply, ScriptedLLM  # noqa: E402


class Sink:
    """Takes OTLP/HTTP posts and says every span asked about is stored (Phoenix's REST answer, ids only)."""

    def __init__(self) -> None:
        sink = self
        self.posts = 0
        self.bytes = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.posts += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                ids = parse_qs(urlsplit(self.path).query).get("span_id", [])
                data = json.dumps({"data": [{"context": {"span_id": i}} for i in ids], "next_cursor": None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply(body: dict, steps: int) -> Reply:  # type: ignore[type-arg]
    """The scripted cycle's next reply (`bench_trace_size.replies`), from how many steps the request shows done."""
    done = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
    return Reply(*replies(steps)[min(done, steps - 1)])


def serve(steps: int) -> None:
    """The child process: the scripted model and the sink, on loopback, until the parent closes stdin."""
    llm, sink = ScriptedLLM().start(), Sink()
    llm.respond(lambda body: reply(body, steps))
    print(json.dumps({"api_base": llm.api_base, "sink": sink.url}), flush=True)
    sys.stdin.read()


def bare(llm: Any, steps: int) -> float:
    runner = agent(llm, steps)
    start = time.perf_counter()
    runner.run(TASK)
    return time.perf_counter() - start


def openinference(llm: Any, steps: int, sink: Any) -> float:
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.url}/v1/traces")))
    SmolagentsInstrumentor().instrument(tracer_provider=provider)
    try:
        runner = agent(llm, steps)
        start = time.perf_counter()
        runner.run(TASK)
        elapsed = time.perf_counter() - start
    finally:
        SmolagentsInstrumentor().uninstrument()
        provider.shutdown()
    return elapsed


def cogscope(llm: Any, steps: int, sink: Any, data_dir: Path, *, cycle: bool = True) -> float:
    """cogscope's tracing with its spool, the agent run by a `Cycle`; with `cycle=False` ("its tracer alone") run
    under a root span in this thread instead."""
    from cogscope.telemetry import Cycle, CycleSpec, Spool, setup_tracing
    from cogscope.telemetry.tracing import uninstrument

    tracing = setup_tracing(
        endpoint=f"{sink.url}/v1/traces", project_name="bench-tracing", spool=Spool.in_dir(data_dir)
    )
    try:
        runner = agent(llm, steps)
        start = time.perf_counter()
        if cycle:
            result = Cycle(runner, TASK, spec=CycleSpec("bench"), tracing=tracing).run()
        else:
            with tracing.tracer().start_as_current_span("bench.cycle"):
                for _ in runner.run(TASK, stream=True):
                    pass
        elapsed = time.perf_counter() - start
        if cycle:
            assert result.status == "ok" and result.totals.llm_calls == steps, result
        tracing.drain(30)  # delivered before the next repeat: not part of the cycle's time
    finally:
        uninstrument()
        tracing.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve(args.steps)
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--steps", str(args.steps)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    ports = json.loads(child.stdout.readline())
    llm, sink = SimpleNamespace(api_base=ports["api_base"]), SimpleNamespace(url=ports["sink"])
    times: dict[str, list[float]] = {"bare": [], "OpenInference alone": [], "cogscope": [], "its tracer alone": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tracing-") as folder:
            for name in times:  # warm-up: imports, first connections
                times[name].append(0.0)
            bare(llm, args.steps)
            openinference(llm, args.steps, sink)
            cogscope(llm, args.steps, sink, Path(folder))
            cogscope(llm, args.steps, sink, Path(folder), cycle=False)
            for name in times:
                times[name].clear()
            ways = {
                "bare": lambda: bare(llm, args.steps),
                "OpenInference alone": lambda: openinference(llm, args.steps, sink),
                "cogscope": lambda: cogscope(llm, args.steps, sink, Path(folder)),
                "its tracer alone": lambda: cogscope(llm, args.steps, sink, Path(folder), cycle=False),
            }
            for repeat in range(args.repeats):
                order = list(ways)[repeat % len(ways) :] + list(ways)[: repeat % len(ways)]  # each way first in turn
                for name in order:
                    gc.collect()  # each cycle starts from a collected heap
                    times[name].append(ways[name]())
    finally:
        child.stdin.close()
        child.wait(30)
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"{args.steps}-step CodeAgent cycle, zero-latency model, median of {args.repeats}")
    print("paired: the median over repeats of each way against the bare and OpenInference cycles of the same repeat")
    print(f"{'':>20}  {'ms/cycle':>9}  {'x bare':>7}  {'x OI':>6}  {'ms/step over bare':>17}")
    for name, ms in medians.items():
        pairs = list(zip(times[name], times["bare"], times["OpenInference alone"], strict=True))
        x_bare = statistics.median(t / b for t, b, _ in pairs)
        x_oi = statistics.median(t / o for t, _, o in pairs)
        per_step = statistics.median((t - b) * 1000 / args.steps for t, b, _ in pairs)
        print(f"{name:>20}  {ms:>9.1f}  {x_bare:>7.2f}  {x_oi:>6.2f}  {per_step:>17.2f}")


if __name__ == "__main__":
    main()
