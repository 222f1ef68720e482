"""Benchmark: what tracing adds to one cycle, side by side: bare smolagents, OpenInference alone, cogscope.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_tracing.py [--steps 10] [--repeats 15]

One cycle is a CodeAgent with no tools running N steps against the zero-latency scripted server of
tests/scripted_llm.py, through LiteLLM over real HTTP. Three ways, interleaved repeat by repeat:

- bare: smolagents alone, not instrumented;
- OpenInference alone: the smolagents instrumentor, a BatchSpanProcessor and OpenTelemetry's OTLP/HTTP exporter;
- cogscope: `setup_tracing` with its spool (the default: every span on disk, the sender thread delivering) and a
  `Cycle`, timed until the cycle's result (totals included) reaches the caller.

Spans go to a loopback sink that answers as Phoenix does (OTLP POSTs, and the REST look-up the spool's sender
makes to confirm that a span is stored), so Phoenix's own ingest does not share the cores with what is measured.
Prints the median wall time per cycle and per step over bare; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_trace_size import TASK, agent, script  # noqa: E402

from tests.scripted_llm import ScriptedLLM  # noqa: E402


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


def bare(llm: ScriptedLLM, steps: int) -> float:
    script(llm, steps)
    runner = agent(llm, steps)
    start = time.perf_counter()
    runner.run(TASK)
    return time.perf_counter() - start


def openinference(llm: ScriptedLLM, steps: int, sink: Sink) -> float:
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.url}/v1/traces")))
    SmolagentsInstrumentor().instrument(tracer_provider=provider)
    try:
        script(llm, steps)
        runner = agent(llm, steps)
        start = time.perf_counter()
        runner.run(TASK)
        elapsed = time.perf_counter() - start
    finally:
        SmolagentsInstrumentor().uninstrument()
        provider.shutdown()
    return elapsed


def cogscope(llm: ScriptedLLM, steps: int, sink: Sink, data_dir: Path) -> float:
    from telemetry import Cycle, CycleSpec, Spool, setup_tracing
    from telemetry.tracing import uninstrument

    tracing = setup_tracing(
        endpoint=f"{sink.url}/v1/traces", project_name="bench-tracing", spool=Spool.in_dir(data_dir)
    )
    try:
        script(llm, steps)
        runner = agent(llm, steps)
        start = time.perf_counter()
        result = Cycle(runner, TASK, spec=CycleSpec("bench"), tracing=tracing).run()
        elapsed = time.perf_counter() - start
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
    args = parser.parse_args()
    llm, sink = ScriptedLLM().start(), Sink()
    times: dict[str, list[float]] = {"bare": [], "OpenInference alone": [], "cogscope": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tracing-") as folder:
            for name in times:  # warm-up: imports, first connections
                times[name].append(0.0)
            bare(llm, args.steps)
            openinference(llm, args.steps, sink)
            cogscope(llm, args.steps, sink, Path(folder))
            for name in times:
                times[name].clear()
            for _ in range(args.repeats):
                times["bare"].append(bare(llm, args.steps))
                times["OpenInference alone"].append(openinference(llm, args.steps, sink))
                times["cogscope"].append(cogscope(llm, args.steps, sink, Path(folder)))
    finally:
        llm.stop()
        sink.stop()
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    base, oi = medians["bare"], medians["OpenInference alone"]
    print(f"{args.steps}-step CodeAgent cycle, zero-latency model, median of {args.repeats}")
    print(f"{'':>20}  {'ms/cycle':>9}  {'x bare':>7}  {'x OI':>6}  {'ms/step over bare':>17}")
    for name, ms in medians.items():
        print(f"{name:>20}  {ms:>9.1f}  {ms / base:>7.2f}  {ms / oi:>6.2f}  {(ms - base) / args.steps:>17.2f}")


if __name__ == "__main__":
    main()
