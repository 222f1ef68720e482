"""No span lost: the spool with real faults (a killed Phoenix, a SIGKILLed cogscope, a burst Phoenix cannot keep up
with, a full spool) and a real Phoenix that is killed and started again on the same folder and port."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from cogscope.telemetry import PhoenixServer, ensure_phoenix, free_port, phoenix_client
from cogscope.telemetry.spool import SPOOL_FILE, Spool
from cogscope.telemetry.tracing import setup_tracing

from .conftest import ROOT, TRACE_LINE, cogscope_command, running_app, screenshot
from .helpers import start_cogscope, wait_until

ANSWER = 'Thought: I know enough.\n<code>\nfinal_answer("Rest for ten minutes.")\n</code>'
PENDING = re.compile(r"^Trace:\s+([0-9a-f]{32})\s+trace pending upload \((\d+) spans?\)", re.MULTILINE)
CALLS = re.compile(r"^Totals:\s+\d+ steps?, (\d+) LLM calls?", re.MULTILINE)
# the spans of a heartbeat cycle whose one step answers at once (ANSWER): `heartbeat.cycle` and `heartbeat.run`, the
# step, its model call and the final_answer tool (README: "a heartbeat cycle on disk: 5 spans")
CYCLE_SPANS = {"AGENT": 2, "CHAIN": 1, "LLM": 1, "TOOL": 1}


class OwnPhoenix:
    """A Phoenix this test may kill and start again on the same folder and port."""

    def __init__(self, folder: Path, database_url: str | None = None) -> None:
        self.folder = folder
        self.database_url = database_url  # None: SQLite in `folder`
        self.port = free_port()
        self.server: PhoenixServer | None = None

    def start(self) -> OwnPhoenix:
        self.server = ensure_phoenix(working_dir=self.folder, port=self.port, database_url=self.database_url)
        assert self.server.started_here
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: Phoenix gets no chance to write what it has accepted but not stored."""
        assert self.server is not None and self.server.process is not None
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(timeout=10)
        self.server.stop()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def spans(self, project: str) -> pd.DataFrame:
        frame = phoenix_client(self.url).spans.get_spans_dataframe(
            project_identifier=project, limit=100_000, timeout=120
        )
        return frame if frame is not None else pd.DataFrame()

    def wait_for(self, project: str, count: int, timeout: float = 120) -> pd.DataFrame:
        """Phoenix's spans of `project` once it has at least `count` of them.

        Whether it has more than `count` (a duplicate) is for the caller to check, once nothing more can be on the way
        (the spool is empty: every span in it has been confirmed stored, so Phoenix has all it will ever get)."""
        seen = [pd.DataFrame()]

        def enough() -> bool:
            try:
                seen[0] = self.spans(project)
            except httpx.HTTPStatusError:  # 404 until the project exists
                return False
            return len(seen[0]) >= count

        wait_until(
            enough,
            timeout=timeout,
            interval=2.0,  # each look reads every span so far: not too often, Phoenix is busy ingesting
            ignoring=(httpx.TimeoutException,),  # a Phoenix busy ingesting thousands of spans: ask again
            what=lambda: f"Phoenix has {len(seen[0])} spans of project {project}, not {count}",
        )
        return seen[0]


@pytest.fixture(scope="module")
def _module_phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPhoenix]:
    phoenix = OwnPhoenix(tmp_path_factory.mktemp("own-phoenix")).start()
    yield phoenix
    phoenix.stop()


@pytest.fixture
def own_phoenix(_module_phoenix: OwnPhoenix) -> OwnPhoenix:
    """A Phoenix the test may kill and start again, shared by the tests of this module marked
    xdist_group("own-phoenix") (one worker runs them in turn; each uses a project of its own): every start costs
    ~20 CPU-s of Phoenix's imports. Started again when a test that killed it failed before starting it."""
    server = _module_phoenix.server
    if server is None or server.process is None or server.process.poll() is not None:
        _module_phoenix.start()
    return _module_phoenix


