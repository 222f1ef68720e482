"""MCP both ways: tools of any stdio MCP server for an agent, and the cognitive tools as an MCP server.

- `mcp_tools(["cmd args", ...])` starts each server, lists its tools and yields them as
  smolagents Tools; the servers stop when the context ends.
- `serve(store_path)` runs `cogscope mcp-serve`: the ten cognitive tools over stdio, on the
  same SQLite memory store the agents use, so any MCP client shares the agent's memory.

Why not smolagents' `ToolCollection.from_mcp`: it goes through mcpadapt 0.1.19, which
imports APIs that mcp 2 removed, and Phoenix needs mcp 2 (through fastmcp-slim). The
client here is the small part of mcpadapt we need, written against mcp 2's `Client`.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from smolagents import Tool
from smolagents.models import get_tool_json_schema

from .errors import McpError

CALL_TIMEOUT_S = 120.0
START_TIMEOUT_S = 30.0
JSON_TO_SMOLAGENTS = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
    "null": "null",
}


def parse_command(command: str) -> list[str]:
    try:
        argv = shlex.split(command or "")
    except ValueError as e:
        raise McpError(f"MCP command {command!r} cannot be parsed ({e}); quote it like a shell command") from None
    if not argv:
        raise McpError("an MCP command is empty; give the command that starts the server, e.g. 'cogscope mcp-serve'")
    return argv


def _first_line(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class McpServer:
    """One stdio MCP server, driven from an event loop on a thread of its own (agents call tools synchronously)."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.argv = parse_command(command)
        self.tools: list[Any] = []  # mcp Tool descriptions
        self._loop = asyncio.new_event_loop()
        self._client: Any = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._main, name=f"mcp-{self.argv[0]}", daemon=True)

    def start(self, timeout: float = START_TIMEOUT_S) -> McpServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.close()
            raise McpError(
                f"MCP server {self.command!r} did not answer within {timeout:g} s; check that the command is an "
                "MCP server speaking stdio (it was stopped)"
            )
        if self._error is not None:
            raise McpError(
                f"MCP server {self.command!r} failed to start ({_first_line(self._error)}); "
                "check that the command runs on its own"
            )
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._task = self._loop.create_task(self._serve())
            self._loop.run_until_complete(self._task)
        except BaseException as e:  # noqa: BLE001 - reported to the caller of start()
            self._error = self._error or e
        finally:
            self._ready.set()
            self._loop.close()

    async def _serve(self) -> None:
        from mcp import Client, StdioServerParameters

        self._stop = asyncio.Event()
        params = StdioServerParameters(command=self.argv[0], args=self.argv[1:], env=dict(os.environ))
        async with Client(params, read_timeout_seconds=CALL_TIMEOUT_S) as client:
            self._client = client
            self.tools = list((await client.list_tools()).tools)
            self._ready.set()
            await self._stop.wait()

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        if self._client is None or not self._thread.is_alive():
            raise McpError(f"MCP server {self.command!r} is not running (it exited); restart the cycle")
        future = asyncio.run_coroutine_threadsafe(self._client.call_tool(name, arguments), self._loop)
        try:
            result = future.result(CALL_TIMEOUT_S)
        except Exception as e:
            raise McpError(f"MCP server {self.command!r} failed on {name}: {_first_line(e)}") from None
        texts = [getattr(item, "text", None) for item in result.content or []]
        text = "\n".join(t for t in texts if t is not None)
        if getattr(result, "is_error", False) or getattr(result, "isError", False):
            raise McpError(f"MCP tool {name} failed: {text or 'no detail'}")
        return text

    def close(self) -> None:
        """Stop the server: a running one is asked to end; one still starting (or hung in its handshake) is
        cancelled, which makes the MCP client stop its process (stdin closed, then SIGTERM, then SIGKILL)."""
        if self._thread.is_alive() and self._loop.is_running():
            try:
                if self._ready.is_set() and self._stop is not None:
                    self._loop.call_soon_threadsafe(self._stop.set)
                elif self._task is not None:
                    self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:  # the loop closed in between
                pass
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def _inputs(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    required = set(schema.get("required") or [])
    inputs: dict[str, dict[str, Any]] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type", "any")
        if isinstance(kind, list):  # ["string", "null"]
            kind = next((k for k in kind if k != "null"), "any")
        entry: dict[str, Any] = {
            "type": JSON_TO_SMOLAGENTS.get(kind, "any"),
            "description": prop.get("description") or prop.get("title") or name,
        }
        if name not in required:
            entry["nullable"] = True
        inputs[name] = entry
    return inputs


class McpTool(Tool):  # type: ignore[misc]  # smolagents has no py.typed: its classes are Any
    """A tool of an MCP server, callable by smolagents agents like any other tool."""

    skip_forward_signature_validation = True

    def __init__(self, server: McpServer, description: Any) -> None:
        self.server = server
        self.name = description.name
        self.description = description.description or description.name
        self.inputs = _inputs(dict(getattr(description, "input_schema", None) or {}))
        self.output_type = "string"
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> str:
        if args:
            if len(args) == 1 and isinstance(args[0], dict) and not kwargs:
                kwargs = args[0]
            else:
                raise ValueError(f"tool {self.name} takes keyword arguments only")
        arguments = {k: v for k, v in kwargs.items() if v is not None}
        return self.server.call(self.name, arguments)


@contextmanager
def mcp_tools(commands: Sequence[str]) -> Iterator[list[Tool]]:
    """Tools of the stdio MCP servers started by `commands` (shell-quoted command lines)."""
    with ExitStack() as stack:
        tools: list[Tool] = []
        for command in commands:
            server = McpServer(command)
            stack.callback(server.close)
            server.start()
            tools.extend(McpTool(server, description) for description in server.tools)
        yield tools


def add_tools(agent: Any, tools: Sequence[Tool]) -> None:
    """Give `agent` extra tools; a tool replaces the agent's own tool of the same name.

    smolagents builds the system prompt from `agent.tools` at each run, so the model sees them.
    """
    for tool in tools:
        agent.tools[tool.name] = tool


# -- cogscope mcp-serve ------------------------------------------------------------------
def tool_schema(tool: Tool) -> dict[str, Any]:
    """A smolagents tool's inputs as the JSON schema MCP wants (smolagents' own conversion)."""
    return dict(get_tool_json_schema(tool)["function"]["parameters"])


def serve(store_path: str | None = None) -> None:
    """Serve the cognitive tools over stdio until the client disconnects."""
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    from .energy import EnergyLedger
    from .heartbeat import open_store
    from .tools import cognitive_tools

    store = open_store(store_path)
    ledger = EnergyLedger(store, f"mcp-{uuid.uuid4().hex[:12]}")
    tools = cognitive_tools(store, ledger=ledger)

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(
            tools=[
                types.Tool(name=t.name, description=t.description, input_schema=tool_schema(t)) for t in tools.values()
            ]
        )

    async def call_tool(ctx: Any, params: Any) -> Any:
        tool = tools.get(params.name)
        if tool is None:
            text, failed = f"unknown tool {params.name!r}; tools: {', '.join(tools)}", True
        else:
            try:
                text, failed = str(await asyncio.to_thread(tool, **(params.arguments or {}))), False
            except Exception as e:  # the client sees the error as the tool's result, the server stays up
                text, failed = f"{type(e).__name__}: {e}", True
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=failed)

    server: Any = Server("cogscope", on_list_tools=list_tools, on_call_tool=call_tool)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    asyncio.run(main())
