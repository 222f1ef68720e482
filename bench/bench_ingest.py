"""Benchmark: how fast Phoenix stores spans: on SQLite, on PostgreSQL, and two Phoenix servers sharing one PostgreSQL.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_ingest.py [--spans 20000] [--batch 500]

Prints figures; it is not a test and asserts nothing about timings. Spans are made with the OpenTelemetry SDK
(traces of 10 spans shaped like a heartbeat cycle: a root AGENT, then 3 x a CHAIN step with an LLM span, 1,000
prompt + 100 completion tokens of openai/gpt-4o-mini, and a TOOL span), encoded once as OTLP protobuf in batches,
then POSTed to /v1/traces as fast as Phoenix accepts them (a 503, Phoenix's back-pressure when its queue is full,
is retried after a pause). Phoenix acknowledges a batch before it writes it, so the clock runs from the first POST
until every span is in the database (SELECT count(*) FROM spans, polled): the rate is spans stored per second.

    (a) one Phoenix on SQLite (its working dir in a temp folder)
    (b) one Phoenix on PostgreSQL
    (c) two Phoenix servers on one PostgreSQL database, each sent half the batches at the same time (total rate)

PostgreSQL is a throwaway cluster started here on 127.0.0.1 (tests/postgres.py: Debian's server binaries), with
its default durability (fsync on, synchronous_commit on) unless --pg-fast; Phoenix's SQLite runs with
synchronous=OFF. Everything listens on loopback only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from cogscope.telemetry import PhoenixServer, ensure_phoenix, free_port  # noqa: E402
from tests.postgres import FAST, TempPostgres  # noqa: E402

SPANS_PER_TRACE = 10
MODEL = "openai/gpt-4o-mini"
PROMPT = "Recall what you know about my energy and decide the next action. " * 14  # ~1 kB of input text


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def make_batches(project: str, n_spans: int, batch: int) -> list[tuple[bytes, int]]:
    """n_spans spans (whole traces of 10) as OTLP protobuf requests of `batch` spans each (whole traces too),
    each with its number of spans."""
    keep = _Keep()
    provider = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(keep))
    tracer = provider.get_tracer("bench-ingest")
    for i in range(n_spans // SPANS_PER_TRACE):
        root = tracer.start_span(
            "heartbeat.cycle",
            attributes={"openinference.span.kind": "AGENT", "input.value": f"cycle {i}", "session.id": "bench"},
        )
        ctx = trace.set_span_in_context(root)
        for s in range(1, 4):
            step = tracer.start_span(f"Step {s}", context=ctx, attributes={"openinference.span.kind": "CHAIN"})
            step_ctx = trace.set_span_in_context(step)
            llm = tracer.start_span(
                "LiteLLMModel.generate",
                context=step_ctx,
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.model_name": MODEL,
                    "llm.token_count.prompt": 1000,
                    "llm.token_count.completion": 100,
                    "llm.token_count.total": 1100,
                    "input.value": PROMPT,
                    "output.value": f"Thought: step {s} of cycle {i}.\n<code>\nprint(recall_memory('energy'))\n</code>",
                },
            )
            llm.end()
            tool = tracer.start_span(
                "recall_memory",
                context=step_ctx,
                attributes={"openinference.span.kind": "TOOL", "tool.name": "recall_memory", "output.value": "ok"},
            )
            tool.end()
            step.end()
        root.end()
    provider.shutdown()
    spans = keep.spans
    assert len(spans) == n_spans - n_spans % SPANS_PER_TRACE
    # the SDK ends children before their root: regroup the spans by trace so that no trace is split across batches
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.context.trace_id, []).append(span)
    ordered = [span for group in by_trace.values() for span in group]
    chunks = [ordered[i : i + batch] for i in range(0, len(ordered), batch)]
    return [(encode_spans(chunk).SerializeToString(), len(chunk)) for chunk in chunks]


class Sender(threading.Thread):
    """POSTs its batches one after another to one Phoenix; a 503 (queue full) is retried after a pause."""

    def __init__(self, url: str, batches: list[tuple[bytes, int]]) -> None:
        super().__init__(daemon=True)
        self.url = url.rstrip("/") + "/v1/traces"
        self.batches = batches
        self.retries = 0
        self.error: str | None = None
        self.acked_at = 0.0

    def run(self) -> None:
        headers = {"Content-Type": "application/x-protobuf"}
        with httpx.Client(timeout=60) as client:
            for body, _ in self.batches:
                pause = 0.2
                while True:
                    try:
                        response = client.post(self.url, content=body, headers=headers)
                    except httpx.HTTPError as e:
                        self.error = f"{type(e).__name__}: {e}"
                        return
                    if response.status_code == 503:
                        self.retries += 1
                        time.sleep(pause)
                        pause = min(pause * 2, 2.0)
                        continue
                    if response.status_code >= 300:
                        self.error = f"HTTP {response.status_code}: {response.text[:200]}"
                        return
                    break
        self.acked_at = time.perf_counter()


def ingest(
    servers: list[PhoenixServer], batches: list[tuple[bytes, int]], count: Callable[[], int], timeout: float
) -> dict:
    """Send the batches (split evenly over the servers, all at once); wait until count() has them all."""
    n_before = count()
    expected = n_before + sum(n for _, n in batches)
    senders = [Sender(s.url, batches[i :: len(servers)]) for i, s in enumerate(servers)]
    t0 = time.perf_counter()
    for sender in senders:
        sender.start()
    stored = n_before
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = count()
        if stored >= expected:
            break
        if any(s.error for s in senders):
            break
        time.sleep(0.25)
    elapsed = time.perf_counter() - t0
    for sender in senders:
        sender.join(timeout=5)
    errors = [s.error for s in senders if s.error]
    acked = max((s.acked_at for s in senders), default=t0) - t0
    n = stored - n_before
    return {
        "spans": n,
        "expected": expected - n_before,
        "seconds": elapsed,
        "rate": n / elapsed if elapsed else 0.0,
        "acked_s": acked,
        "retries": sum(s.retries for s in senders),
        "errors": errors,
    }


def sqlite_count(db: Path) -> Callable[[], int]:
    def count() -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
            try:
                return int(connection.execute("SELECT count(*) FROM spans").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    return count


def pg_count(pg: TempPostgres, database: str) -> Callable[[], int]:
    return lambda: pg.scalar(database, "SELECT count(*) FROM spans")


def report(label: str, r: dict) -> None:
    ok = "ok" if r["spans"] == r["expected"] and not r["errors"] else f"INCOMPLETE ({r['errors'] or 'timeout'})"
    print(
        f"  {label}: {r['spans']:,}/{r['expected']:,} spans stored in {r['seconds']:.1f} s = {r['rate']:,.0f} spans/s "
        f"(all POSTs acknowledged after {r['acked_s']:.1f} s; {r['retries']} x 503 retried) {ok}",
        flush=True,
    )


def warm_up(servers: list[PhoenixServer], project: str, count: Callable[[], int], timeout: float) -> None:
    """One trace per server first: the project exists, and first-request costs stay out of the figures."""
    for server in servers:
        r = ingest([server], make_batches(project, SPANS_PER_TRACE, SPANS_PER_TRACE), count, timeout)
        if r["spans"] != SPANS_PER_TRACE:
            raise SystemExit(f"warm-up failed on {server.url}: {r}")


def started(label: str, start: Callable[[], PhoenixServer], servers: list[PhoenixServer]) -> PhoenixServer:
    t = time.perf_counter()
    server = start()
    servers.append(server)
    print(f"  {label}: Phoenix {server.version} at {server.url}, started in {time.perf_counter() - t:.1f} s")
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000, help="spans per measurement (whole traces of 10)")
    parser.add_argument("--batch", type=int, default=500, help="spans per OTLP request (a multiple of 10)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for Phoenix to store them")
    parser.add_argument("--pg-fast", action="store_true", help="PostgreSQL without fsync (as the tests run it)")
    parser.add_argument("--only", choices=["a", "b", "c"], action="append", help="run only these measurements")
    args = parser.parse_args()
    if args.batch % SPANS_PER_TRACE or args.spans < args.batch:
        parser.error(f"--batch must be a multiple of {SPANS_PER_TRACE} and at most --spans")
    which = set(args.only or ["a", "b", "c"])

    print("cogscope bench: Phoenix ingest rate, SQLite vs PostgreSQL vs two Phoenix servers on one PostgreSQL")
    print(f"  {args.spans:,} spans per measurement ({args.spans // SPANS_PER_TRACE:,} traces of {SPANS_PER_TRACE}),")
    print(f"  OTLP/HTTP protobuf in batches of {args.batch} spans; rate = spans stored / seconds from the first POST")
    print("  until SELECT count(*) FROM spans has them all.")
    print(f"  PostgreSQL: {'fsync off (--pg-fast)' if args.pg_fast else 'default durability (fsync on)'}")
    print(f"  machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print()

    t = time.perf_counter()
    batches = {key: make_batches(f"bench-ingest-{key}", args.spans, args.batch) for key in sorted(which)}
    print(f"made and encoded the spans in {time.perf_counter() - t:.1f} s")

    tmp = Path(tempfile.mkdtemp(prefix="cogscope-bench-ingest-"))
    results: dict[str, dict] = {}
    pg: TempPostgres | None = None
    servers: list[PhoenixServer] = []
    try:
        if "a" in which:
            print("\n(a) one Phoenix on SQLite")
            work = tmp / "sqlite"
            server = started("(a)", lambda: ensure_phoenix(working_dir=work, port=free_port()), servers)
            count = sqlite_count(work / "phoenix.db")
            warm_up([server], "bench-ingest-a", count, args.timeout)
            results["a"] = ingest([server], batches["a"], count, args.timeout)
            report("(a)", results["a"])
            server.stop()

        if which & {"b", "c"}:
            pg = TempPostgres(settings=FAST if args.pg_fast else {})
            pg.start()
            print(f"\nPostgreSQL {pg.psql('postgres', 'SHOW server_version')} on 127.0.0.1:{pg.port}")

        if "b" in which and pg is not None:
            print("\n(b) one Phoenix on PostgreSQL")
            url = pg.create_database("ingest_b")
            server = started(
                "(b)", lambda: ensure_phoenix(working_dir=tmp / "b", port=free_port(), database_url=url), servers
            )
            count = pg_count(pg, "ingest_b")
            warm_up([server], "bench-ingest-b", count, args.timeout)
            results["b"] = ingest([server], batches["b"], count, args.timeout)
            report("(b)", results["b"])
            server.stop()

        if "c" in which and pg is not None:
            print("\n(c) two Phoenix servers on one PostgreSQL database, half the batches each, at the same time")
            url = pg.create_database("ingest_c")
            pair = [
                started(
                    f"(c) server {i}",
                    lambda i=i: ensure_phoenix(working_dir=tmp / f"c{i}", port=free_port(), database_url=url),
                    servers,
                )
                for i in (1, 2)
            ]
            count = pg_count(pg, "ingest_c")
            warm_up(pair, "bench-ingest-c", count, args.timeout)
            results["c"] = ingest(pair, batches["c"], count, args.timeout)
            report("(c)", results["c"])
            for server in pair:
                server.stop()
    finally:
        for server in servers:
            server.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n=== Phoenix ingest ({args.spans:,} spans, batches of {args.batch}, {os.cpu_count()} cores) ===")
    labels = {
        "a": "(a) Phoenix on SQLite",
        "b": "(b) Phoenix on PostgreSQL",
        "c": "(c) 2 Phoenix servers, one PostgreSQL",
    }
    for key in sorted(results):
        r = results[key]
        print(f"{labels[key]}: {r['rate']:,.0f} spans/s ({r['spans']:,} spans in {r['seconds']:.1f} s)")
    return 0 if all(r["spans"] == r["expected"] and not r["errors"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