def _spooled(env: dict[str, str]) -> int:
    with sqlite3.connect(Path(env["COGSCOPE_DATA_DIR"]) / SPOOL_FILE) as db:
        return int(db.execute("SELECT count(*) FROM spans").fetchone()[0])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_heartbeat_through_a_60_s_phoenix_outage_loses_nothing_and_duplicates_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, env, llm, project
):
    database_url = None
    if backend == "postgresql":  # a Phoenix on the session's PostgreSQL, killed and started again on it
        database_url = request.getfixturevalue("postgres").create_database(f"outage_{project.replace('-', '_')}")
    own_phoenix = OwnPhoenix(tmp_path / "own-phoenix", database_url).start()
    request.addfinalizer(own_phoenix.stop)
    cycles = 20
    for _ in range(cycles):
        llm.enqueue(ANSWER, prompt_tokens=300, completion_tokens=20)
    environ = dict(env, PHOENIX_COLLECTOR_ENDPOINT=own_phoenix.url, COGSCOPE_DRAIN_TIMEOUT="180")
    beat = start_cogscope(
        environ, "heartbeat", "--cycles", str(cycles), "--interval", "2",
        "--model", "openai/scripted", "--api-base", llm.api_base,
    )  # fmt: skip
    beat.wait_for(r"^Trace:", count=3)
    own_phoenix.kill()
    down = time.monotonic()
    beat.wait_for(r"^Trace:", count=5)  # cycles go on while Phoenix is down
    time.sleep(max(0.0, 60 - (time.monotonic() - down)))
    own_phoenix.start()  # same folder, same port
    code = beat.proc.wait(timeout=400)
    out = beat.text
    assert code == 0, out

    # honest links: the cycles that ended during the outage said "pending", never a link that would 404
    pending = PENDING.findall(out)
    assert len(pending) >= 2, out
    for trace_id, _ in pending:
        assert f"Trace:    {trace_id}  uploaded: {own_phoenix.url}/redirects/traces/{trace_id}" in out
    assert "does not take spans" in out and "takes spans again" in out  # said once each, on stderr
    assert "stay spooled" not in out

    traces = TRACE_LINE.findall(out)
    assert len(set(traces)) == cycles
    calls = sum(int(c) for c in CALLS.findall(out))
    assert calls == cycles == len(llm.requests)

    # a span leaves the spool only once Phoenix has stored it: with the spool empty, Phoenix has all it will get
    assert _spooled(env) == 0
    expected = sum(CYCLE_SPANS.values()) * cycles
    frame = own_phoenix.wait_for(project, count=expected)
    assert len(frame) == expected and frame["context.span_id"].is_unique  # nothing lost, nothing twice
    assert set(frame["context.trace_id"]) == set(traces)  # every cycle
    for trace_id, spans in frame.groupby("context.trace_id"):
        assert spans["span_kind"].value_counts().to_dict() == CYCLE_SPANS, trace_id  # each cycle whole
    assert (frame["span_kind"] == "LLM").sum() == calls  # every LLM call, exactly once
    assert (frame["parent_id"].isna()).sum() == cycles


