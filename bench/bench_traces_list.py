"""Benchmark: listing 1,000 cycles in the Traces tab (telemetry.cycle_list.list_cycles against a real Phoenix).

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_traces_list.py [--cycles 1000] [--repeats 3]

Prints figures; it is not a test and asserts nothing about timings. A real `phoenix serve` (SQLite in a temp
dir) receives synthetic cycles over real OTLP/HTTP (bench/synthetic.py), shaped like the heartbeat's traces (no
LLM involved): per cycle 11 spans: root AGENT "heartbeat.cycle" with cogscope's attributes > AGENT "heartbeat.run"
> 3 CHAIN "Step N", each with an LLM span (1000 prompt + 100 completion tokens, openai/gpt-4o-mini) and a TOOL span.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synthetic import COMPLETION, PROMPT, STEPS, Loader, proc_status, reset_peak_rss, spans_per_cycle  # noqa: E402

from cogscope.telemetry import CycleFilter, Prices, ensure_phoenix, free_port, list_cycles, phoenix_client  # noqa: E402

PROJECT = "bench-traces"
TOOL_STEPS = (1, 2, 3)
SPANS_PER_CYCLE = spans_per_cycle(TOOL_STEPS)  # 11
DAY_NS = 24 * 3600 * 10**9


def load(endpoint: str, n: int) -> dict[str, int]:
    """Send n synthetic cycles spread over the last 24 h; returns how many of each status."""
    loader = Loader(endpoint, PROJECT, TOOL_STEPS)
    now = time.time_ns()
    try:
        loader.send([now - DAY_NS + i * (DAY_NS // n) for i in range(n)])
    finally:
        loader.close()
    return loader.counts


def rss_mb() -> float:
    return proc_status("VmRSS")


def peak_rss_mb() -> float:
    return proc_status("VmHWM")


FRESH = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm  # noqa: F401  (loaded in the app anyway; list_cycles imports it for prices)
from cogscope.telemetry import phoenix_client
from cogscope.telemetry import CycleFilter, Prices, list_cycles

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024

client = phoenix_client(sys.argv[2])
kwargs = json.loads(sys.argv[4])
if kwargs.pop("failed_only", False):
    kwargs["filter"] = CycleFilter(failed_only=True)
list_cycles(client, prices=Prices(), project=sys.argv[3], limit=1)  # warm-up: lazy imports, first connection
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
rows = len(list_cycles(client, prices=Prices(), project=sys.argv[3], **kwargs))
print(json.dumps({"rows": rows, "before": before, "peak": status("VmHWM")}))
"""


