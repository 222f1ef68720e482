"""ui.render on hand-built steps, the way smolagents' tests/test_gradio_ui.py feeds its renderer.

What is asserted is what a person reads: the texts, roles, code block, error line and token counts.
"""

from __future__ import annotations

import pytest
from smolagents.agent_types import AgentText
from smolagents.memory import ActionStep, FinalAnswerStep, PlanningStep, ToolCall
from smolagents.models import ChatMessage, MessageRole
from smolagents.monitoring import AgentLogger, LogLevel, Timing, TokenUsage
from smolagents.utils import AgentExecutionError

from cogscope.telemetry import CycleResult, CycleTotals
from cogscope.telemetry.redaction import REDACTED
from cogscope.telemetry.steps import StepView
from cogscope.telemetry.steps import ToolCall as RecordedToolCall
from cogscope.ui.render import (
    fence,
    inline,
    step_messages,
    step_text,
    step_title,
    totals_markdown,
    totals_text,
    trace_link_markdown,
    truncate,
)

CODE = 'print(observe(place="kitchen"))'
SECRET = "topsecret-value-123"


def footnote(text: str) -> str:
    return f'<span style="color: #bbbbc2; font-size: 12px;">{text}</span> '


def action_step(**fields) -> ActionStep:  # type: ignore[no-untyped-def]
    defaults = dict(
        step_number=2,
        timing=Timing(start_time=100.0, end_time=101.5),
        model_output=f"Thought: look first.\n<code>\n{CODE}\n</code>",
        tool_calls=[ToolCall(name="python_interpreter", arguments=CODE, id="call_1")],
        observations="Execution logs:\nkettle on",
        token_usage=TokenUsage(input_tokens=1000, output_tokens=100),
    )
    return ActionStep(**{**defaults, **fields})


def test_an_action_step_reads_as_step_thought_code_logs_and_footnote():
    messages = list(step_messages(action_step()))
    assert messages == [
        {"role": "assistant", "content": "**Step 2**", "metadata": {"status": "done"}},
        {
            "role": "assistant",
            "content": f"```\nThought: look first.\n<code>\n{CODE}\n</code>\n```",  # text from a model: inert
            "metadata": {"status": "done"},
        },
        # titled messages lose `status: done`, so Gradio shows them open
        {
            "role": "assistant",
            "content": f"```python\n{CODE}\n```",
            "metadata": {"title": "🛠️ Used tool python_interpreter"},
        },
        {"role": "assistant", "content": "```bash\nkettle on\n```", "metadata": {"title": "📝 Execution Logs"}},
        {
            "role": "assistant",
            "content": footnote("**Step 2** | Input tokens: 1,000 | Output tokens: 100 | Duration: 1.5s"),
            "metadata": {"status": "done"},
        },
        {"role": "assistant", "content": "-----", "metadata": {"status": "done"}},
    ]


def test_a_failed_step_shows_its_error_line():
    error = AgentExecutionError("Code execution failed at line '1/0'", AgentLogger(level=LogLevel.OFF))
    messages = list(step_messages(action_step(error=error, observations=None, token_usage=None)))
    errors = [m for m in messages if m["metadata"].get("title") == "💥 Error"]
    assert errors == [
        {
            "role": "assistant",
            "content": "```\nCode execution failed at line '1/0'\n```",
            "metadata": {"title": "💥 Error"},
        }
    ]
    assert not any(m["metadata"].get("title") == "📝 Execution Logs" for m in messages)
    assert messages[-2]["content"] == footnote("**Step 2** | Duration: 1.5s")  # no tokens known: none shown


def test_a_planning_step_and_a_final_answer():
    plan = PlanningStep(
        model_input_messages=[],
        model_output_message=ChatMessage(role=MessageRole.ASSISTANT, content="1. Recall\n2. Decide"),
        plan="1. Recall\n2. Decide",
        timing=Timing(start_time=0.0, end_time=2.0),
        token_usage=TokenUsage(input_tokens=50, output_tokens=20),
    )
    assert [m["content"] for m in step_messages(plan)] == [
        "**Planning step**",
        "```\n1. Recall\n2. Decide\n```",
        footnote("**Planning step** | Input tokens: 50 | Output tokens: 20 | Duration: 2.0s"),
        "-----",
    ]
    assert list(step_messages(FinalAnswerStep(output="Take a short walk."))) == [
        {
            "role": "assistant",
            "content": "**Final answer:**\n```\nTake a short walk.\n```",
            "metadata": {"status": "done"},
        }
    ]
    (text,) = step_messages(FinalAnswerStep(output=AgentText("Take a short walk.")))
    assert text["content"] == "**Final answer:**\n```\nTake a short walk.\n```"


