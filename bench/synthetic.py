"""Synthetic heartbeat cycles for the benches, sent to a real Phoenix over OTLP/HTTP (no LLM involved).

One cycle: root AGENT "heartbeat.cycle" (cogscope.agent, cogscope.model, cogscope.cycle.status, session.id) >
AGENT "heartbeat.run" > STEPS x (CHAIN "Step n" > LLM "LiteLLMModel.generate", PROMPT + COMPLETION tokens of
openai/gpt-4o-mini), plus a TOOL "recall_memory" under the steps in `tool_steps`. The spans go through
cogscope's own tracer set-up (telemetry.setup_tracing), so, as in a real cycle, each LLM span gets
`cogscope.role`/`cogscope.step` from telemetry.roles.CallAnnotator and the root `cogscope.cycle.tool_s` and
`cogscope.cycle.steps`.
About 15% of cycles fail (step_errors, max_steps, error).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from cogscope.telemetry import setup_tracing
from cogscope.telemetry.attributes import ATTR_STEPS, ATTR_TOOL_S
from cogscope.telemetry.roles import step_count, tool_seconds
from cogscope.telemetry.tracing import uninstrument

MODEL = "openai/gpt-4o-mini"
STEPS = 3
PROMPT, COMPLETION = 1000, 100
FLUSH_EVERY = 100  # cycles (1,000 spans); the BatchSpanProcessor's queue holds 2,048 spans and drops the rest
MAX_BACKLOG = 1_000  # cycles sent but not yet listed (10,000 spans); Phoenix's span queue holds 20,000
TASKS = [
    "Recall what you know about my energy and decide the next action.",
    "Plan tomorrow morning around the deep-work block.",
    "Review the goals and pick the one to push today.",
    "Check whether the evening routine prediction held.",
]


def spans_per_cycle(tool_steps: tuple[int, ...]) -> int:
    return 2 + 2 * STEPS + len(tool_steps)


def pick_status(rng: random.Random) -> str:
    r = rng.random()  # about 15% failed
    if r < 0.85:
        return "ok"
    if r < 0.92:
        return "step_errors"
    if r < 0.96:
        return "max_steps"
    return "error"


def count_spans(client: Any, project: str, where: str | None) -> int:
    """How many spans (roots when where='parent_id is None') Phoenix lists now, counted by Phoenix itself
    (GraphQL recordCount): fetching a column of every root to count them slowed the load more and more."""
    condition = f"(filterCondition: {json.dumps(where)})" if where else ""
    query = "{ projects { edges { node { name count: recordCount" + condition + " } } } }"
    response = client._client.post("/graphql", json={"query": query}, timeout=600)
    response.raise_for_status()
    body = response.json()
    if body.get("data") is None:
        raise RuntimeError(f"Phoenix's GraphQL refused {query}: {body.get('errors')}")
    for edge in body["data"]["projects"]["edges"]:
        if edge["node"]["name"] == project:
            return int(edge["node"]["count"])
    return 0  # no project yet


class Loader:
    """One tracer provider (cogscope's setup_tracing, batch exporter) that sends synthetic cycles to Phoenix."""

    def __init__(self, endpoint: str, project: str, tool_steps: tuple[int, ...] = (1, 2), seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.project = project
        self.tool_steps = tool_steps
        self.tracing = setup_tracing(endpoint=endpoint, project_name=project, batch=True)
        self.tracer = self.tracing.tracer()
        self.counts: dict[str, int] = {}
        self.sent = 0
        self.listed = 0  # roots Phoenix listed at the last look, beyond `self.had`
        self.had = 0  # roots the project held before this loader sent any
        self.reported = time.monotonic()

    def send(self, starts: list[int], client: Any = None) -> None:
        """One cycle per start time (ns since the epoch); flushes every FLUSH_EVERY cycles and at the end.

        With `client`, waits whenever more than MAX_BACKLOG cycles are sent but not yet listed: Phoenix answers
        503 once 20,000 spans wait in its queue (PHOENIX_MAX_SPANS_QUEUE_SIZE), and the exporter drops a batch
        after a few retries.
        """
        for i, start in enumerate(starts):
            if client is not None and i % FLUSH_EVERY == 0 and self.sent - self.listed > MAX_BACKLOG:
                while self.sent - self.listed > MAX_BACKLOG // 2:
                    time.sleep(3)
                    self.listed = count_spans(client, self.project, "parent_id is None") - self.had
                    if time.monotonic() - self.reported >= 60:
                        self.reported = time.monotonic()
                        print(f"  ... sent {self.sent:,} cycles, Phoenix lists {self.listed:,}", flush=True)
            self._cycle(start)
            self.sent += 1
            if (i + 1) % FLUSH_EVERY == 0:
                self.tracing.flush()
        self.tracing.flush()

    def _cycle(self, start: int) -> None:
        rng, tracer = self.rng, self.tracer
        status = pick_status(rng)
        self.counts[status] = self.counts.get(status, 0) + 1
        task = f"{rng.choice(TASKS)} (#{self.sent})"
        root = tracer.start_span(
            "heartbeat.cycle",
            start_time=start,
            attributes={
                "openinference.span.kind": "AGENT",
                "input.value": task,
                "input.mime_type": "text/plain",
                "cogscope.agent": "heartbeat",
                "cogscope.agent.options": "{}",
                "cogscope.model": json.dumps({"default": MODEL}),
                "cogscope.cycle.id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "cogscope.cycle.status": status,
                "session.id": "bench",
            },
        )
        trace_id = root.get_span_context().trace_id
        self.tracing.collector.watch(trace_id)
        t = start + 1_000_000
        run = tracer.start_span(
            "heartbeat.run",
            context=trace.set_span_in_context(root),
            start_time=t,
            attributes={"openinference.span.kind": "AGENT", "input.value": task, "session.id": "bench"},
        )
        run_ctx = trace.set_span_in_context(run)
        for s in range(1, STEPS + 1):
            step = tracer.start_span(
                f"Step {s}",
                context=run_ctx,
                start_time=t,
                attributes={"openinference.span.kind": "CHAIN", "session.id": "bench"},
            )
            step_ctx = trace.set_span_in_context(step)
            llm = tracer.start_span(
                "LiteLLMModel.generate",
                context=step_ctx,
                start_time=t,
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.model_name": MODEL,
                    "llm.token_count.prompt": PROMPT,
                    "llm.token_count.completion": COMPLETION,
                    "llm.token_count.total": PROMPT + COMPLETION,
                    "output.value": f'Thought: step {s}.\n<code>\nprint(recall_memory(query="energy"))\n</code>',
                    "session.id": "bench",
                },
            )
            t += rng.randint(400, 2500) * 1_000_000
            llm.end(end_time=t)
            if s in self.tool_steps:
                tool = tracer.start_span(
                    "recall_memory",
                    context=step_ctx,
                    start_time=t,
                    attributes={
                        "openinference.span.kind": "TOOL",
                        "tool.name": "recall_memory",
                        "input.value": json.dumps({"query": "energy", "limit": 2}),
                        "output.value": "[procedural, 0.9] Long reasoning chains drain energy fast.",
                        "session.id": "bench",
                    },
                )
                t += rng.randint(1, 30) * 1_000_000
                tool.end(end_time=t)
            if status == "step_errors" and s == 2:
                step.set_status(Status(StatusCode.ERROR, "ZeroDivisionError: division by zero"))
            step.end(end_time=t)
        run.end(end_time=t)
        finished = list(self.tracing.collector.take(trace_id))
        root.set_attribute(ATTR_TOOL_S, tool_seconds(finished))  # as telemetry.cycle_runner.Cycle writes them
        root.set_attribute(ATTR_STEPS, step_count(finished))
        if status in ("max_steps", "error"):
            root.set_status(Status(StatusCode.ERROR, "Reached max steps." if status == "max_steps" else "boom"))
        else:
            root.set_status(Status(StatusCode.OK))
        root.end(end_time=t + 1_000_000)

    def close(self) -> None:
        uninstrument()
        self.tracing.provider.shutdown()


def proc_status(key: str) -> float:
    """A /proc/self/status figure in MB (VmRSS: now, VmHWM: peak since the last reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
