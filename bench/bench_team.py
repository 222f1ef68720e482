"""Benchmark: one `cogscope ui` shared by many sessions at once, on a scripted API model that takes 1 s a call.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_team.py [--sessions 20 50] [--delay 1.0]

Starts a Phoenix, the scripted OpenAI-compatible server (tests/scripted_llm.py) and `cogscope ui` on its defaults
(`COGSCOPE_MAX_CYCLES` unset unless --max-cycles), as a user starts them. Each session is a Gradio API client of
its own (gradio_client, its own session) that runs one heartbeat cycle whose task names the session (`S07`). The
scripted model answers every call after `--delay` seconds from what the call holds: three steps that print the
session's name, then a final answer with it: a 4-call cycle, as in issue #14.

For one cycle alone and then for each batch of N sessions started together it prints:

- wall time of the batch against one cycle alone (target: 1.5x or less);
- cycles finished, and cross-talk: a call or a page that holds another session's name (target: none);
- traces complete in Phoenix: each cycle's root span and its 4 LLM spans, found by the trace id its page showed;
- peak memory (RSS) of the app, with its sandbox workers, and of Phoenix, sampled every 0.2 s.

Everything runs on loopback. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cogscope.telemetry import ensure_phoenix, free_port, phoenix_client  # noqa: E402
from tests.conftest import cogscope_command, wait_for_app  # noqa: E402
from tests.scripted_llm import Reply, ScriptedLLM, task_marker  # noqa: E402

PROJECT = "bench-team"
CALLS = 4
NAME = re.compile(r"\bS\d{3}\b")
TRACE = re.compile(r"Trace `([0-9a-f]{32})`")


def name_of(body: dict[str, Any]) -> str:
    return task_marker(body, NAME)


def responder(delay_s: float):  # type: ignore[no-untyped-def]
    def respond(body: dict[str, Any]) -> Reply:
        name = name_of(body)
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        code = f'print("{name} step {done + 1}")' if done + 1 < CALLS else f'final_answer("{name}")'
        return Reply(f"Thought: step {done + 1} for {name}.\n<code>\n{code}\n</code>", 500, 40, delay_s)

    return respond


class Peak:
    """Samples the RSS of a process and its children until stopped."""

    def __init__(self, pid: int, children: bool = True) -> None:
        self.process = psutil.Process(pid)
        self.children = children
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        processes = [self.process, *(self.process.children(recursive=True) if self.children else [])]
        total = 0
        for p in processes:
            try:
                if self.children and "phoenix" in " ".join(p.cmdline()):
                    continue  # Phoenix is measured on its own
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> Peak:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def client_for(url: Any) -> Any:
    """A Gradio API client of its own, with the app's operator token (the App's headers)."""
    from gradio_client import Client

    return Client(url, verbose=False, headers=url.headers)


def cpu_seconds(pid: int, children: bool = True) -> float:
    """CPU seconds of a process and, with `children`, of its children (ended ones included, once reaped)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + (times.children_user + times.children_system if children else 0.0)


def run_session(client: Any, api_base: str, name: str, memory_dir: Path) -> dict[str, Any]:
    # a memory store of its own: the heartbeat agent spends energy from its store, and 50 cycles on one store
    # would run out of it (shorter step budgets, then no steps), which is the agent's rule, not cross-talk
    options = f"memory={memory_dir / f'{name}.sqlite'}"
    started = time.monotonic()
    chat, status, totals, _state = client.predict(
        "heartbeat", "openai/scripted", "", "", "", api_base, options, "", f"Decide the next action for {name}.",
        api_name="/run_cycle",
    )  # fmt: skip
    shown = json.dumps(chat) + str(totals)
    found = TRACE.search(str(totals))
    return {
        "name": name,
        "seconds": time.monotonic() - started,
        "ok": "Cycle finished" in str(status),
        "status": f"{status} {totals}",
        "others": sorted(set(NAME.findall(shown)) - {name}),
        "answer": f'"{name}"' in shown or f"{name}" in shown,
        "trace_id": found.group(1) if found else None,
    }


def batch(url: str, llm: ScriptedLLM, names: list[str], memory_dir: Path) -> tuple[float, list[dict[str, Any]]]:
    """Each session a client of its own, connected first; then all start their cycle at once."""
    with ThreadPoolExecutor(len(names)) as pool:
        clients = list(pool.map(lambda _: client_for(url), names))
        started = time.monotonic()
        results = list(pool.map(lambda c, n: run_session(c, llm.api_base, n, memory_dir), clients, names))
    return time.monotonic() - started, results


