"""Where the test suite's CPU goes: a pytest plugin that counts each test's CPU, and a report of the counts.

    PYTHONPATH=bench PYTEST_ADDOPTS="-p cpu_per_test" .venv/bin/pytest      # count (any pytest arguments)
    .venv/bin/python bench/cpu_per_test.py [FOLDER]                         # report

A test's CPU is that of its pytest worker while it runs plus that of every process it started and waited for
(RUSAGE_CHILDREN: `cogscope` commands and apps, Phoenix servers a test starts, Chromium). The Phoenix and PostgreSQL
the whole run shares end with the run, so they are not in any test's count. Each worker appends one JSON line per
test to FOLDER/<worker>.jsonl (default test-artifacts/cpu, ignored by git; emptied by hand), with its outcome and
whether it is marked e2e, so a run cut short still says what failed. Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FOLDER = Path(os.environ.get("COGSCOPE_CPU_LOG", Path(__file__).resolve().parents[1] / "test-artifacts" / "cpu"))


def _children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The test's outcome (an error in set-up or tear-down counts): a run cut short still says what failed."""
    if report.failed:
        _OUTCOMES[report.nodeid] = "failed" if report.when == "call" else f"error in {report.when}"
    elif report.skipped:
        _OUTCOMES.setdefault(report.nodeid, "skipped")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    wall, own, children = time.time(), time.process_time(), _children()
    yield
    record = {
        "id": item.nodeid,
        "wall": round(time.time() - wall, 1),
        "self": round(time.process_time() - own, 1),
        "children": round(_children() - children, 1),
        "outcome": _OUTCOMES.pop(item.nodeid, "passed"),
        "e2e": item.get_closest_marker("e2e") is not None,
    }
    FOLDER.mkdir(parents=True, exist_ok=True)
    with (FOLDER / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")


def report(folder: Path) -> None:
    records: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        print(f"no counts in {folder}: run pytest with the plugin first (see this file's docstring)")
        return
    total = sum(r["self"] + r["children"] for r in records)
    print(f"{len(records)} tests, {total:,.0f} CPU-s in the tests' own processes and the processes they started")
    files: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for r in records:
        entry = files[r["id"].split("::")[0]]
        entry[0] += r["self"] + r["children"]
        entry[1] += 1
    print("\nCPU-s  tests  file")
    for name, (cpu, count) in sorted(files.items(), key=lambda item: -item[1][0]):
        print(f"{cpu:6.0f}  {count:5d}  {name}")
    by_marker: dict[bool, list[float]] = defaultdict(lambda: [0.0, 0])
    for r in records:
        entry = by_marker[bool(r.get("e2e", True))]
        entry[0] += r["self"] + r["children"]
        entry[1] += 1
    if any("e2e" in r for r in records):
        print("\nCPU-s  tests  tier")
        for e2e, (cpu, count) in sorted(by_marker.items()):
            tier = "e2e" if e2e else 'pure (-m "not e2e")'
            print(f"{cpu:6.0f}  {count:5d}  {tier}")
    bad = [r for r in records if r.get("outcome", "passed") not in ("passed", "skipped")]
    if bad:
        print("\nnot passed:")
        for r in bad:
            print(f"  {r['outcome']}: {r['id']}")
    print("\nCPU-s   wall-s  test (the 20 costliest)")
    for r in sorted(records, key=lambda r: -(r["self"] + r["children"]))[:20]:
        print(f"{r['self'] + r['children']:6.1f}  {r['wall']:6.1f}  {r['id']}")


if __name__ == "__main__":
    report(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER)
