"""Benchmark: the Dashboard tab over a big project (telemetry.figures.CycleFigures against a real Phoenix).

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_dashboard.py [--cycles 100000] [--refreshes 3]
        [--phoenix-dir DIR]    # keep the loaded Phoenix there; a second run loads only what it lacks

Prints figures; it is not a test and asserts nothing about timings. A real `phoenix serve` (SQLite in a temp
dir) receives synthetic cycles over real OTLP/HTTP, 10 spans each, shaped like the heartbeat's traces (no LLM
involved): root AGENT "heartbeat.cycle" (cogscope.agent, cogscope.model, cogscope.cycle.status ~15% failed,
session.id) > AGENT "heartbeat.run" > 3 x (CHAIN "Step n" > LLM "LiteLLMModel.generate", 1000 prompt + 100
completion tokens of openai/gpt-4o-mini), plus a TOOL "recall_memory" under steps 1 and 2. Start times are spread
over the last 7 days. The spans go through cogscope's own tracer set-up, so, as in a real cycle, each LLM span gets
`cogscope.role`/`cogscope.step` from telemetry.roles.CallAnnotator and the root `cogscope.cycle.tool_s`.

Measured, as the Dashboard tab's Refresh does it (ui/dashboard_tab.py: dashboard()):
  first load:  a fresh CycleFigures(client, project).refresh() (all time), then select(figures, Scope()),
               per_cycle(...), summary(..., interval_s=5, prices=Prices()), breakdown(calls, prices, "role");
               wall time and peak RSS (VmHWM) in a fresh process, after its imports and a warm-up query;
  refresh:     100 newer cycles arrive; the same CycleFigures object's refresh() + the same figures, timed
               --refreshes times (a new batch of 100 each time), median printed;
  extra:       the tab's own handler, ui.dashboard_tab.dashboard(), with a stand-in runtime (table, plot frames
               and CSV included), unless --no-tab;
  in memory:   when N < 100,000, the client side (pandas) at 100,000 cycles: the frames Phoenix returned for N
               cycles repeated with fresh ids, no Phoenix time (--profile: cProfile of it and of a real first load).

Phoenix ingests a few hundred spans/s on a small machine, so 100,000 cycles (1M spans) take over an hour to
load; --cycles picks N and the summary extrapolates to 100,000 cycles (linear in rows) when N is smaller.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import synthetic  # noqa: E402
from synthetic import (  # noqa: E402
    COMPLETION,
    MODEL,
    PROMPT,
    STEPS,
    Loader,
    proc_status,
    reset_peak_rss,
    spans_per_cycle,
)

from cogscope.telemetry import ensure_phoenix, free_port, phoenix_client, trace_url  # noqa: E402
from cogscope.telemetry.figures import CycleFigures, Scope, breakdown, per_cycle, select, summary  # noqa: E402
from cogscope.telemetry.prices import Prices  # noqa: E402

PROJECT = "bench-dashboard"
TOOL_STEPS = (1, 2)
SPANS_PER_CYCLE = spans_per_cycle(TOOL_STEPS)  # 10
TARGET_CYCLES = 100_000
NEW_CYCLES = 100
WEEK_NS = 7 * 24 * 3600 * 10**9
INTERVAL_S = 5.0


def count_spans(client: Any, where: str | None) -> int:
    return synthetic.count_spans(client, PROJECT, where)


def wait_listed(client: Any, cycles: int, timeout: float, poll: float = 5.0, quiet: bool = False) -> tuple[float, bool]:
    """Wait until Phoenix lists `cycles` roots and all their spans; (seconds waited, complete)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    last_print = 0.0
    roots = spans = 0
    while True:
        roots = count_spans(client, "parent_id is None")
        if roots >= cycles:
            spans = count_spans(client, None)
            if spans >= cycles * SPANS_PER_CYCLE:
                return time.perf_counter() - t0, True
        if time.monotonic() > deadline:
            print(f"  WARNING: after {timeout:.0f} s Phoenix lists {roots}/{cycles} roots, {spans} spans")
            return time.perf_counter() - t0, False
        elapsed = time.perf_counter() - t0
        if not quiet and elapsed - last_print >= 60:
            last_print = elapsed
            print(
                f"  ... {elapsed:.0f} s: Phoenix lists {roots}/{cycles} roots "
                f"({roots * SPANS_PER_CYCLE / max(elapsed, 1e-9):.0f} spans/s so far)",
                flush=True,
            )
        time.sleep(poll)