@pytest.mark.xdist_group("own-phoenix")
def test_a_cycle_left_by_a_sigkilled_cogscope_is_sent_by_the_next_one(own_phoenix: OwnPhoenix, env, llm, project):
    llm.enqueue(ANSWER, prompt_tokens=300, completion_tokens=20, delay_s=2.0)
    environ = dict(env, PHOENIX_COLLECTOR_ENDPOINT=own_phoenix.url)
    beat = start_cogscope(
        environ, "heartbeat", "--cycles", "2", "--interval", "300",
        "--model", "openai/scripted", "--api-base", llm.api_base,
    )  # fmt: skip
    beat.wait_for(r"^=== Cycle 1/2 ===")
    own_phoenix.kill()  # the cycle ends while Phoenix is down
    beat.wait_for(r"^Totals:")
    trace_id, waiting = PENDING.findall(beat.text)[0]
    beat.proc.kill()  # SIGKILL: no drain, no goodbye
    beat.proc.wait(timeout=10)
    assert _spooled(env) >= int(waiting) > 0

    own_phoenix.start()
    later = subprocess.run(
        [*cogscope_command(), "traces"], env=environ, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert later.returncode == 0, later.stdout + later.stderr
    frame = own_phoenix.wait_for(project, count=1)
    mine = frame[frame["context.trace_id"] == trace_id]
    assert (mine["parent_id"].isna()).sum() == 1  # the root span: it ended after Phoenix died
    assert (mine["span_kind"] == "LLM").sum() == 1
    assert _spooled(env) == 0


def _cycle_spans(tracer, number: int) -> None:  # type: ignore[no-untyped-def]
    """The shape of a small cycle: root AGENT, run AGENT, one step with one LLM call and one tool."""
    with tracer.start_as_current_span("heartbeat.cycle", attributes={"openinference.span.kind": "AGENT"}):
        with tracer.start_as_current_span("heartbeat.run", attributes={"openinference.span.kind": "AGENT"}):
            with tracer.start_as_current_span("Step 1", attributes={"openinference.span.kind": "CHAIN"}):
                with tracer.start_as_current_span(
                    "LiteLLMModel.generate",
                    attributes={
                        "openinference.span.kind": "LLM",
                        "llm.token_count.prompt": 1000 + number,
                        "llm.token_count.completion": 10,
                        "input.value": "x" * 2000,
                    },
                ):
                    pass
                with tracer.start_as_current_span("recall_memory", attributes={"openinference.span.kind": "TOOL"}):
                    pass


# Phoenix spends ~0.02 CPU-s storing (and the sender finding) each span: 1,000 cycles against a queue of 300 cost
# 117 CPU-s, 300 against a queue of 100 cost 55 (bench/cpu_per_test.py) and Phoenix still pushed back 16 times
BURST_CYCLES = 300
BURST_QUEUE = 100


@pytest.mark.e2e  # starts a Phoenix of its own
def test_a_burst_faster_than_phoenix_ingests_all_arrives(tmp_path: Path, monkeypatch, project):
    # a small ingest queue (Phoenix answers 503 while it holds this many spans) against a burst of BURST_CYCLES
    # cycles written at once (5 spans each, sent 1,000 spans a request): Phoenix pushes back, and nothing is lost
    monkeypatch.setenv("PHOENIX_MAX_SPANS_QUEUE_SIZE", str(BURST_QUEUE))
    phoenix = OwnPhoenix(tmp_path / "phoenix").start()
    spool = Spool.in_dir(tmp_path / "data")
    tracing = setup_tracing(endpoint=phoenix.url + "/v1/traces", project_name=project, spool=spool)
    try:
        started = time.monotonic()
        for number in range(BURST_CYCLES):
            _cycle_spans(tracing.tracer(), number)
        written_s = time.monotonic() - started
        assert tracing.flush()  # every span handed to the spool
        assert spool.counts().pending > 0
        left = tracing.drain(600)
        assert left == 0
        assert tracing.sender is not None and tracing.sender.busy_answers > 0, "Phoenix never pushed back"
        frame = phoenix.wait_for(project, count=5 * BURST_CYCLES, timeout=300)
        assert len(frame) == 5 * BURST_CYCLES and frame["context.span_id"].is_unique
        assert frame["context.trace_id"].nunique() == BURST_CYCLES
        assert written_s < 600
    finally:
        tracing.shutdown()
        phoenix.stop()


@pytest.mark.e2e  # starts a Phoenix of its own
@pytest.mark.xdist_group("own-phoenix")
def test_a_span_sent_twice_shows_once(own_phoenix: OwnPhoenix, tmp_path: Path, project):
    spool = Spool.in_dir(tmp_path / "data")
    tracing = setup_tracing(endpoint=own_phoenix.url + "/v1/traces", project_name=project, spool=spool)
    kept: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            kept.append(span)

    tracing.provider.add_span_processor(Keep())
    try:
        _cycle_spans(tracing.tracer(), 1)
        assert tracing.drain(60) == 0
        assert len(own_phoenix.wait_for(project, count=5)) == 5
        spool.put(own_phoenix.url + "/v1/traces", kept)  # the same span ids again, as after a lost answer
        assert spool.counts().pending == 5
        _cycle_spans(tracing.tracer(), 2)  # a second trace, sent after the repeated spans
        assert tracing.flush() and spool.counts().pending == 10
        assert tracing.drain(60) == 0  # sent and found stored
        # Phoenix stores what it is sent in order: once the second trace is there, the repeated spans were handled
        frame = own_phoenix.wait_for(project, count=10)
        assert len(frame) == 10 and frame["context.span_id"].is_unique, frame["context.span_id"].value_counts()
        assert frame.groupby("context.trace_id").size().tolist() == [5, 5]
    finally:
        tracing.shutdown()


def test_a_full_spool_drops_new_spans_and_says_so(tmp_path: Path, caplog):
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=256 * 1024)
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"  # nothing listens: nothing leaves the spool
    tracing = setup_tracing(endpoint=dead, project_name="full", spool=spool)
    try:
        with caplog.at_level("WARNING", logger="cogscope.spool"):
            for number in range(200):
                _cycle_spans(tracing.tracer(), number)
            assert tracing.flush()  # the span writer has handed every span to the spool
        counts = spool.counts()
        assert counts.bytes <= 256 * 1024
        assert 0 < counts.pending < 1000
        assert spool.dropped_total() == 1000 - counts.pending
        full = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
        assert len(full) == 1 and "COGSCOPE_SPOOL_MB" in full[0]  # said once, not once per span
    finally:
        tracing.shutdown()


@pytest.mark.xdist_group("own-phoenix")
def test_the_run_tab_says_pending_while_phoenix_is_down_then_shows_the_link(own_phoenix: OwnPhoenix, env, llm, page):
    llm.enqueue(ANSWER, prompt_tokens=300, completion_tokens=20)
    with running_app(dict(env, PHOENIX_COLLECTOR_ENDPOINT=own_phoenix.url), llm) as app:
        page.goto(app.link)
        own_phoenix.kill()
        page.get_by_label("Task").fill("Decide the next action.")
        page.locator("#run-button").click()
        totals = page.locator("#run-totals")
        totals.get_by_text("trace pending upload").wait_for(timeout=60_000)
        assert totals.get_by_role("link", name="Open this trace in Phoenix").count() == 0  # no link that would 404
        trace_id = re.search(r"[0-9a-f]{32}", totals.inner_text()).group(0)
        page.screenshot(path=screenshot("run-tab-pending.png"), full_page=True)

        own_phoenix.start()
        link = totals.get_by_role("link", name="Open this trace in Phoenix")
        link.wait_for(timeout=90_000)  # the page updates by itself once the trace has landed
        assert link.get_attribute("href").endswith(f"/redirects/traces/{trace_id}")
        assert "pending" not in totals.inner_text()
        page.goto(link.get_attribute("href"))
        page.wait_for_url(re.compile(rf"/projects/.+/traces/{trace_id}"))
        page.get_by_text("heartbeat.cycle").first.wait_for()
