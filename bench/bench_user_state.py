"""Benchmark: what keeping a user agent's state folder costs per cycle (telemetry.state_protocol, state_blobs).

    .venv/bin/python bench/bench_user_state.py [--rows 20000 100000] [--cycles 50]

Prints figures; asserts nothing about timings. For each size, a state folder holds one SQLite file of --rows rows
(a counter table and a notes table of ~60-byte texts). --cycles cycles then each keep the folder's state as a live
cycle does (`keep_state`: archive the folder, hash it, keep it once) and change one row, as a counter agent's tool
does; then the same number of cycles that change nothing. Figures: the folder's size, the time to keep a state
(median, max), the bytes a changed state adds to the kept states, what an unchanged one adds (it is kept once), and
the time to give a state back to a scratch folder (unpack).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cogscope.telemetry.state_blobs import StateBlobs  # noqa: E402
from cogscope.telemetry.state_protocol import keep_state, restore_into  # noqa: E402


def _folder(root: Path, rows: int) -> Path:
    folder = root / f"state-{rows}"
    folder.mkdir()
    db = sqlite3.connect(folder / "agent.sqlite")
    with db:
        db.execute("CREATE TABLE counter (n INTEGER)")
        db.execute("INSERT INTO counter VALUES (0)")
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        db.executemany("INSERT INTO notes (text) VALUES (?)", ((f"note {i} " + "x" * 50,) for i in range(rows)))
    db.close()
    return folder


def _bump(folder: Path) -> None:
    db = sqlite3.connect(folder / "agent.sqlite")
    with db:
        db.execute("UPDATE counter SET n = n + 1")
    db.close()


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def run(rows: int, cycles: int, root: Path) -> None:
    folder = _folder(root, rows)
    blobs = StateBlobs(root / f"blobs-{rows}")
    agent = object()  # no snapshot()/restore(): cogscope archives the folder
    changed: list[float] = []
    for _ in range(cycles):
        start = time.perf_counter()
        state = keep_state(agent, folder, blobs)
        changed.append(time.perf_counter() - start)
        _bump(folder)
    kept = _size(blobs.folder)
    state = keep_state(agent, folder, blobs)  # the state the last change left: from here on, nothing changes
    kept_all = _size(blobs.folder)
    unchanged: list[float] = []
    for _ in range(cycles):
        start = time.perf_counter()
        state = keep_state(agent, folder, blobs)
        unchanged.append(time.perf_counter() - start)
    added = _size(blobs.folder) - kept_all
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(dir=root))
    restore_into(state, blobs, scratch)
    unpack = time.perf_counter() - start
    ms = 1000
    print(
        f"{rows:>7,} rows, folder {_size(folder) / 1e6:6.1f} MB | keep a state: median "
        f"{statistics.median(changed) * ms:6.1f} ms, max {max(changed) * ms:6.1f} ms | a changed state adds "
        f"{kept / cycles / 1e3:8.1f} kB, an unchanged one {added / cycles:.0f} B (median "
        f"{statistics.median(unchanged) * ms:.1f} ms) | give back: {unpack * ms:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--cycles", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-user-state-") as root:
        for rows in args.rows:
            run(rows, args.cycles, Path(root))


if __name__ == "__main__":
    main()