# -- measuring -------------------------------------------------------------------------------
class CountingSpans:
    """client.spans that records, for each get_spans_dataframe call, its filter, rows returned and seconds."""

    def __init__(self, spans: Any) -> None:
        self._spans = spans
        self.calls: list[tuple[str, int, float]] = []
        self.keep = False  # keep the frames returned (for the in-memory scale check)
        self.frames: dict[str, Any] = {}
        self.track_memory = False  # reset VmHWM before each call and record (label, RSS before, peak during)
        self.memory: list[tuple[str, float, float]] = []

    def get_spans_dataframe(self, **kwargs: Any) -> Any:
        if self.track_memory:
            before = proc_status("VmRSS")
            reset_peak_rss()
        t = time.perf_counter()
        try:
            frame = self._spans.get_spans_dataframe(**kwargs)
            if self.track_memory:
                self.memory.append((_label(kwargs.get("query")), before, proc_status("VmHWM")))
        except Exception:
            self.calls.append((_label(kwargs.get("query")), -1, time.perf_counter() - t))
            raise
        self.calls.append((_label(kwargs.get("query")), len(frame), time.perf_counter() - t))
        if self.keep:
            self.frames[_label(kwargs.get("query"))] = frame
        return frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spans, name)


def _label(query: Any) -> str:
    try:
        where = query._filter.condition if query is not None and query._filter else ""
    except AttributeError:
        where = ""
    return {
        "parent_id is None": "roots",
        "span_kind == 'LLM'": "LLM",
        "span_kind == 'TOOL'": "TOOL",
        "span_kind == 'CHAIN' or span_kind == 'AGENT'": "CHAIN+AGENT",
    }.get(where, "LLM by trace id" if "trace_id in" in where else where or "all")


class CountingClient:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.spans = CountingSpans(client.spans)

    def take(self) -> list[tuple[str, int, float]]:
        calls, self.spans.calls = self.spans.calls, []
        return calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def compute(figures: CycleFigures, prices: Prices) -> dict[str, Any]:
    """What the tab computes after refresh(), for all time and no filter."""
    cycles, calls = select(figures, Scope())
    table = per_cycle(figures, cycles, calls, prices)
    figs = summary(table, calls, interval_s=INTERVAL_S, prices=prices)
    roles = breakdown(calls, prices, "role")
    return {"figs": figs, "table": table, "calls": calls, "roles": roles}


class ReplicatedClient:
    """Answers CycleFigures' queries from frames Phoenix returned, each repeated k times with fresh ids."""

    def __init__(self, frames: dict[str, Any], k: int) -> None:
        import pandas as pd

        self.answers = {}
        for label, frame in frames.items():
            index = frame.index.name
            flat = frame.reset_index() if index else frame
            copies = []
            for c in range(k):
                copy = flat.copy()
                for column in ("context.trace_id", "context.span_id", "parent_id"):
                    if column in copy:
                        copy[column] = copy[column].map(lambda v, c=c: v if v is None else f"{v}-{c}")
                copies.append(copy)
            both = pd.concat(copies, ignore_index=True)
            self.answers[label] = both.set_index(index) if index else both
        self.spans = self

    def get_spans_dataframe(self, **kwargs: Any) -> Any:
        return self.answers[_label(kwargs.get("query"))].copy()


