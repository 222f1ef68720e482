"""Who may start what: the operator, people who log in to a shared app, and recorded traces.

- The person at the terminal, and at an app bound to loopback only, is the **operator**: agent files,
  modules and any MCP command work as typed.
- Anyone reaching an app bound wider has logged in (Gradio's auth) and is **remote**: only registered
  agents (the registry and entry points) and the MCP commands the operator listed (`--allow-mcp`), unless
  the operator started the app with `--allow-browser-commands`.
- A **recorded trace** is data: replay starts its agent file/module or MCP commands only when they are
  registered or listed, or when the operator confirms exactly what will run.
- A base URL typed in the **browser** receives the operator's provider key only when the operator listed it
  (`--allow-api-base`, or `COGSCOPE_API_BASE`); a remote user may use no other base at all.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cogscope import agents
from cogscope.telemetry import is_loopback_name

from .errors import UsageError

BUILTIN_MCP = ("cogscope mcp-serve",)  # cogscope's own MCP server: trusted everywhere
PATH_OPTION = re.compile(r"(memory|path|file|dir|folder|db|database)$", re.IGNORECASE)


def normalize_command(command: str) -> str:
    """One spelling per command, so `cogscope  mcp-serve` and `cogscope mcp-serve` are the same entry."""
    try:
        return " ".join(shlex.split(command))
    except ValueError:
        return " ".join(command.split())


def normalize_base(api_base: str | None) -> str:
    return (api_base or "").strip().rstrip("/")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0, a LAN address, a name) is wider."""
    return is_loopback_name((host or "").strip().strip("[]"))


def is_registered(reference: str) -> bool:
    """A registry name or an installed entry point: code the operator installed, never a path or module."""
    return (reference or "").strip() in agents.names()


@dataclass(frozen=True)
class Policy:
    """What the person behind one request may start."""

    operator: bool = True  # full power (terminal, or an app bound to loopback only)
    browser: bool = False  # the request comes from the browser (typed API bases get no key unless listed)
    allow_commands: bool = False  # --allow-browser-commands: remote users may use agent files and any MCP command
    allowed_mcp: tuple[str, ...] = ()
    allowed_api_bases: tuple[str, ...] = ()

    @classmethod
    def for_app(
        cls,
        *,
        host: str,
        public_url: str | None = None,
        allow_commands: bool = False,
        allowed_mcp: Iterable[str] = (),
        allowed_api_bases: Iterable[str] = (),
    ) -> Policy:
        """Behind a reverse proxy (`public_url`) everyone arrives from loopback: nobody is the operator."""
        return cls(
            operator=is_loopback(host) and not public_url,
            browser=True,
            allow_commands=allow_commands,
            allowed_mcp=tuple(normalize_command(c) for c in allowed_mcp if c.strip()),
            allowed_api_bases=tuple(normalize_base(b) for b in allowed_api_bases if b.strip()),
        )

    @property
    def runs_anything(self) -> bool:
        return self.operator or self.allow_commands

    def mcp_allowed(self, command: str) -> bool:
        return normalize_command(command) in (*BUILTIN_MCP, *self.allowed_mcp)

    def check_agent(self, reference: str) -> None:
        if self.runs_anything or is_registered(reference):
            return
        raise UsageError(
            f"agent {shorten(reference)!r} is not registered; on a shared cogscope only registered agents run "
            f"({', '.join(agents.names())}); the operator can install it as an entry point or start the app "
            "with --allow-browser-commands"
        )

    def check_mcp(self, commands: Sequence[str]) -> None:
        if self.runs_anything:
            return
        for command in commands:
            if not self.mcp_allowed(command):
                listed = ", ".join(repr(c) for c in (*BUILTIN_MCP, *self.allowed_mcp))
                raise UsageError(
                    f"MCP command {shorten(command)!r} is not one the operator allowed; allowed: {listed} "
                    "(the operator adds more with --allow-mcp)"
                )

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Remote users may not point an agent at files: options named like paths are the operator's."""
        if self.runs_anything:
            return
        for key in options:
            if PATH_OPTION.search(key):
                raise UsageError(
                    f"option {key!r} names a file, which only the operator may choose on a shared cogscope; "
                    "leave it out to use the default"
                )

    def check_build(self, request: BuildRequest) -> list[str]:
        """The one check every entry point that builds an agent (run, loop, replay, fork) makes before the factory
        runs or any file or folder is made. What a person typed (the agent, its options, MCP commands; a replay's
        factory and options) that this policy forbids is a UsageError; for an agent rebuilt from a trace, returns
        what it would start or open that the operator has not trusted (`untrusted_code`; empty: nothing)."""
        if request.recording is None or request.typed:
            self.check_agent(request.agent)
            self.check_mcp(request.mcp)
            self.check_options(request.options)
        if request.recording is None:
            return []
        return untrusted_code(request.recording, self, factory_named=request.typed)

    def sends_key(self, api_base: str | None) -> bool:
        """May the operator's provider key go to `api_base`?"""
        if not api_base:
            return True  # the provider's own endpoint
        if not self.browser:
            return True  # typed by the operator on the command line
        return normalize_base(api_base) in self.allowed_api_bases

    def check_api_base(self, api_base: str | None) -> None:
        """A remote user may send the server's model requests only to API bases the operator allowed (else any
        host and port the server can reach would get them); checked before the base is probed or called."""
        if not normalize_base(api_base) or self.runs_anything or normalize_base(api_base) in self.allowed_api_bases:
            return
        allowed = ", ".join(self.allowed_api_bases) or "none; leave the field empty for the provider's own endpoint"
        raise UsageError(
            f"API base {shorten(normalize_base(api_base))!r} is not one the operator allowed; on a shared cogscope "
            f"the server sends model requests only to these: {allowed} (the operator adds more with --allow-api-base)"
        )


OPERATOR = Policy()


@dataclass(frozen=True)
class BuildRequest:
    """What an entry point is about to build an agent from, for `Policy.check_build`."""

    agent: str
    options: Mapping[str, Any]
    mcp: Sequence[str] = ()
    recording: Any = None  # a telemetry.replay.Recording: the agent is rebuilt from a trace (replay, fork)
    typed: bool = True  # the agent and options are what the person named (for a recording: a factory they named)


def untrusted_code(recording: Any, policy: Policy, *, factory_named: bool = False) -> list[str]:
    """What replaying a recorded cycle would start or open that the operator has not registered or listed.

    `recording` is a telemetry.replay.Recording. File options (`memory=...`) count too, unless this
    installation signed the trace: a forged trace must not point a registered agent at any file it likes. A trace
    changed after it was recorded here (`recording.changed`) is not replayed without the operator's word either.
    `factory_named`: the operator named the factory (and its options) for another app's cycle: trusted.
    """
    agent = str(recording.agent)
    needs: list[str] = []
    if factory_named:
        return [f"start MCP command {c!r}" for c in recording.mcp if not policy.mcp_allowed(c)]
    if not is_registered(agent):
        kind = "agent file" if agent.rpartition(":")[0].endswith(".py") or "/" in agent else "agent module"
        needs.append(f"import {kind} {agent}")
    needs += [f"start MCP command {c!r}" for c in recording.mcp if not policy.mcp_allowed(c)]
    if getattr(recording, "changed", False):
        needs.append(
            "replay model outputs and tool results of a trace whose spans were added or changed after it was "
            "recorded here (it no longer matches its seal)"
        )
    if not recording.recorded_here:
        needs += [f"open file {v!r} (option {k})" for k, v in recording.options.items() if PATH_OPTION.search(k)]
    return needs


def shorten(text: str, limit: int = 120) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"
