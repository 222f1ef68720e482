"""cogscope: a browser debugger and observatory for smolagents cognitive agents, traced into Arize Phoenix.

The repository's folders install under this package (pyproject.toml maps them):

- `cogscope.agents` (folder `agents/`): the cognitive agents, their tools, the memory store, the sandbox, the registry
- `cogscope.telemetry` (folder `telemetry/`): tracing, the embedded Phoenix, the spool, the tables, cost, replay
- `cogscope.ui` (folder `ui/`): the Gradio app, one module per tab, and the `cogscope` command
- `cogscope.defaults` (this folder): every default and repeated constant, read by all three

Dependencies point one way: ui -> telemetry, ui -> agents, and every package -> defaults.

An app of your own records its cycles with two calls::

    from cogscope import record, stop

    record("my_app:build")  # before the agent runs
    ...
    stop()  # before the process exits: sends the spans still spooled
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .telemetry.recorder import record, stop

__all__ = ["record", "stop"]


def __getattr__(name: str) -> Any:
    """`record` and `stop` load the recorder on first use: `import cogscope` alone costs nothing."""
    if name in __all__:
        from .telemetry import recorder

        return getattr(recorder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