def fresh_process_rss(url: str, kwargs: dict[str, object]) -> dict[str, float]:
    """Peak RSS of one list_cycles call in a fresh process, over its RSS after imports and a 1-row warm-up call."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", FRESH, str(ROOT), url, PROJECT, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        print(f"  fresh-process RSS measurement failed: {out.stderr.strip().splitlines()[-1:]}")
        return {"rows": 0, "before": float("nan"), "peak": float("nan")}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str, fn, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    times, peaks, befores = [], [], []
    result = None
    for _ in range(repeats):
        gc.collect()
        befores.append(rss_mb())
        clean = reset_peak_rss()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
        peaks.append(peak_rss_mb() if clean else float("nan"))
        del result
    gc.collect()
    tracemalloc.start()  # a separate, untimed call: tracemalloc slows Python down
    result = fn()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows = len(result)
    print(
        f"  {name}: rows={rows} times=" + ", ".join(f"{x:.2f}" for x in times) + " s; "
        "peak RSS during call="
        + ", ".join(f"{p:.0f}" for p in peaks)
        + " MB (before: "
        + ", ".join(f"{b:.0f}" for b in befores)
        + f" MB); tracemalloc peak={traced_peak / 2**20:.1f} MB"
    )
    return {
        "rows": rows,
        "median_s": statistics.median(times),
        "peak_rss_mb": statistics.median(peaks),
        "rss_before_mb": statistics.median(befores),
        "traced_peak_mb": traced_peak / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for Phoenix to ingest")
    args = parser.parse_args()
    n = args.cycles

    print("cogscope bench: listing cycles in the Traces tab")
    print(f"  {n} synthetic heartbeat cycles ({SPANS_PER_CYCLE} spans each, {n * SPANS_PER_CYCLE} spans, ~15% failed)")
    print("  sent over OTLP/HTTP to a real Phoenix (SQLite), start times spread over the last 24 h.")
    print("  measured: telemetry.cycle_list.list_cycles() wall time (median of", args.repeats, "calls) for")
    print("    (a) all cycles, (b) failed only (CycleFilter(failed_only=True)), (c) the first page of 50.")
    print("  memory: peak RSS (Linux VmHWM, reset before the call via /proc/self/clear_refs) of a fresh process")
    print("    that imports litellm + telemetry and makes one call (its growth over the RSS after imports is what")
    print("    the listing costs), the same in this process, and the peak of Python allocations (tracemalloc).")
    print(f"  machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print()

    tmp = Path(tempfile.mkdtemp(prefix="cogscope-bench-traces-"))
    phoenix = None
    try:
        t = time.perf_counter()
        phoenix = ensure_phoenix(working_dir=tmp / "phoenix", port=free_port())
        print(f"Phoenix {phoenix.version} started at {phoenix.url} in {time.perf_counter() - t:.1f} s")
        client = phoenix_client(phoenix.url)

        t = time.perf_counter()
        counts = load(phoenix.collector_endpoint, n)
        sent_s = time.perf_counter() - t
        failed_expected = sum(v for k, v in counts.items() if k != "ok")
        print(f"sent {n} cycles ({n * SPANS_PER_CYCLE} spans) in {sent_s:.1f} s; statuses: {counts}")

        t = time.perf_counter()
        deadline = time.monotonic() + args.timeout
        listed = list_cycles(client, prices=Prices(), project=PROJECT, limit=None)
        while time.monotonic() < deadline and (len(listed) < n or int(listed["llm_calls"].sum()) < STEPS * n):
            time.sleep(2)
            listed = list_cycles(client, prices=Prices(), project=PROJECT, limit=None)
        ingest_s = time.perf_counter() - t
        print(
            f"Phoenix lists {len(listed)}/{n} cycles, {int(listed['llm_calls'].sum())} LLM calls "
            f"after waiting {ingest_s:.1f} s more"
        )
        if len(listed) < n:
            print(f"WARNING: Phoenix did not ingest all {n} cycles within {args.timeout:.0f} s")

        print("\nmeasuring:")
        a = measure(
            "(a) all cycles", lambda: list_cycles(client, prices=Prices(), project=PROJECT, limit=None), args.repeats
        )
        b = measure(
            "(b) failed only",
            lambda: list_cycles(
                client, prices=Prices(), project=PROJECT, filter=CycleFilter(failed_only=True), limit=None
            ),
            args.repeats,
        )
        c = measure(
            "(c) first page of 50",
            lambda: list_cycles(client, prices=Prices(), project=PROJECT, limit=50),
            args.repeats,
        )

        print("\nfresh-process RSS (one call each, after imports and a 1-row warm-up call):")
        fresh = {}
        for key, kwargs in (("a", {"limit": None}), ("b", {"failed_only": True, "limit": None}), ("c", {"limit": 50})):
            fresh[key] = fresh_process_rss(phoenix.url, kwargs)
            print(
                f"  ({key}) rows={fresh[key]['rows']} RSS before={fresh[key]['before']:.0f} MB, "
                f"peak during call={fresh[key]['peak']:.0f} MB"
            )

        # correctness of the totals
        import litellm

        price = litellm.model_cost["gpt-4o-mini"]
        expected_cost = STEPS * (PROMPT * price["input_cost_per_token"] + COMPLETION * price["output_cost_per_token"])
        everything = list_cycles(client, prices=Prices(), project=PROJECT, limit=None)
        failed = list_cycles(client, prices=Prices(), project=PROJECT, filter=CycleFilter(failed_only=True), limit=None)
        page = list_cycles(client, prices=Prices(), project=PROJECT, limit=50)
        llm_calls = int(everything["llm_calls"].sum())
        tokens = sorted(set(int(x) for x in everything["tokens"]))
        steps = sorted(set(int(x) for x in everything["steps"]))
        costs = everything["cost_usd"].astype(float)
        cost_ok = bool((costs - expected_cost).abs().max() < 1e-12)
        page_ok = list(page["trace_id"]) == list(everything["trace_id"].head(50))
        newest_first = bool(everything["start_time"].is_monotonic_decreasing)

        print(f"\n=== traces list benchmark ({n} cycles, {n * SPANS_PER_CYCLE} spans, medians of {args.repeats}) ===")
        print(f"Phoenix: {phoenix.version} (SQLite)")
        print(
            f"load {n} cycles s: {sent_s + ingest_s:.1f} (OTLP send {sent_s:.1f} + until Phoenix lists them all "
            f"{ingest_s:.1f})"
        )
        print(f"list all {a['rows']} cycles s: {a['median_s']:.2f}")
        print(f"list failed only ({b['rows']} cycles) s: {b['median_s']:.2f}")
        print(f"list first page of {c['rows']} s: {c['median_s']:.2f}")
        for key, label in (("a", "list all"), ("b", "failed only"), ("c", "first page")):
            f = fresh[key]
            print(
                f"peak RSS MB, {label} (fresh process, VmHWM): {f['peak']:.0f} "
                f"(+{f['peak'] - f['before']:.0f} over {f['before']:.0f} after imports)"
            )
        print(
            f"peak RSS MB, list all (this benchmark process, VmHWM): {a['peak_rss_mb']:.0f} "
            f"(RSS before: {a['rss_before_mb']:.0f})"
        )
        print(
            f"Python allocations peak MB (tracemalloc), all / failed / page: "
            f"{a['traced_peak_mb']:.1f} / {b['traced_peak_mb']:.1f} / {c['traced_peak_mb']:.1f}"
        )
        print(f"cycles listed: {len(everything)} (expected {n}): {'ok' if len(everything) == n else 'WRONG'}")
        print(
            f"failed listed: {len(failed)} (expected {failed_expected}): "
            f"{'ok' if len(failed) == failed_expected else 'WRONG'}"
        )
        print(f"sum of llm_calls: {llm_calls} (expected {STEPS * n}): {'ok' if llm_calls == STEPS * n else 'WRONG'}")
        print(
            f"tokens per cycle: {tokens} (expected [{STEPS * (PROMPT + COMPLETION)}]): "
            f"{'ok' if tokens == [STEPS * (PROMPT + COMPLETION)] else 'WRONG'}"
        )
        print(f"steps per cycle: {steps} (expected [{STEPS}]): {'ok' if steps == [STEPS] else 'WRONG'}")
        print(
            f"cost per cycle USD: {costs.iloc[0]:.6f} (expected {expected_cost:.6f} = {STEPS} x ({PROMPT} x "
            f"{price['input_cost_per_token']:g} + {COMPLETION} x {price['output_cost_per_token']:g})): "
            f"{'ok' if cost_ok else 'WRONG'}"
        )
        print(f"total cost USD: {costs.sum():.4f}")
        print(f"first page = newest 50 of the full list: {'ok' if page_ok and newest_first else 'WRONG'}")
        return 0
    finally:
        if phoenix is not None:
            phoenix.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
