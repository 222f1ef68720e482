"""Steps, cycles and amounts as things a person reads: the one place that renders them.

- a live step (a smolagents step object) -> chat messages (`step_messages`, smolagents' own helper) for the Run tab;
- any step -> a StepView (`view_of` for a live step; a recorded one comes from `telemetry.steps`), whose parts
  (`step_parts`) are written as terminal text (`step_text`: `cogscope run`, `show`, `replay`) or as markdown
  (`step_markdown`: the Traces tab);
- a cycle's totals (`totals_text`) and status (`STATUS_LABELS`), and amounts (`telemetry.usd`).

Everything these functions return has secrets blanked (telemetry.redaction): the page and the CLI print only
what went through here or through `redacted`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cogscope.defaults import VALUE_LIMIT
from cogscope.telemetry import (
    ERROR,
    MAX_STEPS,
    OK,
    STEP_ERRORS,
    CycleTotals,
    StepView,
    ToolCall,
    counted,
    redact,
    redact_value,
    usd,
)

if TYPE_CHECKING:
    from smolagents import ActionStep

    from cogscope.telemetry import CycleResult


def redacted(text: Any) -> str:
    """`text` as a string with secrets blanked and lone surrogates escaped: for any text a page or CLI shows."""
    return redact("" if text is None else str(text))


# -- untrusted text in markdown ------------------------------------------------------------------------------
# Text from models, tools, traces and users reaches the page only through `fence` (a block) or `inline` (a
# title, a cell, a sentence): it shows as typed, and nothing in it becomes a heading, a link, an image or HTML.
# ui/headers.py's Content-Security-Policy is the second wall: the page loads no image from elsewhere, whatever
# renders.
BACKTICKS = re.compile(r"`+")
# what markdown acts on in the middle of a line (emphasis, code, links, images, HTML, entities, table cells, maths);
# `inline` text always follows a label on its line, so line-start markup (headings, lists, quotes) cannot start
MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]<>!|&~$#])")


def fence(text: str, language: str = "") -> str:
    """`text` as a fenced code block that nothing inside it can close.

    A closing fence must be a run of at least as many backticks as the opening one (CommonMark), so a fence longer
    than every run of backticks anywhere in the text cannot be closed early, whatever follows the run (a space, an
    indent, tildes). Inside a code block, markdown and HTML are text."""
    longest = max((len(run) for run in BACKTICKS.findall(text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{BACKTICKS.sub('', language)}\n{text}\n{marks}"


def inline(text: Any) -> str:
    """Untrusted text for a place in markdown that is not a block, after a label on its line (a title, a table cell,
    an error): redacted, on one line, what markdown acts on backslash-escaped (CommonMark escapes any ASCII
    punctuation), so it renders exactly as typed."""
    one_line = " ".join(redacted(text).splitlines())
    return MARKDOWN_ACTIVE.sub(r"\\\1", one_line)


STATUS_LABELS = {
    OK: "✅ ok: final answer",
    STEP_ERRORS: "⚠️ step_errors: final answer, but some steps failed",
    MAX_STEPS: "⛔ max_steps: the step budget ran out before a final answer",
    ERROR: "❌ error: the run stopped with an error",
}


def usd_cells(values: Any) -> list[str]:
    """A column of amounts as table cells (`usd`)."""
    return [usd(v) for v in list(values)]


def totals_text(t: CycleTotals, sep: str = " · ") -> str:
    """A cycle's numbers, the same in every view: steps, calls, tokens, cost, duration."""
    return sep.join(
        (
            counted(t.steps, "step"),
            counted(t.llm_calls, "LLM call"),
            f"{t.total_tokens:,} tokens ({t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion)",
            f"cost {usd(t.cost_usd)}",
            f"{t.duration_s:.2f} s",
        )
    )


def step_messages(step: Any) -> Iterator[dict[str, Any]]:
    """One smolagents step -> chat messages as dicts (Gradio's messages format).

    smolagents' helper marks code, observations and errors `status: done`, which
    Gradio renders as closed accordions; a debugger shows them open, so that
    status is dropped for titled messages.
    """
    from smolagents.gradio_ui import pull_messages_from_step  # live steps only: reading a trace needs no smolagents

    for message in pull_messages_from_step(step):
        metadata = dict(message.metadata or {})
        if metadata.get("title"):
            metadata.pop("status", None)
            metadata["title"] = TITLE_MARKUP.sub("", redact(str(metadata["title"])))
        content = message.content
        if isinstance(content, str):
            content = inert_message(redact(content))
        elif not isinstance(content, dict):  # smolagents' files are {"path": ...}; anything else shows as text
            content = fence(redacted(content))
        yield {
            "role": message.role if isinstance(message.role, str) else message.role.value,
            "content": content,
            "metadata": redact_value(metadata),
        }


