"""Benchmark: how many typical spans per second the redactor gets through, and what one page text costs.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/bench_redaction.py [--spans 2000] [--secrets 8]

Prints figures; it is not a test and asserts nothing about timings. Times are CPU time of this process
(`time.process_time`), so other work on a shared machine changes them less than it would wall-clock figures. The spans
are real OpenTelemetry SDK spans shaped like the ones the OpenInference smolagents instrumentor makes for one
CodeAgent step (an LLM span with a ~5 kB system prompt, the task, earlier steps and observations, flattened into
`llm.input_messages.*` and repeated as JSON in `input.value`; a CHAIN step span; a TOOL span), redacted by the
exporter's `redact_span` against this process's environment plus `--secrets` canary secrets of several formats. Five
mixes: no secret anywhere (the common case), the same with non-ASCII text (normalised before the search), one secret
in one attribute of each span, one secret hex- and base64-encoded, and a tool observation that dumps the whole
environment.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from cogscope.telemetry.redacted_output import redact_span  # noqa: E402
from cogscope.telemetry.redaction import default_redactor, redact  # noqa: E402

CANARIES = {
    "OPENAI_API_KEY": "sk-bench-CANARY-7f3a9c2e4b1d8e6f0a5c",
    "DB_PASSWD": "hunter2x",
    "DATABASE_URL": "postgresql://app:pw-bench-9@db/x",
    "GITHUB_PAT": "ghp_BENCHabcdefghijklmnopqrstuvwxyz0123",
    "AWS_ACCESS_KEY_ID": "AKIABENCH0EXAMPLE123",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYBENCHKEY12",
    "MY_SERVICE_TOKEN": "tok-bench-31415926",
    "SESSION_JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJlLWJlbmNo",
}
SYSTEM_PROMPT = (
    "You are an expert assistant who can solve any task using code blobs. You will be given a task to solve as "
    "best you can. To do so, you have been given access to a list of tools: these tools are basically Python "
    "functions which you can call with code. To solve the task, you must plan forward to proceed in a series of "
    "steps, in a cycle of Thought, Code, and Observation sequences.\n"
) * 14  # ~5 kB, like smolagents' CodeAgent prompt
OBSERVATION = "Execution logs:\nenergy 42.5 of 100; goals: deep work (0.8), sleep (0.6); recent: recall, reflect\n" * 8


def llm_attributes(step: int, extra: str = "") -> dict[str, object]:
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "New task:\nRecall what you know about my energy and decide the next action."},
    ]
    for i in range(step):
        messages.append({"role": "assistant", "content": f"Thought: step {i}.\n<code>\nprint(review_goals())\n</code>"})
        messages.append({"role": "user", "content": "Observation:\n" + OBSERVATION + (extra if i == step - 1 else "")})
    attrs: dict[str, object] = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "openai/scripted",
        "llm.token_count.prompt": 1800,
        "llm.token_count.completion": 60,
        "input.value": json.dumps({"messages": messages}),
        "input.mime_type": "application/json",
        "output.value": "Thought: enough.\n<code>\nfinal_answer('Protect the morning block')\n</code>",
    }
    for i, m in enumerate(messages):
        attrs[f"llm.input_messages.{i}.message.role"] = m["role"]
        attrs[f"llm.input_messages.{i}.message.content"] = m["content"]
    return attrs


def make_spans(extra: str, count: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for n in range(count // 3):
        step = 1 + n % 4
        with tracer.start_as_current_span("LiteLLMModel.generate", attributes=llm_attributes(step, extra)):
            pass
        with tracer.start_as_current_span(
            f"Step {step}", attributes={"openinference.span.kind": "CHAIN", "output.value": OBSERVATION + extra}
        ):
            pass
        with tracer.start_as_current_span(
            "recall_memory",
            attributes={"openinference.span.kind": "TOOL", "input.value": '{"query": "energy"}', "output.value": extra},
        ):
            pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


def rate(spans: list[ReadableSpan]) -> tuple[float, float]:
    redactor = default_redactor()
    redact_span(spans[0], redactor)  # build the patterns outside the timing
    start = time.process_time()
    for span in spans:
        redact_span(span, redactor)
    elapsed = time.process_time() - start
    chars = sum(len(v) for s in spans for v in (s.attributes or {}).values() if isinstance(v, str))
    return len(spans) / elapsed, chars / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1500)
    parser.add_argument("--secrets", type=int, default=len(CANARIES), help=f"canary secrets (max {len(CANARIES)})")
    args = parser.parse_args()
    for name, value in list(CANARIES.items())[: args.secrets]:
        os.environ[name] = value
    redactor = default_redactor()
    start = time.process_time()
    secrets = redactor.secrets
    build_ms = (time.process_time() - start) * 1e3
    env_dump = "\n" + repr(dict(os.environ))
    key = CANARIES["OPENAI_API_KEY"]
    mixes = {
        "no secret": "",
        "no secret, non-ASCII": "\nénergie — “deep work” ✓ 😴 ｆｕｌｌ\u00a0width",
        "one secret per span": f"\nthe key is {key}",
        "one secret encoded": f"\nhex {key.encode().hex()} b64 {base64.b64encode(b'x' + key.encode()).decode()}",
        "environment dump": env_dump,
    }
    print(f"environment: {len(os.environ)} variables, {len(secrets)} secret values ({build_ms:.1f} ms to build)")
    for label, extra in mixes.items():
        spans = make_spans(extra, args.spans)
        per_s, mb_s = rate(spans)
        print(f"{label:24s} {per_s:9,.0f} spans/s  {mb_s:6.1f} MB/s of attribute text  ({len(spans)} spans)")
    page = SYSTEM_PROMPT[:2000]
    n = 5000
    start = time.process_time()
    for _ in range(n):
        redact(page)
    per_call = (time.process_time() - start) / n * 1e6
    start = time.process_time()
    for _ in range(n):
        redactor.secrets  # noqa: B018  (the "did os.environ change" check alone)
    check = (time.process_time() - start) / n * 1e6
    print(f"one 2 kB page text: {per_call:.1f} µs; the environment-change check: {check:.1f} µs")


if __name__ == "__main__":
    main()