def scale_check(frames: dict[str, Any], n: int, prices: Prices, profile: bool) -> dict[str, float]:
    """The client side (pandas) of a first load and of a refresh's figures at TARGET_CYCLES, measured in memory:
    the frames Phoenix returned for N cycles, repeated TARGET_CYCLES / N times. No Phoenix time is included."""
    k = max(1, math.ceil(TARGET_CYCLES / n))
    client = ReplicatedClient(frames, k)
    gc.collect()
    before = proc_status("VmRSS")
    reset_peak_rss()
    figures, out, t = first_load(client, prices)
    peak = proc_status("VmHWM")
    cycles = out["figs"]["cycles"]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        compute(figures, prices)
        times.append(time.perf_counter() - t0)
    result = {
        "k": k,
        "cycles": cycles,
        "refresh_local_s": t["refresh_s"],
        "compute_s": t["compute_s"],
        "growth_mb": peak - before,
        "figures_again_s": statistics.median(times),
    }
    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        fresh = CycleFigures(client, PROJECT)
        fresh.refresh()
        compute(fresh, prices)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        result["profile"] = buf.getvalue()
    return result


def first_load(client: Any, prices: Prices) -> tuple[CycleFigures, dict[str, Any], dict[str, float]]:
    figures = CycleFigures(client, PROJECT)
    t0 = time.perf_counter()
    new = figures.refresh()
    t1 = time.perf_counter()
    out = compute(figures, prices)
    t2 = time.perf_counter()
    return figures, out, {"new": new, "refresh_s": t1 - t0, "compute_s": t2 - t1, "total_s": t2 - t0}