# what smolagents' helper writes itself around the text it is given; everything else in a message is that text
OWN_MARKUP = re.compile(
    r"\*\*(?:Step \d+|Planning step)\*\*|-+"
    r'|<span style="color: #bbbbc2; font-size: 12px;">\*\*(?:Step \d+|Planning step)\*\*[\w |:,.]*</span>\s*'
)
FINAL_ANSWER = re.compile(r"\*\*Final answer:\*\*\s*(.*)", re.DOTALL)
CODE_BLOCK = re.compile(r"```(\w*)\n(.*?)(?:\n```)?\s*", re.DOTALL)
TITLE_MARKUP = re.compile(r"[`*<>\[\]()!#&\\|~$]")  # a title shows a tool's name: no markup in it


def inert_message(content: str) -> str:
    """A chat message from smolagents' helper, with the text it wraps made inert (`fence`): its own headers and
    footnotes stay as they are; the final answer keeps its label; a code block or the observations are fenced
    again (smolagents' fence is three backticks, which the text can close); any other text is fenced whole."""
    if OWN_MARKUP.fullmatch(content):
        return content
    if (answer := FINAL_ANSWER.fullmatch(content)) is not None:
        return f"**Final answer:**\n{fence(answer.group(1).strip())}"
    if (block := CODE_BLOCK.fullmatch(content)) is not None:
        return fence(block.group(2), block.group(1))
    return fence(content)


def trace_link_markdown(url: str | None, line: str) -> str:
    """The link to a trace, or the honest line that says it is not in Phoenix yet (Runtime.trace_link)."""
    if url is None:
        return f"⏳ {line}; the link appears here once Phoenix has stored it"
    extra = line[len(url) :]
    return f"[Open this trace in Phoenix]({url}){extra}"


def totals_markdown(result: CycleResult, link_markdown: str) -> str:
    lines = [
        f"**{STATUS_LABELS.get(result.status, result.status)}**",
        "",
        totals_text(result.totals),
        "",
        f"Trace `{result.trace_id}` · {link_markdown}",
    ]
    if result.error:
        lines[1:1] = ["", f"Error: {inline(result.error)}"]
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
    tokens = "replayed" if view.replayed else f"{view.prompt_tokens:,}+{view.completion_tokens:,} tokens"
    return redact(f"{mark} Step {view.number} ({where}) · {view.duration_s:.2f} s · {tokens}")


@dataclass(frozen=True)
class Part:
    """One thing a step shows: `label` and its `text`; a tool call also has its `arguments` (JSON text)."""

    label: str
    text: str
    language: str = ""
    arguments: str | None = None


def step_parts(view: StepView, cut: Callable[[Any], str]) -> list[Part]:
    """What a step shows, in the order it happened: the model's output, the code that ran, each tool call and its
    result, the observations, the error. `cut` redacts (and shortens) each text."""
    parts = []
    if view.model_output is not None:
        parts.append(Part("model output", cut(view.model_output)))
    if view.code:
        parts.append(Part("code", cut(view.code), "python"))
    for call in view.tool_calls:
        result = f"error: {cut(call.error)}" if call.error else cut(call.output)
        parts.append(Part(f"tool {call.name}", result, arguments=cut(json.dumps(call.arguments, default=str))))
    if view.observations:
        parts.append(Part("observations", cut(view.observations)))
    if view.error:
        parts.append(Part("error", cut(view.error)))
    return parts


def _cutter(full: bool, limit: int) -> Callable[[Any], str]:
    return redacted if full else (lambda t: truncate(t, limit))


def step_text(
    view: StepView,
    *,
    full: bool = False,
    messages: bool | None = None,
    limit: int = VALUE_LIMIT,
    title: str | None = None,
) -> str:
    """One step as terminal text; `full` lifts the truncation and adds the exact input messages (unless
    `messages` is False)."""
    cut = _cutter(full, limit)
    lines = [("  " * view.depth) + (title or step_title(view))]
    if full if messages is None else messages:
        lines.append("  input messages:")
        for m in view.input_messages:
            lines.append(f"    [{m['role']}]")
            lines += ["      " + line for line in cut(m["content"]).splitlines()]
    for part in step_parts(view, cut):
        if part.arguments is not None:
            lines.append(f"  {part.label}({part.arguments}) -> {part.text}")
        elif part.label == "error":
            lines.append(f"  error: {part.text}")
        else:
            lines += [f"  {part.label}:"] + ["    " + line for line in part.text.splitlines()]
    return redact("\n".join(lines))


