"""Benchmark: how many bytes of span attributes one cycle leaves in Phoenix, and how that grows with its steps.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_trace_size.py [--steps 10 20 40]

A CodeAgent with no tools runs N steps (N-1 code steps, then final_answer) against the scripted
OpenAI-compatible server of tests/scripted_llm.py (zero latency), through LiteLLM over real HTTP. Each cycle
is traced three ways: by cogscope's tracer (compact prompts, the default), by cogscope with
COGSCOPE_FULL_PROMPTS=1, and by the OpenInference instrumentor alone. The spans are what the exporters hand
on (after cogscope's compaction and redaction); the figure is the sum, over spans, of len(key) + len(value as
text) for every attribute: the size Phoenix stores before its own overhead. The OpenInference-alone column
uses OpenTelemetry's default limit of 128 attributes per span, which drops the oldest messages of long prompts
(cogscope raises the limit). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from tests.scripted_llm import ScriptedLLM  # noqa: E402

TASK = "Count to the number of steps you are given, one number per step, then give the final answer."


def replies(steps: int) -> list[tuple[str, int, int]]:
    """The cycle's model outputs with their (prompt, completion) tokens: N-1 code steps, then the final answer."""
    counting = [
        (f"Thought: step {i}, count on.\n<code>\nn = {i}\nprint(n)\n</code>", 1000, 30) for i in range(1, steps)
    ]
    return [*counting, ('Thought: done.\n<code>\nfinal_answer("counted")\n</code>', 1000, 20)]


def script(llm: ScriptedLLM, steps: int) -> None:
    for content, prompt, completion in replies(steps):
        llm.enqueue(content, prompt, completion)


def agent(llm: ScriptedLLM, steps: int):  # type: ignore[no-untyped-def]
    from smolagents import CodeAgent, LiteLLMModel

    model = LiteLLMModel(model_id="openai/scripted", api_base=llm.api_base, api_key="sk-bench")
    return CodeAgent(tools=[], model=model, max_steps=steps, verbosity_level=0)


def attribute_bytes(spans) -> int:  # type: ignore[no-untyped-def]
    total = 0
    for span in spans:
        for key, value in (span.attributes or {}).items():
            text = value if isinstance(value, str) else str(list(value) if isinstance(value, tuple) else value)
            total += len(key.encode()) + len(text.encode("utf-8", "backslashreplace"))
    return total


def with_cogscope(llm: ScriptedLLM, steps: int, *, full: bool) -> list:  # type: ignore[type-arg]
    from cogscope.telemetry import Cycle, CycleSpec, setup_tracing
    from cogscope.telemetry.tracing import uninstrument

    exporter = InMemorySpanExporter()
    tracing = setup_tracing(endpoint="http://127.0.0.1:9/v1/traces", exporter=exporter, batch=False, full_prompts=full)
    try:
        script(llm, steps)
        result = Cycle(agent(llm, steps), TASK, spec=CycleSpec("bench"), tracing=tracing).run()
        assert result.status == "ok", result
    finally:
        uninstrument()
        tracing.shutdown()
    return list(exporter.get_finished_spans())


def with_openinference(llm: ScriptedLLM, steps: int) -> list:  # type: ignore[type-arg]
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    SmolagentsInstrumentor().instrument(tracer_provider=provider)
    try:
        script(llm, steps)
        agent(llm, steps).run(TASK)
    finally:
        SmolagentsInstrumentor().uninstrument()
    return list(exporter.get_finished_spans())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 40])
    args = parser.parse_args()
    llm = ScriptedLLM().start()
    try:
        print(f"{'steps':>5}  {'spans':>5}  {'OpenInference alone':>19}  {'cogscope, full prompts':>22}  "
              f"{'cogscope (compact)':>18}  {'per step':>8}")  # fmt: skip
        for steps in args.steps:
            oi = with_openinference(llm, steps)
            full = with_cogscope(llm, steps, full=True)
            compact = with_cogscope(llm, steps, full=False)
            size = attribute_bytes(compact)
            print(
                f"{steps:>5}  {len(compact):>5}  {attribute_bytes(oi) / 1024:>15.1f} KiB  "
                f"{attribute_bytes(full) / 1024:>18.1f} KiB  {size / 1024:>14.1f} KiB  "
                f"{size / 1024 / steps:>4.1f} KiB"
            )
    finally:
        llm.stop()


if __name__ == "__main__":
    main()
