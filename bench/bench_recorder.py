"""Benchmark: what the one-line recorder (`telemetry.recorder`) adds to an app's start-up, next to OpenInference.

    .venv/bin/python bench/bench_recorder.py [--repeat 5]

Each figure is the median wall time of a fresh Python process that imports what is named on top of smolagents
(which the app imports anyway), minus that of one that imports smolagents alone; plus whether pandas, Gradio or
LiteLLM got loaded. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
HEAVY = "pandas gradio litellm".split()
CASES = {
    "smolagents (the app's own)": "import smolagents",
    "+ OpenInference (instrumentor, OTLP exporter)": "import smolagents, openinference.instrumentation.smolagents, "
    "opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "+ the recorder (OpenInference included)": "import smolagents, cogscope.telemetry.recorder",
}


def timed(code: str, repeat: int) -> tuple[float, list[str]]:
    probe = (
        "import time, sys; t = time.perf_counter(); " + code + "; d = time.perf_counter() - t; "
        f"print(d, ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    times, loaded = [], []
    for _ in range(repeat):
        argv = [sys.executable, "-c", probe]
        out = subprocess.run(argv, env=ENV, cwd=ROOT, capture_output=True, text=True, check=True)
        seconds, _, modules = out.stdout.strip().partition(" ")
        times.append(float(seconds))
        loaded = [m for m in modules.split(",") if m]
    return statistics.median(times), loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    base = None
    print(f"import time, median of {repeat} fresh processes ({os.cpu_count()} cores)")
    for name, code in CASES.items():
        seconds, loaded = timed(code, repeat)
        extra = "" if base is None else f"  (+{seconds - base:.2f} s over smolagents)"
        base = seconds if base is None else base
        print(f"  {name:<48} {seconds:5.2f} s{extra}  loads: {', '.join(loaded) or 'none of ' + '/'.join(HEAVY)}")


if __name__ == "__main__":
    main()
