"""What agents.speedups changes in smolagents: prompts compiled once, streamed words parsed only if shown; the same
text, the same errors, the same console."""

from __future__ import annotations

import io

import pytest
import smolagents.agents
from jinja2 import StrictUndefined, Template
from rich.console import Console
from rich.markdown import Markdown
from smolagents import CodeAgent
from smolagents.models import Model

from cogscope.agents import speedups


def original(template: str, variables: dict) -> str:  # smolagents' own populate_template, as it is written
    compiled_template = Template(template, undefined=StrictUndefined)
    try:
        return compiled_template.render(**variables)
    except Exception as e:
        raise Exception(f"Error during jinja template rendering: {type(e).__name__}: {e}")  # noqa: B904


class Silent(Model):  # never called: the test only renders the system prompt
    def generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("no model call expected")


def test_a_code_agents_system_prompt_is_the_same_text_and_compiled_once() -> None:
    speedups.install()
    speedups.install()  # twice is once
    assert smolagents.agents.populate_template is speedups.populate_template
    agent = CodeAgent(tools=[], model=Silent(model_id="silent"), additional_authorized_imports=["math"])
    template = agent.prompt_templates["system_prompt"]
    variables = {
        "tools": agent.tools,
        "managed_agents": agent.managed_agents,
        "authorized_imports": "math",
        "custom_instructions": "Decide.",
        "code_block_opening_tag": "<code>",
        "code_block_closing_tag": "</code>",
    }
    before = speedups._compiled.cache_info()
    first = speedups.populate_template(template, variables)
    again = agent.initialize_system_prompt()  # through smolagents itself
    assert first == original(template, variables)
    assert "Decide." in first and "math" in first
    assert again.startswith(first[:200])
    after = speedups._compiled.cache_info()
    assert after.misses - before.misses <= 1  # the system prompt compiled at most once, then reused
    assert after.hits > before.hits


def test_a_missing_variable_fails_as_smolagents_says_it() -> None:
    with pytest.raises(Exception) as ours:
        speedups.populate_template("Hello {{ name }}", {})
    with pytest.raises(Exception) as theirs:
        original("Hello {{ name }}", {})
    assert str(ours.value) == str(theirs.value)
    assert "'name' is undefined" in str(ours.value)


MARKDOWN = "# Plan\n\n- recall the **last** model\n- `revise_model(id=3)`\n\n```python\nprint(recall('x'))\n```\n"


def rendered(renderable: object) -> str:
    console = Console(record=True, width=60, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_streamed_markdown_is_parsed_only_when_shown_and_shows_the_same() -> None:
    speedups.install()
    assert smolagents.agents.Markdown is speedups.LazyMarkdown
    lazy = speedups.LazyMarkdown(MARKDOWN, code_theme="monokai")
    assert "parsed" not in lazy.__dict__  # made, not parsed: what smolagents does for every streamed chunk
    assert isinstance(lazy, Markdown)
    assert rendered(lazy) == rendered(Markdown(MARKDOWN, code_theme="monokai"))
    assert "revise_model(id=3)" in rendered(lazy)
    unshown = speedups.LazyMarkdown(MARKDOWN)
    assert unshown.markup == MARKDOWN  # read before it is shown: parsed then
    assert "parsed" in unshown.__dict__
