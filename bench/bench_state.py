"""Benchmark: what keeping the memory store's history costs (issue #26's three figures).

    .venv/bin/python bench/bench_state.py [--memories 10000] [--cycles 1000] [--restores 30] [--folder DIR]

Prints figures; asserts nothing about timings. A store of --memories memories (plus the example seed) is copied
twice: one keeps its history (schema 3 as shipped), the other has the change-log triggers dropped ("the same store
without history"). Both then run the same --cycles heartbeat-like cycles, side by side on the same disk; a cycle is
regenerate, one remember, one spend, a goal every 10th cycle and a mental-model revision every 25th, and on the
store with history a checkpoint first (one point per cycle, as `Cycle(checkpoint=...)` takes it). Figures:

    (a) extra bytes on disk per cycle: (size with history - size without) / cycles, after both are closed
    (b) restore_copy of a random cycle's starting state (--restores of them, the oldest cycle always among them):
        median and max, wall clock and CPU time (on a busy machine the wall clock is mostly waiting for a CPU)
    (c) time added to a cycle: checkpoint() alone, and a whole cycle with history against one without (the writes'
        triggers included); every store write is a transaction with its disk syncs, so the whole-cycle figures are
        mostly the disk's
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cogscope.agents import MemoryStore, StatePoint  # noqa: E402
from cogscope.agents.state_log import TRACKED  # noqa: E402

WORDS = (
    "user energy morning focus walk coffee friend deep work outline chapter sleep reflection goal plan reminder "
    "notification evening review tired motivated course coaching reading routine weekend call anxious calm lunch "
    "heron river park dog running prediction failed held basin strength recall memory synthesize observe"
).split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def build_base(path: Path, memories: int, rng: random.Random) -> None:
    """A seeded store with `memories` more memories and no history left (its log pruned), compacted."""
    store = MemoryStore(path)
    store.seed_example()
    store.close()
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO memories(text, kind, tags, salience) VALUES (?, ?, ?, ?)",
            [(_text(rng, rng.randint(15, 40)), "episodic", "bench", rng.random()) for _ in range(memories)],
        )
    db.close()
    store = MemoryStore(path)
    store.prune(0)  # the bulk insert's log rows: no point needs them
    store.close()
    db = sqlite3.connect(path)
    db.execute("VACUUM")
    db.close()


def without_history(path: Path) -> None:
    db = sqlite3.connect(path)
    with db:
        for table in TRACKED:
            for op in "iukd":
                db.execute(f"DROP TRIGGER state_log_{table}_{op}")
    db.close()


def cycle(store: MemoryStore, i: int, rng: random.Random) -> None:
    store.regenerate()
    store.remember(_text(rng, rng.randint(15, 40)), tags="heartbeat", salience=rng.random())
    store.spend("remember", 2.0, f"cycle-{i}")
    if i % 10 == 0:
        store.add_goal(_text(rng, 6), priority=rng.randint(1, 5))
    if i % 25 == 0:
        store.revise_model("user_routine", rng.random(), ["morning_focus", "evening_fatigue"])


def run_cycles(hist: MemoryStore, plain: MemoryStore, cycles: int, seed: int) -> dict[str, list[float]]:
    """The same cycles on both stores, interleaved so that both see the same disk; times in seconds."""
    times: dict[str, list[float]] = {"checkpoint": [], "with": [], "without": []}
    rng_hist, rng_plain = random.Random(seed), random.Random(seed)
    for i in range(cycles):
        start = time.perf_counter()
        cycle(plain, i, rng_plain)
        times["without"].append(time.perf_counter() - start)

        start = time.perf_counter()
        hist.checkpoint(f"cycle-{i}")
        taken = time.perf_counter()
        cycle(hist, i, rng_hist)
        times["with"].append(time.perf_counter() - start)
        times["checkpoint"].append(taken - start)
    return times


def restores(
    store: MemoryStore, points: list[StatePoint], count: int, folder: Path, rng: random.Random
) -> tuple[list[float], list[float]]:
    """restore_copy of the oldest point and count - 1 random ones: (wall-clock times, CPU times) in seconds."""
    chosen = [points[0], *rng.sample(points[1:], min(count, len(points)) - 1)]
    wall, cpu = [], []
    for n, point in enumerate(chosen):
        dest = folder / f"restored-{n}.sqlite"
        start, start_cpu = time.perf_counter(), time.process_time()
        store.restore_copy(point.id, dest)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        dest.unlink()
    return wall, cpu


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=1_000)
    parser.add_argument("--restores", type=int, default=30)
    parser.add_argument("--folder", type=Path, help="where the stores go (default: a temporary folder)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-state-", dir=args.folder))
    try:
        rng = random.Random(26)
        base = folder / "base.sqlite"
        build_base(base, args.memories, rng)
        for name in ("with.sqlite", "without.sqlite"):
            shutil.copyfile(base, folder / name)
        without_history(folder / "without.sqlite")
        print(f"store: {args.memories:,} memories + the example seed, {base.stat().st_size / 1e6:.1f} MB on disk")

        hist, plain = MemoryStore(folder / "with.sqlite"), MemoryStore(folder / "without.sqlite")
        times = run_cycles(hist, plain, args.cycles, seed=7)
        points = sorted(
            {p.seq: p for p in hist.points(args.cycles + 10) if p.label.startswith("cycle-")}.values(),
            key=lambda p: p.seq,
        )
        hist.close()
        plain.close()
        extra = ((folder / "with.sqlite").stat().st_size - (folder / "without.sqlite").stat().st_size) / args.cycles
        db = sqlite3.connect(folder / "with.sqlite")
        log_rows = db.execute("SELECT count(*) FROM state_log").fetchone()[0]
        db.close()
        print(f"cycles: {args.cycles:,} on each store ({log_rows / args.cycles:.1f} change-log rows per cycle)")
        print(f"(a) extra bytes on disk per cycle: {extra:,.0f} B (target <= 4,096 B)")

        hist = MemoryStore(folder / "with.sqlite")
        took, cpu = restores(hist, points, args.restores, folder, rng)
        hist.close()
        print(
            f"(b) restore_copy of a cycle's state, {len(took)} random cycles (the oldest among them): "
            f"median {ms(statistics.median(took))}, max {ms(max(took))} (target <= 200 ms); "
            f"CPU time median {ms(statistics.median(cpu))}, max {ms(max(cpu))}"
        )

        cp, cw, co = times["checkpoint"], times["with"], times["without"]
        print(
            f"(c) checkpoint(): median {ms(statistics.median(cp))}, mean {ms(statistics.mean(cp))}, "
            f"max {ms(max(cp))} (target <= 5 ms added to a cycle)"
        )
        print(
            f"    a whole cycle with history {ms(statistics.median(cw))} median / {ms(statistics.mean(cw))} mean, "
            f"without {ms(statistics.median(co))} / {ms(statistics.mean(co))}: "
            f"{(statistics.median(cw) - statistics.median(co)) * 1000:+.2f} ms median, "
            f"{(statistics.mean(cw) - statistics.mean(co)) * 1000:+.2f} ms mean"
        )
        load = os.getloadavg()
        print(f"load average while it ran: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
