"""Steps and results as things a person reads: chat messages (smolagents' own helpers) and totals.

Everything these functions return has secrets blanked (telemetry.redaction): the page and `cogscope show`
print only what went through here or through `redacted`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from smolagents.gradio_ui import pull_messages_from_step

from telemetry import CycleResult
from telemetry.redaction import redact, redact_value
from telemetry.steps import StepView


def redacted(text: Any) -> str:
    """`text` as a string with secrets blanked and lone surrogates escaped: for any text a page or CLI shows."""
    return redact("" if text is None else str(text))


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
            "content": redact(message.content) if isinstance(message.content, str) else message.content,
            "metadata": redact_value(metadata),
        }


def trace_link_markdown(url: str | None, line: str) -> str:
    """The link to a trace, or the honest line that says it is not in Phoenix yet (Runtime.trace_link)."""
    if url is None:
        return f"⏳ {line}; the link appears here once Phoenix has stored it"
    extra = line[len(url) :]
    return f"[Open this trace in Phoenix]({url}){extra}"


def totals_markdown(result: CycleResult, link_markdown: str) -> str:
    t = result.totals
    lines = [
        f"**{STATUS_LABELS.get(result.status, result.status)}**",
        "",
        f"{t.steps} steps · {t.llm_calls} LLM calls · {t.total_tokens:,} tokens "
        f"({t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion) · {t.duration_s:.2f} s",
        "",
        f"Trace `{result.trace_id}` · {link_markdown}",
    ]
    if result.error:
        lines[1:1] = ["", f"Error: {result.error}"]
    return redact("\n".join(lines))


# -- step-through (Traces tab and `cogscope show`) ----------------------------------------
def truncate(text: str | None, limit: int) -> str:
    """`text` redacted, then cut at `limit` characters (redacted first, so no secret is cut in half and missed)."""
    if text is None:
        return ""
    text = redact(str(text))
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit:,} more characters]"


def step_title(view: StepView) -> str:
    where = f"{view.agent} step {view.local_number}" if view.depth else f"step {view.local_number}"
    mark = "❌" if view.status == "error" or view.error else "✅"
    tokens = f"{view.prompt_tokens:,}+{view.completion_tokens:,} tokens" if view.prompt_tokens else "replayed"
    return redact(f"{mark} Step {view.number} ({where}) · {view.duration_s:.2f} s · {tokens}")


def step_text(view: StepView, *, full: bool = False, limit: int = 2000) -> str:
    """One step as plain text; `full` adds the exact input messages and lifts the truncation."""
    cut = redacted if full else (lambda t: truncate(t, limit))
    lines = [("  " * view.depth) + step_title(view)]
    if full:
        lines.append("  input messages:")
        for m in view.input_messages:
            lines.append(f"    [{m['role']}]")
            lines += ["      " + line for line in cut(m["content"]).splitlines()]
    if view.model_output is not None:
        lines += ["  model output:"] + ["    " + line for line in cut(view.model_output).splitlines()]
    if view.code:
        lines += ["  code:"] + ["    " + line for line in cut(view.code).splitlines()]
    for call in view.tool_calls:
        result = f"error: {call.error}" if call.error else cut(call.output)
        lines.append(f"  tool {call.name}({json.dumps(call.arguments, default=str)}) -> {result}")
    if view.observations:
        lines += ["  observations:"] + ["    " + line for line in cut(view.observations).splitlines()]
    if view.error:
        lines.append(f"  error: {cut(view.error)}")
    return redact("\n".join(lines))
