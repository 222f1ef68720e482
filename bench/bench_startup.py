"""Benchmark: what a `cogscope` command costs before it does anything, in CPU seconds and in modules loaded.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_startup.py [--repeat 3]

Every command parses its arguments and loads what it needs; `--help` stops right there, so its CPU time is the
start-up every run of that command pays. Also shown: what importing the big libraries costs on their own, and
whether the reading commands (traces, show, cost) load any of them. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COGSCOPE = Path(sys.executable).parent / "cogscope"
ENV = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", GRADIO_ANALYTICS_ENABLED="False")


def cpu_of(argv: list[str], repeat: int) -> float:
    """Median user+system CPU seconds of running argv to its end."""
    times = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    python = [sys.executable, "-c"]
    print(f"CPU seconds (median of {repeat}), {os.cpu_count()} cores")
    print(f"  {'python -c pass':<44} {cpu_of([*python, 'pass'], repeat):6.2f}")
    for library in ("pandas", "smolagents", "litellm", "gradio", "phoenix.server.main"):
        print(f"  {'import ' + library:<44} {cpu_of([*python, f'import {library}'], repeat):6.2f}")
    for command in ("--help", "traces --help", "show --help", "cost --help", "replay --help", "run --help"):
        print(f"  {'cogscope ' + command:<44} {cpu_of([str(COGSCOPE), *command.split()], repeat):6.2f}")
    probe = (
        "import sys, cogscope.ui.cli, cogscope.ui.traces_cli, cogscope.ui.cost_cli; from cogscope import telemetry;"
        "telemetry.load_prices(None).known('openai/gpt-4o');"
        "print(', '.join(sorted({m.split('.')[0] for m in sys.modules} & {'litellm', 'smolagents', 'gradio'})) "
        "or 'none')"
    )
    loaded = subprocess.run([*python, probe], env=ENV, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"libraries that traces, show and cost load to start and price: {loaded}")


if __name__ == "__main__":
    main()
