"""Benchmark: the span spool. A fleet of heartbeat processes exporting at once to one Phoenix on PostgreSQL, nothing
lost; what the spool costs per span; how much a real cycle takes on disk while Phoenix is away.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_spool.py [--processes 4] [--cycles 25]

Prints figures; asserts nothing about timings. Parts:

    (a) --processes `cogscope heartbeat` processes (each its own data dir, as on separate machines), --cycles cycles
        each with no pause, exporting at once to one Phoenix that stores in PostgreSQL (a throwaway cluster on
        127.0.0.1, tests/postgres.py). The scripted LLM (tests/scripted_llm.py) answers every call. Counted in the
        database afterwards: cycles, spans and LLM calls, against what the processes printed.
    (b) the cost of the spool per span on the agent's thread (redaction + OTLP encoding + SQLite insert), from
        10,000 spans written with the sender paused.
    (c) bytes on disk per span and per cycle of a real heartbeat cycle: a heartbeat run while its Phoenix is
        paused (SIGSTOP), the spool read, then Phoenix resumed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cogscope.telemetry import ensure_phoenix, free_port  # noqa: E402
from cogscope.telemetry.spool import SPOOL_FILE, Spool  # noqa: E402
from cogscope.telemetry.tracing import setup_tracing  # noqa: E402
from tests.postgres import TempPostgres  # noqa: E402
from tests.scripted_llm import ScriptedLLM  # noqa: E402

ANSWER = 'Thought: I know enough.\n<code>\nfinal_answer("Rest for ten minutes.")\n</code>'
COGSCOPE = str(Path(sys.executable).parent / "cogscope")


def _env(data_dir: Path, phoenix_url: str, project: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COGSCOPE_", "PHOENIX_"))}
    env.update(
        COGSCOPE_DATA_DIR=str(data_dir),
        PHOENIX_COLLECTOR_ENDPOINT=phoenix_url,
        COGSCOPE_PROJECT=project,
        COGSCOPE_DRAIN_TIMEOUT="300",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        OPENAI_API_KEY="sk-bench",
    )
    return env


def fleet(work: Path, processes: int, cycles: int, llm: ScriptedLLM) -> None:
    with TempPostgres() as pg:
        url = pg.create_database("phoenix")
        phoenix = ensure_phoenix(working_dir=work / "phoenix-pg", port=free_port(), database_url=url)
        try:
            for _ in range(processes * cycles):
                llm.enqueue(ANSWER, prompt_tokens=300, completion_tokens=20)
            started = time.monotonic()
            procs = [
                subprocess.Popen(
                    [
                        COGSCOPE,
                        "heartbeat",
                        "--cycles",
                        str(cycles),
                        "--interval",
                        "0",
                        "--model",
                        "openai/scripted",
                        "--api-base",
                        llm.api_base,
                    ],
                    env=_env(work / f"machine-{n}", phoenix.url, "fleet"),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    cwd=ROOT,
                )  # fmt: skip
                for n in range(processes)
            ]
            outs = [p.communicate(timeout=1800)[0] for p in procs]
            ran_s = time.monotonic() - started
            codes = [p.returncode for p in procs]
            traces = {t for out in outs for t in re.findall(r"^Trace:\s+([0-9a-f]{32})\s", out, re.MULTILINE)}
            calls = sum(int(c) for out in outs for c in re.findall(r"(\d+) LLM calls?\b", out))
            left = [sum(1 for _ in sqlite3.connect(work / f"machine-{n}" / SPOOL_FILE).execute("SELECT 1 FROM spans"))
                    for n in range(processes)]  # fmt: skip
            stored = pg.scalar("phoenix", "SELECT count(*) FROM spans")  # drained: Phoenix has them all stored
            roots = pg.scalar("phoenix", "SELECT count(*) FROM spans WHERE parent_id IS NULL")
            llm_spans = pg.scalar("phoenix", "SELECT count(*) FROM spans WHERE span_kind = 'LLM'")
            distinct = pg.scalar("phoenix", "SELECT count(DISTINCT span_id) FROM spans")
            print(f"(a) {processes} heartbeat processes x {cycles} cycles -> one Phoenix on PostgreSQL")
            print(f"    exit codes {codes}; ran and drained in {ran_s:.1f} s; left in the spools: {left}")
            print(f"    cycles printed {len(traces)}, root spans in PostgreSQL {roots}")
            print(f"    LLM calls printed {calls}, scripted LLM answered {len(llm.requests)}, LLM spans {llm_spans}")
            print(
                f"    spans stored {stored} ({distinct} distinct ids); {len(traces) / ran_s:.2f} cycles/s for the fleet"
            )
            lost = len(traces) - roots + calls - llm_spans
            print(f"    {'nothing lost, nothing twice' if lost == 0 and distinct == stored else 'MISMATCH'}")
        finally:
            phoenix.stop()


def spool_cost(work: Path, spans: int) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"
    spool = Spool.in_dir(work / "cost")
    tracing = setup_tracing(endpoint=dead, project_name="cost", spool=spool)
    assert tracing.sender is not None
    tracing.sender.stop()  # measure the writing side alone
    tracer = tracing.tracer()
    prompt = "You are a heartbeat agent. " * 80  # ~2 kB of prompt on each LLM span
    started = time.perf_counter()
    for n in range(spans // 5):
        with tracer.start_as_current_span("heartbeat.cycle"):
            with tracer.start_as_current_span("heartbeat.run"):
                with tracer.start_as_current_span("Step 1"):
                    with tracer.start_as_current_span("LLM", attributes={"input.value": prompt, "n": n}):
                        pass
                    with tracer.start_as_current_span("recall_memory"):
                        pass
    took = time.perf_counter() - started
    print(f"(b) {spans:,} spans through the spool (redact, encode, SQLite insert): {took / spans * 1e6:.0f} µs per "
          f"span on the agent's thread ({spans / took:,.0f} spans/s)")  # fmt: skip
    tracing.shutdown()


def real_cycle_size(work: Path, cycles: int, llm: ScriptedLLM) -> None:
    phoenix = ensure_phoenix(working_dir=work / "phoenix-sqlite", port=free_port())
    try:
        assert phoenix.process is not None
        for _ in range(cycles):
            llm.enqueue(ANSWER, prompt_tokens=300, completion_tokens=20)
        data = work / "paused"
        proc = subprocess.Popen(
            [COGSCOPE, "heartbeat", "--cycles", str(cycles), "--interval", "0", "--model", "openai/scripted",
             "--api-base", llm.api_base],
            env=_env(data, phoenix.url, "paused"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=ROOT,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Heartbeat:"):
                os.killpg(phoenix.process.pid, signal.SIGSTOP)  # Phoenix stops answering: spans stay spooled
            if line.startswith("Waiting up to"):
                break
        db = sqlite3.connect(data / SPOOL_FILE)
        count, body = db.execute("SELECT count(*), total(length(body)) FROM spans").fetchone()
        pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        used = pages * db.execute("PRAGMA page_size").fetchone()[0]
        os.killpg(phoenix.process.pid, signal.SIGCONT)
        proc.communicate(timeout=600)
        per_span = used / max(count, 1)
        print(f"(c) a real heartbeat cycle while Phoenix is paused: {count / cycles:.1f} spans, "
              f"{body / max(count, 1) / 1024:.1f} kB of OTLP per span, {used / cycles / 1024:.0f} kB on disk per cycle;"
              f" the default 512 MB spool holds ~{512 * 1024 * 1024 / per_span:,.0f} such spans "
              f"(~{512 * 1024 * 1024 / (used / cycles):,.0f} cycles)")  # fmt: skip
    finally:
        phoenix.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=25, help="cycles per process (default 25)")
    parser.add_argument("--spans", type=int, default=10_000)
    args = parser.parse_args()
    llm = ScriptedLLM().start()
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as tmp:
        work = Path(tmp)
        real_cycle_size(work, 10, llm)
        llm.reset()
        spool_cost(work, args.spans)
        fleet(work, args.processes, args.cycles, llm)
    llm.stop()


if __name__ == "__main__":
    main()
