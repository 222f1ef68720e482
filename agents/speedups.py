"""Two costs smolagents pays on every cycle for nothing, taken off (issue #14: one shared app under load).

- **Prompt templates compiled once.** smolagents renders its prompts with `populate_template`, which compiles the
  Jinja template from its text every time: the system prompt at the start of every run, the planning and
  final-answer prompts when used. On a shared `cogscope ui` running 50 cycles at once this was about a tenth of the
  app's CPU. The cached version keeps the compiled template per template text (jinja2's `Environment` caches
  templates loaded by name, never ones made from a string).
- **Streamed words parsed as Markdown only if shown.** With `stream_outputs`, smolagents makes a `rich` Markdown of
  the whole output so far for every chunk the model streams, for its console's live view, whatever the agent's
  verbosity, and rich parses the Markdown when it is made. cogscope's agents log nothing to the console, so the
  parse was about a tenth of the app's CPU too. `LazyMarkdown` is rich's Markdown that parses when it is first
  rendered (or looked into): a console that shows it sees the same thing.

`install()` puts both into `smolagents.agents`, process-wide. The text of every prompt, the messages the model
gets, the errors and what a console shows stay the same.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from jinja2 import Environment, StrictUndefined, Template
from rich.markdown import Markdown

_lock = threading.Lock()
_installed = False


_environment = Environment(undefined=StrictUndefined)  # what Template(text, undefined=StrictUndefined) makes


@functools.lru_cache(maxsize=256)  # a few agents' worth of templates; an agent with prompts of its own adds a few
def _compiled(template: str) -> Template:
    return _environment.from_string(template)


def populate_template(template: str, variables: dict[str, Any]) -> str:
    """smolagents' `populate_template`, with the compiled template kept (a Template renders safely from any thread)."""
    compiled = _compiled(template)
    try:
        return compiled.render(**variables)
    except Exception as e:
        raise Exception(f"Error during jinja template rendering: {type(e).__name__}: {e}") from e


class LazyMarkdown(Markdown):
    """rich's Markdown, parsed when first rendered or read instead of when made."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # Markdown's own arguments, kept for later
        self._lazy: tuple[tuple[Any, ...], dict[str, Any]] | None = (args, kwargs)

    def _parse(self) -> None:
        lazy, self._lazy = self._lazy, None
        if lazy is not None:
            super().__init__(*lazy[0], **lazy[1])

    def __getattr__(self, name: str) -> Any:  # only for what is not there yet: Markdown's attributes, before parsing
        if name != "_lazy" and self.__dict__.get("_lazy") is not None:
            self._parse()
            return getattr(self, name)
        raise AttributeError(name)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        self._parse()
        return super().__rich_console__(console, options)


def install() -> None:
    """Use both in smolagents' agents, process-wide; safe to call more than once."""
    global _installed
    with _lock:
        if _installed:
            return
        import smolagents.agents

        smolagents.agents.populate_template = populate_template
        smolagents.agents.Markdown = LazyMarkdown
        _installed = True
