"""What the sandbox costs: worker start-up, and per code step against smolagents' in-process executor.

    .venv/bin/python bench/bench_sandbox.py [--steps 200] [--starts 10]

Prints figures; asserts nothing. No LLM is involved: the executors are driven directly, as CodeAgent does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smolagents import CodeAgent, Model, tool  # noqa: E402
from smolagents.local_python_executor import LocalPythonExecutor  # noqa: E402

from cogscope.agents.sandbox import Sandbox, SandboxLimits  # noqa: E402


@tool
def shout(text: str) -> str:
    """Repeat text in capitals.

    Args:
        text: what to shout
    """
    return text.upper()


class NoModel(Model):  # type: ignore[misc]
    def generate(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError("the benchmark calls no model")


def agent() -> CodeAgent:
    return CodeAgent(tools=[shout], model=NoModel(model_id="none"))


def per_step(executor: object, code: str, steps: int) -> float:
    """Median seconds of one step running `code` (after a few warm-up steps)."""
    for _ in range(10):
        executor(code)  # type: ignore[operator]
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        executor(code)  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    limits = SandboxLimits(step_seconds=30, cycle_cpu_seconds=600, memory_mb=1024)

    with tempfile.TemporaryDirectory() as tmp:
        starts, walls, walls_ms = [], {}, []
        for i in range(args.starts):
            a = agent()
            sandbox = Sandbox(a, limits=limits, workdir=Path(tmp) / f"start{i}")
            began = time.perf_counter()
            a.python_executor.send_variables({})
            a.python_executor.send_tools(dict(a.tools))
            a.python_executor("x = 1")  # waits for the worker to be ready, then one trivial step
            starts.append(time.perf_counter() - began)
            walls = sandbox.walls
            walls_ms.append(float(walls.get("walls_ms", 0.0)))
            sandbox.close()

        a = agent()
        sandbox = Sandbox(a, limits=limits, workdir=Path(tmp) / "steps")
        sandboxed = a.python_executor
        sandboxed.send_variables({})
        sandboxed.send_tools(dict(a.tools))
        sandboxed("x = 1")
        worker = a.python_executor._worker
        rss = _rss_mb(worker.proc.pid) if worker is not None else 0.0
        # as CodeAgent builds it: smolagents' 30 s timeout runs each step in a fresh thread
        local = LocalPythonExecutor(a.additional_authorized_imports)
        local.send_variables({})
        local.send_tools(dict(a.tools))
        rows = [
            ("trivial step (y = 1)", "y = 1"),
            ("print 1 line", "print('hello')"),
            ("1 tool call", "shout('hello')"),
            ("10 tool calls", "for i in range(10):\n    shout('hello')"),
        ]
        figures = []
        for label, code in rows:
            figures.append((label, per_step(local, code, args.steps), per_step(sandboxed, code, args.steps)))
        sandbox.close()

    print(f"sandbox walls: {walls}")
    print(
        f"worker start-up + first step, {args.starts} starts: median {statistics.median(starts) * 1000:.0f} ms, "
        f"max {max(starts) * 1000:.0f} ms (warm-up overlaps the first LLM call in a real cycle)"
    )
    print(
        f"of which the walls (namespaces, tmpfs, uid drop, Landlock, seccomp): median "
        f"{statistics.median(walls_ms):.1f} ms, max {max(walls_ms):.1f} ms"
    )
    print(f"one warm worker: {rss:.0f} MB resident")
    print(f"{'code step (median of ' + str(args.steps) + ')':<36} {'in-process':>12} {'sandbox':>12} {'overhead':>12}")
    for label, in_process, in_sandbox in figures:
        print(
            f"{label:<36} {in_process * 1000:>10.2f}ms {in_sandbox * 1000:>10.2f}ms "
            f"{(in_sandbox - in_process) * 1000:>10.2f}ms"
        )


if __name__ == "__main__":
    main()
