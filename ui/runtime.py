"""What the CLI and the app share: Phoenix, tracing, the local model, and turning a form into a cycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

import agents
from agents.mcp import add_tools, mcp_tools
from telemetry import (
    TRACE_ID,
    Cycle,
    CycleSpec,
    PhoenixServer,
    Tracing,
    connect_phoenix,
    ensure_phoenix,
    phoenix_client,
    setup_tracing,
    trace_spans,
    trace_url,
)
from telemetry.replay import Recording, Replay, ReplayError, prepare_replay

from .config import Settings
from .errors import UsageError
from .local_llm import LocalModelServer
from .models import build_model, check_model


@dataclass
class Runtime:
    settings: Settings
    phoenix: PhoenixServer
    tracing: Tracing
    local: LocalModelServer
    closed: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, settings: Settings, *, set_global: bool = False) -> Runtime:
        """Reuse or start Phoenix (a remote one when PHOENIX_COLLECTOR_ENDPOINT is set) and set up tracing.

        The provider is not made OpenTelemetry's global one: FastAPI (under Gradio) traces every HTTP
        request through the global provider, which would fill the Phoenix project with request spans.
        """
        if settings.phoenix_endpoint:
            phoenix = connect_phoenix(settings.phoenix_endpoint)
        else:
            phoenix = ensure_phoenix(working_dir=settings.phoenix_dir, port=settings.phoenix_port)
        tracing = setup_tracing(
            endpoint=phoenix.collector_endpoint, project_name=settings.project, set_global=set_global
        )
        local = LocalModelServer(port=settings.llm_port, log_path=settings.data_dir / "local-model.log")
        return cls(settings=settings, phoenix=phoenix, tracing=tracing, local=local)

    def trace_url(self, trace_id: str) -> str:
        return trace_url(self.phoenix.url, trace_id)

    def prepare_cycle(
        self,
        *,
        agent: str,
        task: str,
        models: Mapping[str, str],
        api_base: str | None = None,
        options: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        mcp: Sequence[str] = (),
    ) -> Cycle:
        """Check the inputs, build the agent and return a cycle ready to run (UsageError on bad input).

        `models` maps role -> model id; `default` is the model of every role not named.
        """
        task = (task or "").strip()
        if not task:
            raise UsageError("the task is empty; type what the agent should do")
        try:
            spec = agents.get(agent or "")
        except agents.AgentsError as e:
            raise UsageError(str(e)) from None
        models = {role.strip(): model_id for role, model_id in models.items() if model_id and model_id.strip()}
        if "default" not in models:
            models = {"default": self.settings.model, **models}
        unknown = sorted(set(models) - set(spec.roles))
        if unknown:
            raise UsageError(f"agent {spec.name!r} has no role {unknown[0]!r}; its roles: {', '.join(spec.roles)}")
        checked: dict[str, str] = {}
        bases: dict[str, str | None] = {}
        for role, model_id in models.items():
            checked[role], bases[role] = check_model(model_id, api_base)
        built = {role: build_model(model_id, bases[role], self.local) for role, model_id in checked.items()}
        options = dict(options or {})
        stack = ExitStack()
        try:
            instance = spec.build(built, options)
            if mcp:
                add_tools(instance, stack.enter_context(mcp_tools(mcp)))
        except agents.AgentsError as e:
            stack.close()
            raise UsageError(str(e)) from None
        except BaseException:
            stack.close()
            raise
        cycle_spec = CycleSpec(agent=spec.name, options=options, models=checked, session_id=session_id, mcp=tuple(mcp))
        return Cycle(instance, task, spec=cycle_spec, tracing=self.tracing, on_end=stack.close)

    # -- reading cycles back, replay ------------------------------------------------------
    def client(self) -> Any:
        return phoenix_client(self.phoenix.url)

    def trace_frame(self, trace_id: str) -> pd.DataFrame:
        """All spans of one trace from Phoenix (UsageError when the id is malformed or unknown)."""
        trace_id = (trace_id or "").strip().lower()
        if not TRACE_ID.match(trace_id):
            raise UsageError(f"{trace_id!r} is not a trace id (32 hex digits); list cycles with `cogscope traces`")
        frame = trace_spans(self.client(), project=self.settings.project, trace_id=trace_id)
        if frame.empty:
            raise UsageError(
                f"no trace {trace_id} in Phoenix project {self.settings.project!r}; list cycles with `cogscope traces`"
            )
        return frame

    def prepare_replay(
        self,
        trace_id: str,
        *,
        stub: bool = False,
        fork_at: int | None = None,
        substitute: str | None = None,
        live_model: str | None = None,
        api_base: str | None = None,
        session_id: str | None = None,
    ) -> Replay:
        """Rebuild a recorded cycle for replay or fork (UsageError on bad input)."""
        frame = self.trace_frame(trace_id)
        try:
            recording = Recording.from_frame(frame, trace_id.strip().lower())
        except ReplayError as e:
            raise UsageError(str(e)) from None
        live = None
        if live_model:
            live_model, base = check_model(live_model, api_base)
            live = build_model(live_model, base, self.local)
        stack = ExitStack()

        def build_agent(models: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
            agent = agents.get(recording.agent).build(models, options)
            if recording.mcp:
                add_tools(agent, stack.enter_context(mcp_tools(recording.mcp)))
            return agent

        try:
            replay = prepare_replay(
                recording,
                build_agent=build_agent,
                tracing=self.tracing,
                stub=stub,
                fork_at=fork_at,
                substitute=substitute,
                live_model=live,
                live_model_id=live_model,
                session_id=session_id,
                on_end=stack.close,
            )
        except ReplayError as e:
            stack.close()
            raise UsageError(str(e)) from None
        return replay

    def close(self) -> None:
        """Flush spans and stop what this runtime started (never a reused Phoenix)."""
        if self.closed:
            return
        self.closed = True
        self.tracing.flush()
        self.tracing.shutdown()
        self.local.stop()
        self.phoenix.stop()
