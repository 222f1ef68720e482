"""Steps and results as things a person reads: chat messages (smolagents' own helpers) and totals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from smolagents.gradio_ui import pull_messages_from_step

from telemetry import CycleResult

STATUS_LABELS = {
    "ok": "✅ ok: final answer",
    "step_errors": "⚠️ step_errors: final answer, but some steps failed",
    "max_steps": "⛔ max_steps: the step budget ran out before a final answer",
    "error": "❌ error: the run stopped with an error",
}


def step_messages(step: Any) -> Iterator[dict[str, Any]]:
    """One smolagents step -> chat messages as dicts (Gradio's messages format).

    smolagents' helper marks code, observations and errors `status: done`, which
    Gradio renders as closed accordions; a debugger shows them open, so that
    status is dropped for titled messages.
    """
    for message in pull_messages_from_step(step):
        metadata = dict(message.metadata or {})
        if metadata.get("title"):
            metadata.pop("status", None)
        yield {
            "role": message.role if isinstance(message.role, str) else message.role.value,
            "content": message.content,
            "metadata": metadata,
        }


def totals_markdown(result: CycleResult, trace_link: str) -> str:
    t = result.totals
    lines = [
        f"**{STATUS_LABELS.get(result.status, result.status)}**",
        "",
        f"{t.steps} steps · {t.llm_calls} LLM calls · {t.total_tokens:,} tokens "
        f"({t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion) · {t.duration_s:.2f} s",
        "",
        f"Trace `{result.trace_id}` · [Open this trace in Phoenix]({trace_link})",
    ]
    if result.error:
        lines[1:1] = ["", f"Error: {result.error}"]
    return "\n".join(lines)
