"""Benchmark: replay wall time as a fraction of the original cycle's wall time, for a 10-step recorded cycle.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_replay.py [--llm-latency 0.8 [0 ...]] [--repeats 3]

Prints figures; it is not a test and asserts nothing about timings. Everything is real except the LLM:
a real `phoenix serve` (SQLite in a temp dir), real OTLP export, the real heartbeat agent and its SQLite
memory store, LiteLLM over real HTTP to the scripted OpenAI-compatible server of tests/scripted_llm.py,
which sleeps --llm-latency seconds per call to stand in for model latency.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cogscope.telemetry import ensure_phoenix, free_port, phoenix_client, wait_for_trace  # noqa: E402
from tests.scripted_llm import ScriptedLLM  # noqa: E402

PROJECT = "bench-replay"
MODEL = "openai/scripted"
STEPS = 10
TASK = "Recall what you know about my energy, focus and goals, then decide the next action."

# Nine cheap, read-only tool steps, then the final answer. Only tools whose output depends on the memory store's
# contents alone: observe() prints the energy left and the recent action log (with random cycle ids), so a replay
# with real tools would rightly report a divergence at every observe() step.
TOOL_STEPS = [
    'print(recall_memory(query="energy", limit=2))',
    "print(review_goals())",
    'print(recall_memory(query="sleep", limit=2))',
    'print(recall_memory(query="focus deep work", limit=2))',
    'print(recall_memory(query="goals outline", limit=2))',
    'print(recall_memory(query="routine morning", limit=2))',
    "print(review_goals())",
    'print(recall_memory(query="emotion plan", limit=2))',
    'print(recall_memory(query="social friends", limit=2))',
]
FINAL = 'final_answer("Protect the morning deep-work block; check in briefly at 8.")'


def script_cycle(llm: ScriptedLLM, delay_s: float) -> None:
    for i, code in enumerate(TOOL_STEPS, start=1):
        llm.enqueue(f"Thought: step {i}, gather more.\n<code>\n{code}\n</code>", 1000, 60, delay_s)
    llm.enqueue(f"Thought: enough, decide.\n<code>\n{FINAL}\n</code>", 1000, 40, delay_s)


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--llm-latency",
        type=float,
        nargs="+",
        default=[0.8],
        help="seconds the scripted LLM waits before each reply (one or more values; default 0.8)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="replays of each kind; the median is printed")
    args = parser.parse_args()

    print("cogscope bench: replay wall time vs the original cycle")
    print(f"  one recorded heartbeat cycle of {STEPS} steps ({len(TOOL_STEPS)} real tool calls, then final_answer),")
    print("  scripted OpenAI-compatible LLM with a fixed latency per call, real Phoenix, real OTLP, real tools.")
    print("  original = cycle.run() (10 LLM calls, spans flushed at the end);")
    print("  replay   = runtime.prepare_replay(trace_id) [trace read back from Phoenix, agent rebuilt]")
    print("             + replay.cycle.run() + replay.report(); zero LLM calls, model outputs from the trace.")
    print(f"  each replay kind is run {args.repeats} times; medians printed. Energy is reset to 100 before every run")
    print("  so each one gets the same step budget. A 1-step warm-up cycle (not counted) runs first.")
    print(f"  machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print()

    tmp = Path(tempfile.mkdtemp(prefix="cogscope-bench-replay-"))
    phoenix = None
    llm = None
    runtime = None
    results: list[dict[str, object]] = []
    try:
        t0 = time.perf_counter()
        phoenix = ensure_phoenix(working_dir=tmp / "phoenix", port=free_port())
        print(f"Phoenix {phoenix.version} started at {phoenix.url} in {time.perf_counter() - t0:.1f} s")
        llm = ScriptedLLM().start()

        os.environ.update(
            COGSCOPE_DATA_DIR=str(tmp / "data"),
            PHOENIX_COLLECTOR_ENDPOINT=phoenix.url,
            COGSCOPE_PROJECT=PROJECT,
            COGSCOPE_MODEL=MODEL,
            COGSCOPE_API_BASE=llm.api_base,
            COGSCOPE_LLM_PORT=str(free_port()),
        )
        from cogscope.agents.heartbeat import open_store
        from cogscope.ui.config import Settings
        from cogscope.ui.runtime import Runtime

        settings = Settings.from_env()
        runtime = Runtime.start(settings, set_global=False)
        store = open_store(settings.data_dir / "memory.sqlite")  # the same process-wide store the agent uses
        client = phoenix_client(phoenix.url)

        def fresh_energy() -> None:
            store.set_energy(current=store.energy().max)

        def new_cycle(task: str):  # type: ignore[no-untyped-def]
            cycle = runtime.prepare_cycle(
                agent="heartbeat",
                task=task,
                models={"default": MODEL},
                api_base=llm.api_base,
                options={"max_steps": STEPS},
            )
            cycle.keep_spans = True  # result.spans: how many spans to wait for in Phoenix before replaying
            return cycle

        # warm-up: first LiteLLM call, first export, first Phoenix query (one-time costs, not counted)
        llm.enqueue('Thought: done.\n<code>\nfinal_answer("warm")\n</code>', 100, 10, 0.0)
        fresh_energy()
        warm = new_cycle("warm-up").run()
        wait_for_trace(client, project=PROJECT, trace_id=warm.trace_id, min_spans=len(warm.spans), timeout=60)

        for latency in args.llm_latency:
            print(f"\n--- LLM latency {latency:g} s per call ---")
            script_cycle(llm, latency)
            fresh_energy()
            t = time.perf_counter()
            cycle = new_cycle(TASK)
            prepare_s = time.perf_counter() - t
            t = time.perf_counter()
            result = cycle.run()
            original_s = time.perf_counter() - t
            steps = len([s for s in cycle.agent.memory.steps if type(s).__name__ == "ActionStep"])
            print(
                f"original: status={result.status} steps={steps} llm_calls={result.totals.llm_calls} "
                f"spans={len(result.spans)} run={original_s:.2f} s (prepare_cycle {prepare_s:.2f} s)"
            )
            if result.status != "ok" or steps != STEPS:
                print(f"  WARNING: expected an ok cycle of {STEPS} steps; error: {result.error}")
            t = time.perf_counter()
            frame = wait_for_trace(
                client, project=PROJECT, trace_id=result.trace_id, min_spans=len(result.spans), timeout=120
            )
            print(
                f"  Phoenix has {len(frame)}/{len(result.spans)} spans of trace {result.trace_id} "
                f"(waited {time.perf_counter() - t:.2f} s)"
            )

            row: dict[str, object] = {"latency": latency, "original": original_s, "trace_id": result.trace_id}
            for stub in (False, True):
                kind = "stubbed" if stub else "real"
                walls, prepares, runs, reports = [], [], [], []
                reproduced_all = True
                llm_calls = 0
                replayed = 0
                for i in range(args.repeats):
                    fresh_energy()
                    before = len(llm.requests)
                    t = time.perf_counter()
                    replay = runtime.prepare_replay(result.trace_id, stub=stub)
                    t1 = time.perf_counter()
                    replay.cycle.run()
                    t2 = time.perf_counter()
                    reproduced, divergence = replay.report()
                    t3 = time.perf_counter()
                    walls.append(t3 - t)
                    prepares.append(t1 - t)
                    runs.append(t2 - t1)
                    reports.append(t3 - t2)
                    llm_calls += len(llm.requests) - before
                    replayed = replay.model.replayed
                    reproduced_all &= reproduced
                    print(
                        f"  replay ({kind} tools) #{i + 1}: {t3 - t:.2f} s = prepare {t1 - t:.2f} + run {t2 - t1:.2f}"
                        f" + report {t3 - t2:.3f}; outputs replayed {replay.model.replayed}, "
                        f"LLM calls {len(llm.requests) - before}, reproduced {'yes' if reproduced else 'no'}"
                    )
                    if divergence is not None:
                        print("    " + divergence.line().replace("\n", "\n    "))
                row[f"{kind}_wall"] = median(walls)
                row[f"{kind}_prepare"] = median(prepares)
                row[f"{kind}_run"] = median(runs)
                row[f"{kind}_report"] = median(reports)
                row[f"{kind}_llm_calls"] = llm_calls
                row[f"{kind}_replayed"] = replayed
                row[f"{kind}_reproduced"] = reproduced_all
            results.append(row)

        print("\n=== replay benchmark (medians of", args.repeats, "replays each) ===")
        print(f"cycle: heartbeat, {STEPS} steps ({len(TOOL_STEPS)} tool calls + final_answer), {STEPS} LLM calls")
        for row in results:
            lat = f"{row['latency']:g}s"
            orig = float(row["original"])  # type: ignore[arg-type]
            print(f"[llm latency {lat}/call]")
            print(f"original wall s: {orig:.2f}")
            for kind, label in (("real", "tools real"), ("stubbed", "tools stubbed")):
                wall = float(row[f"{kind}_wall"])  # type: ignore[arg-type]
                print(
                    f"replay wall s ({label}): {wall:.2f}"
                    f"  (prepare {float(row[f'{kind}_prepare']):.2f} + run {float(row[f'{kind}_run']):.2f}"  # type: ignore[arg-type]
                    f" + report {float(row[f'{kind}_report']):.3f})"
                )  # type: ignore[arg-type]
                print(f"replay/original ({label}): {wall / orig:.2f}")
            print(
                f"LLM calls during replay: {int(row['real_llm_calls']) + int(row['stubbed_llm_calls'])}"  # type: ignore[arg-type]
                f" (over {2 * args.repeats} replays; outputs replayed per replay: {row['real_replayed']})"
            )
            print(f"reproduced (tools real): {'yes' if row['real_reproduced'] else 'no'}")
            print(f"reproduced (tools stubbed): {'yes' if row['stubbed_reproduced'] else 'no'}")
        return 0
    finally:
        if runtime is not None:
            runtime.close()  # flushes spans; leaves alone the Phoenix it did not start
        if llm is not None:
            llm.stop()
        if phoenix is not None:
            phoenix.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