FRESH = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(sys.argv[1], "bench"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm  # noqa: F401  (loaded in the app anyway; Prices reads its map)
import bench_dashboard as b
from cogscope.telemetry import phoenix_client
from cogscope.telemetry.prices import Prices

client = b.CountingClient(phoenix_client(sys.argv[2]))
prices = Prices()
prices.per_million(b.MODEL)
from cogscope.telemetry.phoenix_spans import query_spans, span_query
# warm-up: lazy imports, the first connection
query_spans(client, span_query().where("name == 'nothing'").select("trace_id"), b.PROJECT)
client.take()
import gc; gc.collect()
before = b.proc_status("VmRSS")
b.reset_peak_rss()
client.spans.track_memory = True  # VmHWM is reset before each query: the overall peak is the max of all
figures, out, t = b.first_load(client, prices)
peak = max([b.proc_status("VmHWM")] + [p for _, _, p in client.spans.memory])
figs = out["figs"]
print(json.dumps({**t, "before": before, "peak": peak, "cycles": figs["cycle_count"],
                  "mean_cost": figs["per_cycle"]["cost_usd"]["mean"],
                  "mean_calls": figs["per_cycle"]["llm_calls"]["mean"],
                  "fetched": client.take(), "memory": client.spans.memory,
                  "after": b.proc_status("VmRSS")}))
"""


def fresh_first_load(url: str) -> dict[str, Any] | None:
    out = subprocess.run([sys.executable, "-c", FRESH, str(ROOT), url], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        print("  fresh-process first load failed:\n" + "\n".join(out.stderr.strip().splitlines()[-15:]))
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def fetched_text(calls: list[tuple[str, int, float]]) -> str:
    return ", ".join(f"{label} {rows:,} rows {s:.2f} s" for label, rows, s in calls)


def fetched_rows(calls: list[tuple[str, int, float]]) -> int:
    return sum(max(rows, 0) for _, rows, _ in calls)


def fetched_s(calls: list[tuple[str, int, float]]) -> float:
    return sum(s for _, _, s in calls)


def check(figs: dict[str, Any], cycles: int, expected_cost: float) -> list[str]:
    got_cost, got_calls = figs["per_cycle"]["cost_usd"]["mean"], figs["per_cycle"]["llm_calls"]["mean"]
    return [
        f"cycles counted: {figs['cycle_count']:,} (expected {cycles:,}): "
        f"{'ok' if figs['cycle_count'] == cycles else 'WRONG'}",
        f"mean cost per cycle USD: {got_cost:.8f} (expected {expected_cost:.8f}): "
        f"{'ok' if abs(got_cost - expected_cost) < 1e-12 else 'WRONG'}",
        f"mean LLM calls per cycle: {got_calls:.4f} (expected {STEPS}): "
        f"{'ok' if abs(got_calls - STEPS) < 1e-12 else 'WRONG'}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=TARGET_CYCLES, help="N cycles of 10 spans (default 100,000)")
    parser.add_argument("--refreshes", type=int, default=3, help="refreshes after 100 new cycles each (median)")
    parser.add_argument("--fresh-runs", type=int, default=2, help="first loads in a fresh process")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for Phoenix to ingest the N cycles (default: 60 + N/10)",
    )
    parser.add_argument(
        "--phoenix-dir",
        type=Path,
        default=None,
        help="keep Phoenix's data here and reuse it next time (loading 100,000 cycles takes over an hour); "
        "only the cycles it lacks are loaded",
    )
    parser.add_argument("--no-tab", action="store_true", help="skip timing ui.dashboard_tab.dashboard() itself")
    parser.add_argument("--profile", action="store_true", help="cProfile one in-process first load; print the top")
    args = parser.parse_args()
    n = args.cycles
    timeout = args.timeout if args.timeout is not None else 60 + n / 10

    print("cogscope bench: the Dashboard tab over a big project")
    print(f"  {n:,} synthetic heartbeat cycles x {SPANS_PER_CYCLE} spans = {n * SPANS_PER_CYCLE:,} spans, ~15% failed,")
    print("  start times over the last 7 days, sent over OTLP/HTTP to a real Phoenix (SQLite).")
    print("  first load = fresh CycleFigures.refresh() (all time) + select/per_cycle/summary/breakdown;")
    print(
        f"  refresh = the same object's refresh() + figures after {NEW_CYCLES} new cycles (median of {args.refreshes})."
    )
    print(f"  machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print()

    prices = Prices()
    p_in, p_out = prices.per_million(MODEL)
    expected_cost = STEPS * (PROMPT * p_in + COMPLETION * p_out) / 1e6

    tmp = Path(tempfile.mkdtemp(prefix="cogscope-bench-dashboard-"))
    working = args.phoenix_dir if args.phoenix_dir is not None else tmp / "phoenix"
    phoenix = None
    loader = None
    try:
        t = time.perf_counter()
        phoenix = ensure_phoenix(working_dir=working, port=free_port())
        print(f"Phoenix {phoenix.version} started at {phoenix.url} in {time.perf_counter() - t:.1f} s", flush=True)
        plain = phoenix_client(phoenix.url)

        # -- load N cycles (only those a kept --phoenix-dir lacks) --------------------------------------
        loader = Loader(phoenix.collector_endpoint, PROJECT, TOOL_STEPS)
        had = loader.had = count_spans(plain, "parent_id is None")
        missing = max(0, n - had)
        if had:
            print(f"{working} already holds {had:,} cycles; loading {missing:,} more", flush=True)
        n = max(n, had)
        now = time.time_ns()
        starts = [now - WEEK_NS + i * (WEEK_NS // missing) for i in range(missing)] if missing else []
        t = time.perf_counter()
        loader.send(starts, plain)
        sent_s = time.perf_counter() - t
        print(
            f"sent {missing:,} cycles ({missing * SPANS_PER_CYCLE:,} spans) in {sent_s:.1f} s "
            f"({missing * SPANS_PER_CYCLE / max(sent_s, 1e-9):,.0f} spans/s); statuses: {loader.counts}",
            flush=True,
        )
        ingest_s, complete = wait_listed(plain, n, timeout)
        load_s = sent_s + ingest_s
        load_rate = missing * SPANS_PER_CYCLE / load_s if missing else math.nan  # nan: all reused
        print(
            f"Phoenix lists all {n:,} cycles and {n * SPANS_PER_CYCLE:,} spans {ingest_s:.1f} s after the send "
            f"ended: {load_s:.1f} s in all, {load_rate:,.0f} spans/s ({n / load_s:,.1f} cycles/s)"
            if complete
            else f"Phoenix did NOT ingest everything within {timeout:.0f} s",
            flush=True,
        )
        db = working / "phoenix.db"
        if db.exists():
            print(f"Phoenix SQLite: {db.stat().st_size / 2**20:,.0f} MB")

        # -- first load, fresh process ------------------------------------------------------------
        print("\nfirst dashboard load in a fresh process (after imports and a warm-up query):")
        fresh: list[dict[str, Any]] = []
        for _ in range(args.fresh_runs):
            r = fresh_first_load(phoenix.url)
            if r is None:
                continue
            fresh.append(r)
            print(
                f"  {r['total_s']:.2f} s (refresh {r['refresh_s']:.2f} + figures {r['compute_s']:.2f}); "
                f"VmHWM {r['peak']:,.0f} MB (+{r['peak'] - r['before']:,.0f} over {r['before']:,.0f} after "
                f"imports, RSS after {r['after']:,.0f}); cycles {r['cycles']:,}; fetched: {fetched_text(r['fetched'])}",
                flush=True,
            )
            print(
                "    peak RSS during each Phoenix query (MB, over RSS before it): "
                + ", ".join(f"{label} {p:,.0f} (+{p - b:,.0f} over {b:,.0f})" for label, b, p in r["memory"]),
                flush=True,
            )

        # -- first load, this process (kept for the refreshes) ------------------------------------
        client = CountingClient(plain)
        if args.profile:
            import cProfile
            import io
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            first_load(client, prices)
            prof.disable()
            client.take()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(20)
            print(
                "\ncProfile of one in-process first load (by own time; recv = waiting for Phoenix):\n" + buf.getvalue()
            )
        gc.collect()
        before = proc_status("VmRSS")
        clean = reset_peak_rss()
        client.spans.keep = True
        figures, out, first = first_load(client, prices)
        first_peak = proc_status("VmHWM") if clean else math.nan
        client.spans.keep = False
        first_fetch = client.take()
        print(
            f"\nfirst load in this process: {first['total_s']:.2f} s (refresh {first['refresh_s']:.2f} + figures "
            f"{first['compute_s']:.2f}); VmHWM {first_peak:,.0f} MB (RSS before {before:,.0f})"
        )
        print(
            f"  fetched {fetched_rows(first_fetch):,} rows in {fetched_s(first_fetch):.2f} s: "
            f"{fetched_text(first_fetch)}"
        )
        checks = check(out["figs"], n, expected_cost)
        for line in checks:
            print("  " + line)

        # -- the tab's handler itself ------------------------------------------------------------------
        tab = None
        tab_rows: list[str] = []
        if not args.no_tab:
            try:
                from cogscope.ui import dashboard_tab

                runtime = SimpleNamespace(
                    settings=SimpleNamespace(project=PROJECT),
                    client=lambda: plain,
                    trace_url=lambda t: trace_url(phoenix.url, t),
                )
                tab = (dashboard_tab, runtime)
                for window in ("all time", "last 24 hours"):
                    gc.collect()
                    before_tab = proc_status("VmRSS")
                    reset_peak_rss()
                    t = time.perf_counter()
                    result = dashboard_tab.dashboard(runtime, window, "all", "", "all", INTERVAL_S, "", "")
                    s = time.perf_counter() - t
                    csv = result[7]
                    line = (
                        f"ui.dashboard_tab.dashboard({window!r}) {'first call' if window == 'all time' else 'next'}"
                        f": {s:.2f} s, VmHWM {proc_status('VmHWM'):,.0f} MB (RSS before {before_tab:,.0f}); "
                        f"{len(result[5]):,} table rows; message: {result[-1]}"
                    )
                    print("  " + line, flush=True)
                    tab_rows.append(f"tab handler dashboard({window!r}) s: {s:.2f}")
                    if csv:
                        Path(csv).unlink(missing_ok=True)
            except Exception as e:  # the ui is being edited concurrently; report and go on
                print(f"  ui.dashboard_tab.dashboard() could not be timed: {type(e).__name__}: {e}")
                tab = None

        # -- refreshes after 100 new cycles ---------------------------------------------------------
        print(f"\nrefresh after {NEW_CYCLES} new cycles (start times: now):")
        total = n
        refresh_times: list[float] = []
        refresh_computes: list[float] = []
        refresh_rows: list[int] = []
        refresh_checks: list[str] = []
        batch_waits: list[float] = []
        tab_refresh: list[float] = []
        for k in range(args.refreshes):
            now = time.time_ns()
            loader.send([now - (NEW_CYCLES - i) * 20_000_000 for i in range(NEW_CYCLES)])
            total += NEW_CYCLES
            waited, ok = wait_listed(plain, total, 300, poll=1.0, quiet=True)
            batch_waits.append(waited)
            gc.collect()
            t0 = time.perf_counter()
            new = figures.refresh()
            t1 = time.perf_counter()
            out = compute(figures, prices)
            t2 = time.perf_counter()
            fetch = client.take()
            refresh_times.append(t2 - t0)
            refresh_computes.append(t2 - t1)
            refresh_rows.append(fetched_rows(fetch))
            refresh_checks = check(out["figs"], total, expected_cost)
            print(
                f"  #{k + 1}: {t2 - t0:.3f} s (refresh {t1 - t0:.3f} [{new} new] + figures {t2 - t1:.3f}); "
                f"fetched {fetched_rows(fetch):,} rows in {fetched_s(fetch):.3f} s: {fetched_text(fetch)}; "
                f"batch listable after {waited:.1f} s{'' if ok else ' (INCOMPLETE)'}",
                flush=True,
            )
            if tab is not None:
                t = time.perf_counter()
                result = tab[0].dashboard(tab[1], "all time", "all", "", "all", INTERVAL_S, "", "")
                tab_refresh.append(time.perf_counter() - t)
                if result[7]:
                    Path(result[7]).unlink(missing_ok=True)
                print(
                    f"      tab handler dashboard('all time') on the same new cycles: {tab_refresh[-1]:.3f} s; "
                    f"{result[-1]}",
                    flush=True,
                )
        for line in refresh_checks:
            print("  after refreshes, " + line)

        # -- the client side at TARGET_CYCLES, in memory ---------------------------------------------------
        scaled = None
        if n < TARGET_CYCLES and client.spans.frames:
            print(
                f"\nclient side at {TARGET_CYCLES:,} cycles, in memory (the frames Phoenix returned for N cycles "
                f"repeated, no Phoenix time):"
            )
            scaled = scale_check(client.spans.frames, n, prices, args.profile)
            client.spans.frames = {}
            print(
                f"  {scaled['cycles']:,} cycles (x{scaled['k']}): CycleFigures.refresh() client side "
                f"{scaled['refresh_local_s']:.2f} s + select/per_cycle/summary/breakdown {scaled['compute_s']:.2f} s; "
                f"peak RSS growth {scaled['growth_mb']:,.0f} MB; select/per_cycle/summary/breakdown again "
                f"(what every refresh recomputes): {scaled['figures_again_s']:.2f} s",
                flush=True,
            )
            if "profile" in scaled:
                print("  cProfile of that first load (client side only, by own time):\n" + scaled["profile"])

        # -- summary ------------------------------------------------------------------------------------
        fresh_s = statistics.median([r["total_s"] for r in fresh]) if fresh else math.nan
        fresh_peak = statistics.median([r["peak"] for r in fresh]) if fresh else math.nan
        fresh_growth = statistics.median([r["peak"] - r["before"] for r in fresh]) if fresh else math.nan
        fresh_before = statistics.median([r["before"] for r in fresh]) if fresh else math.nan
        fresh_refresh_s = statistics.median([r["refresh_s"] for r in fresh]) if fresh else math.nan
        fresh_compute_s = statistics.median([r["compute_s"] for r in fresh]) if fresh else math.nan
        refresh_med = statistics.median(refresh_times) if refresh_times else math.nan
        refresh_compute_med = statistics.median(refresh_computes) if refresh_computes else math.nan
        first_rows = fetched_rows(first_fetch)

        print(f"\n=== dashboard benchmark (N = {n:,} cycles, {n * SPANS_PER_CYCLE:,} spans) ===")
        print(f"Phoenix: {phoenix.version} (SQLite); machine: {os.cpu_count()} cores")
        print(f"cycles N: {n}")
        print(f"spans per cycle: {SPANS_PER_CYCLE}")
        print(f"load N cycles s: {load_s:.1f} (OTLP send {sent_s:.1f} + until Phoenix lists them all {ingest_s:.1f})")
        print(f"load rate spans/s: {load_rate:,.0f}")
        print(
            f"first dashboard load s (fresh process, median of {len(fresh)}): {fresh_s:.2f} "
            f"(CycleFigures.refresh {fresh_refresh_s:.2f} + select/per_cycle/summary/breakdown {fresh_compute_s:.2f})"
        )
        print(f"first dashboard load s (benchmark process): {first['total_s']:.2f}")
        print(
            f"first dashboard load peak MB (fresh process VmHWM): {fresh_peak:,.0f} "
            f"(+{fresh_growth:,.0f} over {fresh_before:,.0f} after imports)"
        )
        print(f"first dashboard load rows fetched from Phoenix: {first_rows:,} in {fetched_s(first_fetch):.2f} s")
        print(
            f"refresh after {NEW_CYCLES} new cycles s (median of {len(refresh_times)}): {refresh_med:.3f} "
            f"({', '.join(f'{x:.3f}' for x in refresh_times)})"
        )
        print(
            f"refresh rows fetched from Phoenix (median): "
            f"{statistics.median(refresh_rows) if refresh_rows else math.nan:,.0f} (first load: {first_rows:,})"
        )
        for line in tab_rows:
            print(line)
        if tab_refresh:
            print(
                f"tab handler dashboard('all time') after {NEW_CYCLES} new cycles s (median): "
                f"{statistics.median(tab_refresh):.3f}"
            )
        for line in checks:
            print(line)
        for line in refresh_checks:
            print(f"after {args.refreshes} refreshes, {line}")
        if 0 < n < TARGET_CYCLES:
            f = TARGET_CYCLES / n
            print(f"EXTRAPOLATION to {TARGET_CYCLES:,} cycles (not measured; linear in rows, x{f:g}):")
            print(f"  first dashboard load s (extrapolated): {fresh_s * f:.1f}")
            print(
                f"  first dashboard load peak MB (extrapolated): {fresh_before + fresh_growth * f:,.0f} "
                f"(+{fresh_growth * f:,.0f} over {fresh_before:,.0f} after imports)"
            )
            print(
                f"  load {TARGET_CYCLES:,} cycles into Phoenix s (extrapolated at {load_rate:,.0f} spans/s): "
                f"{TARGET_CYCLES * SPANS_PER_CYCLE / load_rate:,.0f}"
            )
            print(
                f"  refresh after {NEW_CYCLES} new cycles s: {refresh_med:.3f} measured at N={n:,}; its fetch is "
                f"bounded by the 15-min overlap, the figures part grows with N"
            )
            if scaled is not None:
                fetch_n = fetched_s(first_fetch)
                local_n = first["refresh_s"] - fetch_n
                est_first = fetch_n * f + scaled["refresh_local_s"] + scaled["compute_s"]
                est_refresh = refresh_med - refresh_compute_med + scaled["figures_again_s"]
                print(
                    f"  first dashboard load s (estimate): {est_first:.1f} = Phoenix queries {fetch_n:.2f} s x{f:g} "
                    f"(extrapolated) + client side {scaled['refresh_local_s'] + scaled['compute_s']:.2f} s "
                    f"(measured in memory at {scaled['cycles']:,} cycles; {local_n + first['compute_s']:.2f} s at N)"
                )
                print(
                    f"  refresh after {NEW_CYCLES} new cycles s (estimate): {est_refresh:.2f} = {refresh_med:.3f} "
                    f"measured at N - figures {refresh_compute_med:.3f} at N + figures "
                    f"{scaled['figures_again_s']:.2f} (measured in memory at {scaled['cycles']:,} cycles)"
                )
        return 0
    finally:
        if loader is not None:
            loader.close()
        if phoenix is not None:
            phoenix.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