def test_secrets_are_blanked_in_step_messages(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", SECRET)
    step = action_step(
        model_output=f"Thought: the key is {SECRET}.\n<code>\nconnect(key='{SECRET}')\n</code>",
        tool_calls=[ToolCall(name="python_interpreter", arguments=f"connect(key='{SECRET}')", id="c")],
        observations=f"Execution logs:\nconnected with {SECRET}",
        error=AgentExecutionError(f"refused {SECRET}", AgentLogger(level=LogLevel.OFF)),
    )
    messages = list(step_messages(step))
    assert SECRET not in repr(messages)
    by_title = {m["metadata"].get("title"): m["content"] for m in messages}
    assert by_title["🛠️ Used tool python_interpreter"] == f"```python\nconnect(key='{REDACTED}')\n```"
    assert by_title["📝 Execution Logs"] == f"```bash\nconnected with {REDACTED}\n```"
    assert by_title["💥 Error"] == f"```\nrefused {REDACTED}\n```"


# -- step-through: StepView as text ----------------------------------------------------------------


def view(**fields) -> StepView:  # type: ignore[no-untyped-def]
    defaults = dict(
        number=1,
        agent="heartbeat",
        local_number=1,
        depth=0,
        span_id="s1",
        status="ok",
        duration_s=1.5,
        input_messages=[{"role": "system", "content": "You decide.\nBe brief."}, {"role": "user", "content": "Act."}],
        model_output=f"Thought: look.\n<code>\n{CODE}\n</code>",
        code=CODE,
        tool_calls=[RecordedToolCall("observe", {"place": "kitchen"}, "kettle on", None)],
        observations="Execution logs:\nkettle on",
        prompt_tokens=1200,
        completion_tokens=34,
    )
    return StepView(**{**defaults, **fields})


def test_step_title():
    assert step_title(view()) == "✅ Step 1 (step 1) · 1.50 s · 1,200+34 tokens"
    managed = view(number=3, agent="perception", local_number=2, depth=1, status="error", duration_s=0.25)
    assert step_title(managed) == "❌ Step 3 (perception step 2) · 0.25 s · 1,200+34 tokens"
    recovered = view(error="Error executing tool 'observe'")  # an OK span with a recovered error is still marked
    assert step_title(recovered).startswith("❌ Step 1 ")
    # a model that reports no usage shows its zeros; only a replay's stand-in call says "replayed"
    assert step_title(view(prompt_tokens=0, completion_tokens=0)) == "✅ Step 1 (step 1) · 1.50 s · 0+0 tokens"
    replayed = view(prompt_tokens=0, completion_tokens=0, replayed=True)
    assert step_title(replayed) == "✅ Step 1 (step 1) · 1.50 s · replayed"


def test_step_text():
    assert step_text(view()) == "\n".join(
        [
            "✅ Step 1 (step 1) · 1.50 s · 1,200+34 tokens",
            "  model output:",
            "    Thought: look.",
            "    <code>",
            f"    {CODE}",
            "    </code>",
            "  code:",
            f"    {CODE}",
            '  tool observe({"place": "kitchen"}) -> kettle on',
            "  observations:",
            "    Execution logs:",
            "    kettle on",
        ]
    )


def test_step_text_of_a_managed_agents_failed_step():
    failed = view(
        number=3, agent="perception", local_number=2, depth=1, status="error", model_output=None, code=None,
        tool_calls=[RecordedToolCall("observe", {"place": "cellar"}, None, "ValueError: no light")],
        observations=None, error="AgentToolExecutionError: no light",
    )  # fmt: skip
    assert step_text(failed) == "\n".join(
        [
            "  ❌ Step 3 (perception step 2) · 1.50 s · 1,200+34 tokens",
            '  tool observe({"place": "cellar"}) -> error: ValueError: no light',
            "  error: AgentToolExecutionError: no light",
        ]
    )


def test_step_text_full_shows_the_input_messages_and_does_not_cut():
    long = "x" * 50
    text = step_text(view(observations=long), full=True, limit=10)
    lines = text.splitlines()
    assert lines[1:6] == ["  input messages:", "    [system]", "      You decide.", "      Be brief.", "    [user]"]
    assert lines[6] == "      Act."
    assert lines[-1] == "    " + long
    cut = step_text(view(observations=long), limit=10)
    assert "input messages" not in cut
    assert cut.splitlines()[-1] == "    xxxxxxxxxx … [40 more characters]"


def test_truncate():
    assert truncate(None, 5) == ""
    assert truncate("abcde", 5) == "abcde"
    assert truncate("a" * 1234 + "b", 1) == "a … [1,234 more characters]"


def test_secrets_are_blanked_in_step_text_and_title(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", SECRET)
    leaky = view(
        agent=f"agent-{SECRET}",
        depth=1,
        input_messages=[{"role": "user", "content": f"use {SECRET}"}],
        model_output=f"key={SECRET}",
        code=f"connect('{SECRET}')",
        tool_calls=[RecordedToolCall("connect", {"key": SECRET}, f"ok {SECRET}", None)],
        observations=SECRET,
        error=f"refused {SECRET}",
    )
    for text in (step_title(leaky), step_text(leaky), step_text(leaky, full=True), truncate(SECRET * 3, 25)):
        assert SECRET not in text
    text = step_text(leaky, full=True)
    assert f'  tool connect({{"key": "{REDACTED}"}}) -> ok {REDACTED}' in text
    assert f"  error: refused {REDACTED}" in text
    # cut after blanking: a secret that straddles the limit is not half shown
    assert truncate(f"abc {SECRET}", 10) == f"abc {REDACTED[:6]} … [{len(REDACTED) - 6} more characters]"


# -- totals and the trace link ---------------------------------------------------------------------

TRACE = "0123456789abcdef0123456789abcdef"
TOTALS = CycleTotals(
    steps=2,
    llm_calls=2,
    prompt_tokens=2100,
    completion_tokens=140,
    duration_s=3.456,
    cost_usd=2100 * 0.15e-6 + 140 * 0.6e-6,
)


def result(status: str, error: str | None = None) -> CycleResult:
    return CycleResult(trace_id=TRACE, cycle_id="c1", status=status, final_answer=None, error=error, totals=TOTALS)


def test_totals_markdown():
    assert totals_markdown(result("ok"), "[link](http://x)") == (
        "**✅ ok: final answer**\n"
        "\n"
        "2 steps · 2 LLM calls · 2,240 tokens (2,100 prompt + 140 completion) · cost $0.000399 · 3.46 s\n"
        "\n"
        f"Trace `{TRACE}` · [link](http://x)"
    )


def test_totals_markdown_of_a_failed_cycle():
    text = totals_markdown(result("error", error="AgentError: Agent interrupted."), "link")
    assert text.splitlines()[:4] == [
        "**❌ error: the run stopped with an error**",
        "",
        "Error: AgentError: Agent interrupted.",
        "",
    ]
    assert totals_markdown(result("max_steps"), "link").startswith(
        "**⛔ max_steps: the step budget ran out before a final answer**"
    )
    assert totals_markdown(result("step_errors"), "link").startswith(
        "**⚠️ step_errors: final answer, but some steps failed**"
    )
    assert totals_markdown(result("weird"), "link").startswith("**weird**")  # an unknown status, as it is


def test_totals_markdown_blanks_secrets(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", SECRET)
    text = totals_markdown(result("error", error=f"401: bad key {SECRET}"), "link")
    assert SECRET not in text and f"Error: 401: bad key {inline(REDACTED)}" in text


@pytest.mark.parametrize(
    ("url", "line", "markdown"),
    [
        (
            "http://127.0.0.1:6006/redirects/traces/abc",
            "http://127.0.0.1:6006/redirects/traces/abc",
            "[Open this trace in Phoenix](http://127.0.0.1:6006/redirects/traces/abc)",
        ),
        (
            "http://p/redirects/traces/abc",
            "http://p/redirects/traces/abc; 2 span(s) dropped: the spool was full (COGSCOPE_SPOOL_MB)",
            "[Open this trace in Phoenix](http://p/redirects/traces/abc); 2 span(s) dropped: the spool was full "
            "(COGSCOPE_SPOOL_MB)",
        ),
        (
            None,
            "trace pending upload (3 spans)",
            "⏳ trace pending upload (3 spans); the link appears here once Phoenix has stored it",
        ),
    ],
)
def test_trace_link_markdown(url, line, markdown):
    assert trace_link_markdown(url, line) == markdown


def test_totals_text_counts_in_words():
    one = CycleTotals(steps=1, llm_calls=1, prompt_tokens=10, completion_tokens=2, duration_s=0.5, cost_usd=0.0)
    assert totals_text(one) == "1 step · 1 LLM call · 12 tokens (10 prompt + 2 completion) · cost $0 · 0.50 s"
    assert totals_text(TOTALS).startswith("2 steps · 2 LLM calls · ")


@pytest.mark.parametrize("breaker", ["``` ", "```", "````", "   ```", "``` python", "~~~", "`````` ``` `", "```\u00a0"])
def test_nothing_in_a_text_closes_its_fence(breaker):
    """CommonMark: a fence closes only on a line of at least as many backticks as opened it (indented up to 3
    spaces, then only spaces); `fence` opens with more backticks than any run in the text."""
    import re

    text = f"before\n{breaker}\n# Verified by cogscope\n![x](http://127.0.0.1:9/x.png)"
    block = fence(text, "json")
    opening = block.split("\n", 1)[0].removesuffix("json")
    body = block.split("\n")[1:-1]
    assert block.split("\n")[-1] == opening
    assert not any(re.fullmatch(rf" {{0,3}}`{{{len(opening)},}}\s*", line) for line in body)


def test_inline_text_cannot_become_markup():
    assert inline("a ![x](http://h/x.png) <img src=x> *b* `c` | d\n# e") == (
        "a \\!\\[x\\](http://h/x.png) \\<img src=x\\> \\*b\\* \\`c\\` \\| d \\# e"
    )


def test_a_divergence_in_the_traces_tab_is_fenced_redacted_and_names_its_cause(monkeypatch):
    from cogscope.telemetry.replay import Divergence
    from cogscope.telemetry.uncaptured import uncaptured
    from cogscope.ui.traces_tab import divergence_markdown

    monkeypatch.setenv("MY_SERVICE_API_KEY", SECRET)
    prompt = Divergence(
        1, "the prompt", "x", "y", call=1, message=0, role="<b>system</b>", diff=(f"- key {SECRET} ```", "+ [link](x)")
    )
    text = divergence_markdown(prompt)
    assert text.startswith(r"the prompt differs at call 1, message 0 (\<b\>system\</b\>).")
    assert SECRET not in text and REDACTED in text
    block = text[text.index("(- recorded, + replay):\n") + len("(- recorded, + replay):\n") :]
    assert block.startswith("````diff\n- key") and block.endswith("+ [link](x)\n````")  # nothing in it closes it
    result = Divergence(2, "a tool's result", "1718000000.5", "1718000009.25", cause=uncaptured("roll 4", "roll 2"))
    assert divergence_markdown(result).endswith(
        r"🎲 differs only in numbers: maybe an input cogscope did not capture (random numbers, the clock), or a "
        r"starting state other than the recorded one; draw random numbers with cogscope.agents.cycle\_inputs.rng() "
        r"and read the time with now() to have them recorded and given back"
    )
    assert "Recorded:\n```\n1718000000.5\n```\n\nReplay:\n```\n1718000009.25\n```" in divergence_markdown(result)
    lines = Divergence(2, "the observations", "a\nb", "a\nc", diff=("- b", "+ c"))
    expected = "the observations differs.\n\nIts lines that differ (- recorded, + replay):\n```diff\n- b\n+ c\n```"
    assert divergence_markdown(lines) == expected