def complete_traces(phoenix_url: str, trace_ids: list[str], timeout: float = 120) -> int:
    """How many of `trace_ids` Phoenix holds with their root span and all CALLS LLM spans."""
    deadline = time.monotonic() + timeout
    complete = 0
    while time.monotonic() < deadline:
        frame = phoenix_client(phoenix_url).spans.get_spans_dataframe(project_identifier=PROJECT, limit=100_000)
        if frame is not None and not frame.empty:
            mine = frame[frame["context.trace_id"].isin(trace_ids)]
            roots = mine[mine["parent_id"].isna()].groupby("context.trace_id").size()
            llm = mine[mine["span_kind"] == "LLM"].groupby("context.trace_id").size()
            complete = sum(1 for t in trace_ids if roots.get(t, 0) == 1 and llm.get(t, 0) == CALLS)
            if complete == len(trace_ids):
                return complete
        time.sleep(1.0)
    return complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each model call takes")
    parser.add_argument("--max-cycles", type=int, help="COGSCOPE_MAX_CYCLES (default: the app's own)")
    args = parser.parse_args()

    llm = ScriptedLLM().start()
    llm.respond(responder(args.delay))
    with tempfile.TemporaryDirectory(prefix="cogscope-bench-team-") as tmp:
        phoenix = ensure_phoenix(working_dir=Path(tmp) / "phoenix", port=free_port())
        port = free_port()
        env = dict(
            os.environ,
            COGSCOPE_DATA_DIR=str(Path(tmp) / "data"),
            COGSCOPE_PORT=str(port),
            COGSCOPE_PROJECT=PROJECT,
            PHOENIX_COLLECTOR_ENDPOINT=phoenix.url,
            COGSCOPE_MODEL="openai/scripted",
            COGSCOPE_API_BASE=llm.api_base,
            COGSCOPE_LLM_PORT=str(free_port()),
            OPENAI_API_KEY="sk-bench-not-a-key",
        )
        if args.max_cycles:
            env["COGSCOPE_MAX_CYCLES"] = str(args.max_cycles)
        log = open(Path(tmp) / "ui.log", "w+")  # noqa: SIM115
        app = subprocess.Popen([*cogscope_command(), "ui"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            url = wait_for_app(f"http://127.0.0.1:{port}", app, Path(tmp) / "ui.log", timeout=120)
            assert url is not None, "cogscope ui did not answer"
            print(f"cogscope ui up; {CALLS}-call heartbeat cycles, {args.delay:g} s per call, 2 cores")
            memory_dir = Path(tmp) / "memory"
            memory_dir.mkdir()
            batch(url, llm, ["S000"], memory_dir)  # warm-up: imports, the first sandbox worker
            alone = statistics.median(batch(url, llm, [f"S00{i}"], memory_dir)[0] for i in range(1, 4))
            print(f"one cycle alone: {alone:.2f} s (median of 3)")
            phoenix_peak = Peak(phoenix.process.pid, children=False) if phoenix.process else None

            def phoenix_cpu_seconds() -> float:
                return cpu_seconds(phoenix.process.pid, children=False) if phoenix.process else 0.0

            for n in args.sessions:
                names = [f"S{100 + i:03d}" if n < 900 else f"S{i:03d}" for i in range(n)]
                llm.requests.clear()
                cpu_before, app_before = cpu_seconds(app.pid), cpu_seconds(app.pid, children=False)
                phoenix_before = phoenix_cpu_seconds()
                own_before = cpu_seconds(os.getpid(), children=False)
                with Peak(app.pid) as peak:
                    if phoenix_peak:
                        phoenix_peak.__enter__()
                    wall, results = batch(url, llm, names, memory_dir)
                    if phoenix_peak:
                        phoenix_peak.__exit__()
                cpu = cpu_seconds(app.pid) - cpu_before
                app_cpu = cpu_seconds(app.pid, children=False) - app_before
                phoenix_cpu = phoenix_cpu_seconds() - phoenix_before
                own_cpu = cpu_seconds(os.getpid(), children=False) - own_before
                finished = sum(r["ok"] for r in results)
                crossed = [r for r in results if r["others"] or not r["answer"]]
                calls_crossed = sum(
                    1 for body in llm.requests if len(set(NAME.findall(str(body.get("messages"))))) != 1
                )
                traces = [r["trace_id"] for r in results if r["trace_id"]]
                complete = complete_traces(phoenix.url, traces)
                slowest = max(r["seconds"] for r in results)
                print(
                    f"{n} sessions: wall {wall:.2f} s = {wall / alone:.2f}x one cycle alone (slowest session "
                    f"{slowest:.2f} s); finished {finished}/{n}; cross-talk: {len(crossed)} pages, {calls_crossed} "
                    f"calls; traces complete in Phoenix {complete}/{n}; peak RSS app + sandbox workers "
                    f"{peak.peak / 2**20:,.0f} MiB; CPU of the app and its workers {cpu:.1f} s "
                    f"({cpu / n:.2f} s a cycle, {app_cpu / n:.2f} s of it in the app's own process), "
                    f"Phoenix {phoenix_cpu:.1f} s, this bench's clients and scripted model {own_cpu:.1f} s"
                    + (f", Phoenix {phoenix_peak.peak / 2**20:,.0f} MiB" if phoenix_peak else "")
                )
                for r in results:
                    if not r["ok"]:
                        print(f"  {r['name']}: {r['status'][:400]}")
                phoenix_peak = Peak(phoenix.process.pid, children=False) if phoenix.process else None
        finally:
            app.terminate()
            app.wait(timeout=60)
            phoenix.stop()
            llm.stop()
            log.close()


if __name__ == "__main__":
    main()