def step_markdown(view: StepView, *, full: bool = False, limit: int = VALUE_LIMIT) -> str:
    """One step as markdown (the Traces tab): its title, then each part in a fenced block."""
    parts = [f"### {inline(step_title(view))}"]
    for part in step_parts(view, _cutter(full, limit)):
        if part.arguments is not None:
            name = part.label.removeprefix("tool ")
            parts += [f"**Tool call** {inline(name)}", fence(part.arguments, "json"), "→", fence(part.text)]
        else:
            parts += [f"**{part.label[0].upper() + part.label[1:]}**", fence(part.text, part.language)]
    return "\n\n".join(parts)


def messages_markdown(view: StepView, *, full: bool = False, limit: int = VALUE_LIMIT) -> str:
    """The exact messages the model was given for this step, as markdown."""
    if not view.input_messages:
        return "_No input messages recorded for this step._"
    cut = _cutter(full, limit)
    return "\n\n".join(f"**{inline(m['role'])}**\n\n{fence(cut(m['content']))}" for m in view.input_messages)


# -- live steps (`cogscope run`, `heartbeat`, `replay`) -----------------------------------------------------
def view_of(step: ActionStep) -> StepView:
    """A live smolagents step as a StepView, so that it prints as a recorded one does."""
    usage = step.token_usage
    duration = step.timing.duration if step.timing is not None else None
    calls = [] if step.code_action else [ToolCall(c.name, c.arguments, None, None) for c in step.tool_calls or []]
    return StepView(
        number=step.step_number,
        agent="",
        local_number=step.step_number,
        depth=0,
        span_id="",
        status="error" if step.error is not None else "ok",
        duration_s=float(duration or 0.0),
        model_output=None if step.model_output is None else str(step.model_output),
        code=step.code_action,
        tool_calls=calls,
        observations=step.observations,
        error=None if step.error is None else str(step.error),
        prompt_tokens=usage.input_tokens if usage else 0,
        completion_tokens=usage.output_tokens if usage else 0,
    )


def _live_header(label: str, step: Any) -> str:
    duration = getattr(getattr(step, "timing", None), "duration", None)
    usage = getattr(step, "token_usage", None)
    tokens = f"{usage.input_tokens:,} in / {usage.output_tokens:,} out tokens" if usage else "no token count"
    return f"── {label} ── {f'{duration:.2f} s' if duration else '-'} · {tokens}"


def live_step_text(step: Any) -> str:
    """One live step as terminal text: a header with duration and tokens, then its parts (`step_parts`)."""
    from smolagents import ActionStep, FinalAnswerStep, PlanningStep

    if isinstance(step, FinalAnswerStep):
        return redacted(f"Final answer: {step.output}")
    if isinstance(step, PlanningStep):
        plan = "\n".join("    " + line for line in str(step.plan).strip().splitlines())
        return redacted(f"{_live_header('Plan', step)}\n{plan}")
    if not isinstance(step, ActionStep):
        return redacted(step)
    return step_text(view_of(step), full=True, messages=False, title=_live_header(f"Step {step.step_number}", step))


class LiveWords:
    """The model's output as it streams in (`ChatMessageStreamDelta`s), for a terminal or a page.

    Only whole words are shown until the output is complete, and always redacted: a secret is one word, so it
    never shows in part. smolagents' `agglomerate_stream_deltas` joins the deltas, as its GradioUI does.
    """

    def __init__(self) -> None:
        self.deltas: list[Any] = []
        self.printed = ""  # what `new_text` has handed out so far

    def add(self, delta: Any) -> None:
        self.deltas.append(delta)

    @property
    def started(self) -> bool:
        return bool(self.deltas)

    def text(self, *, complete: bool = False) -> str:
        """The output so far, up to its last whole word (all of it once `complete`), redacted."""
        from smolagents.models import agglomerate_stream_deltas

        content = agglomerate_stream_deltas(self.deltas).content or "" if self.deltas else ""
        if not complete:
            cut = max(content.rfind(" "), content.rfind("\n"), content.rfind("\t"))
            content = content[: cut + 1]
        return redacted(content)

    def new_text(self, *, complete: bool = False) -> str:
        """What a terminal has not printed yet."""
        text = self.text(complete=complete)
        same = 0
        while same < min(len(text), len(self.printed)) and text[same] == self.printed[same]:
            same += 1
        self.printed = text
        return text[same:]
