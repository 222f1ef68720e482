"""What the CLI and the app share: Phoenix, tracing, the local model, and turning a form into a cycle."""

from __future__ import annotations

import functools
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cogscope import agents
from cogscope.agents import add_tools, mcp_tools
from cogscope.telemetry import (
    TRACE_ID,
    Cycle,
    CycleSpec,
    PhoenixServer,
    Recording,
    Replay,
    ReplayError,
    Signer,
    Spool,
    Tracing,
    clean_text,
    clean_value,
    connect_phoenix,
    ensure_phoenix,
    otlp_headers,
    phoenix_client,
    prepare_replay,
    register_prices,
    setup_tracing,
    trace_spans,
    trace_url,
)

from .config import LOCAL_MODEL, Settings
from .cycle_state import RerunState, cycle_checkpoint, keeps_state, rerun_state
from .errors import UsageError
from .local_llm import LocalModelServer
from .models import build_model, check_model
from .sessions import RunningCycles
from .slots import API, LOCAL, Slots
from .trust import OPERATOR, BuildRequest, Policy, shorten
from .user_state import UserRerun, live_checkpoint, live_options


@dataclass
class Runtime:
    settings: Settings
    phoenix: PhoenixServer
    tracing: Tracing
    local: LocalModelServer
    policy: Policy = OPERATOR  # who is on the other end: the operator (CLI, loopback app) or a remote user
    signed_in: bool = False  # the app asks for a log-in: each cycle records who started it
    closed: bool = field(default=False, repr=False)
    slots: Slots = field(init=False, repr=False)  # room for cycles that run side by side (a shared app)
    running: RunningCycles = field(default_factory=RunningCycles, repr=False)  # what each session runs (Stop)
    prices_sent: bool = field(default=False, init=False, repr=False)  # the prices file's models are in Phoenix
    _prices_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.slots = Slots({API: self.settings.max_cycles, LOCAL: self.settings.max_local_cycles})

    @classmethod
    def start(cls, settings: Settings, *, set_global: bool = False) -> Runtime:
        """Reuse or start Phoenix (a remote one when PHOENIX_COLLECTOR_ENDPOINT is set) and set up tracing.

        The provider is not made OpenTelemetry's global one: FastAPI (under Gradio) traces every HTTP
        request through the global provider, which would fill the Phoenix project with request spans.
        """
        agents.install_exit_guard()  # os._exit from a tool or agent file raises instead of ending cogscope
        if settings.phoenix_endpoint:
            phoenix = connect_phoenix(settings.phoenix_endpoint)
        else:
            phoenix = ensure_phoenix(
                working_dir=settings.phoenix_dir, port=settings.phoenix_port, database_url=settings.database_url
            )
        try:
            spool = Spool.in_dir(settings.data_dir, max_mb=settings.spool_mb)
        except Exception:
            phoenix.stop()
            raise
        tracing = setup_tracing(
            endpoint=phoenix.collector_endpoint,
            project_name=settings.project,
            set_global=set_global,
            signer=Signer.from_dir(settings.data_dir),
            spool=spool,
            headers=otlp_headers(),
            full_prompts=settings.full_prompts,
        )
        local = LocalModelServer(port=settings.llm_port, log_path=settings.data_dir / "local-model.log")
        return cls(settings=settings, phoenix=phoenix, tracing=tracing, local=local)

    def trace_url(self, trace_id: str) -> str:
        return trace_url(self.phoenix.url, trace_id)

    def trace_link(self, trace_id: str, *, wait: float = 0.0) -> tuple[str | None, str]:
        """(the link to the trace in Phoenix, or None while spans of it are still spooled; a line for people).

        First waits until the trace's spans are on disk (a crash after this line loses none of them), then up to
        `wait` s for the spool to deliver the trace. Never a link that would 404.
        """
        self.tracing.written(trace_id)
        deadline = time.monotonic() + wait
        pending = self.tracing.pending(trace_id)
        while pending and time.monotonic() < deadline:
            time.sleep(0.1)
            pending = self.tracing.pending(trace_id)
        dropped = self.tracing.spool.dropped(trace_id) if self.tracing.spool is not None else 0
        lost = f"; {dropped} span(s) dropped: the spool was full (COGSCOPE_SPOOL_MB)" if dropped else ""
        if pending:
            return None, f"trace pending upload ({pending} span{'s' if pending != 1 else ''}){lost}"
        url = self.trace_url(trace_id)
        return url, url + lost

    def send_prices(self) -> None:
        """Before the first cycle: the prices file's models registered in Phoenix (telemetry.phoenix_prices), which
        prices each span as it stores it, so that Phoenix's cost of a cycle is the one cogscope shows. Once per
        runtime; a Phoenix that refuses is one warning line. Commands that only read cycles never change Phoenix."""
        with self._prices_lock:
            if not self.prices_sent:
                register_prices(self.phoenix.url, self.settings.prices)
                self.prices_sent = True

    def spool_note(self, left: int) -> str:
        """What an ending command says about spans it could not deliver in time."""
        where = self.tracing.spool.path if self.tracing.spool is not None else "the spool"
        return (
            f"{left} span{'s' if left != 1 else ''} stay spooled in {where} (Phoenix at {self.phoenix.url} has not "
            "stored them yet); the next cogscope started on this data dir sends them"
        )

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
        user: str | None = None,
    ) -> Cycle:
        """Check the inputs, build the agent and return a cycle ready to run (UsageError on bad input).

        `models` maps role -> model id; `default` is the model of every role not named. `user`: who starts it
        (the log-in name on a shared app), recorded on its root span.
        """
        task = clean_text((task or "").strip())
        if not task:
            raise UsageError("the task is empty; type what the agent should do")
        policy = self.policy
        options = clean_value(dict(options or {}))
        policy.check_build(BuildRequest(agent or "", options, tuple(mcp)))
        try:
            spec = agents.get(agent or "")
        except agents.AgentsError as e:
            raise UsageError(str(e)) from None
        models = self._roles(spec, models)
        policy.check_api_base(api_base)
        checked, built = self._models(models, api_base)
        stack = ExitStack()
        try:
            instance = spec.build(built, live_options(spec, options))  # a user's agent: on its live state folder
            # the state the cycle starts from: the store the agent's tools write through, or a user's agent's own
            checkpoint = cycle_checkpoint(spec.name, options) or live_checkpoint(spec, options, instance)
            if mcp:
                add_tools(instance, stack.enter_context(mcp_tools(mcp)))
            attach_sandbox = self.sandbox(instance, stack)
        except agents.AgentsError as e:
            stack.close()
            raise UsageError(str(e)) from None
        except BaseException:
            stack.close()
            raise
        self.send_prices()
        cycle_spec = CycleSpec(
            agent=spec.name, options=options, models=checked, session_id=session_id, mcp=tuple(mcp), user=user
        )
        cycle = Cycle(
            instance,
            task,
            spec=cycle_spec,
            tracing=self.tracing,
            on_end=stack.close,
            timeout_s=self.settings.cycle_timeout,
            prices=self.settings.prices,
            tokens=True,  # the Run tab and `cogscope run` show the model's words as they come
            checkpoint=checkpoint,  # the state the cycle starts from, kept and named on its root span
            inputs=fresh_inputs,
        )
        attach_sandbox(cycle)
        return cycle

    def _roles(self, spec: Any, models: Mapping[str, str]) -> dict[str, str]:
        """role -> model id, blanks left out, `default` (the settings' model unless named) first; UsageError for a
        role the agent does not have."""
        models = {role.strip(): model_id for role, model_id in models.items() if model_id and model_id.strip()}
        if "default" not in models:
            models = {"default": self.settings.model, **models}
        unknown = sorted(set(models) - set(spec.roles))
        if unknown:
            raise UsageError(f"agent {spec.name!r} has no role {unknown[0]!r}; its roles: {', '.join(spec.roles)}")
        return models

    def _models(self, models: Mapping[str, str], api_base: str | None) -> tuple[dict[str, str], dict[str, Any]]:
        """(role -> checked model id, role -> smolagents model) for `models` (UsageError for an unknown one)."""
        checked: dict[str, str] = {}
        bases: dict[str, str | None] = {}
        for role, model_id in models.items():
            checked[role], bases[role] = check_model(model_id, api_base)
        built = {
            role: build_model(
                model_id,
                bases[role],
                self.local,
                timeout=self.settings.llm_timeout,
                send_key=self.policy.sends_key(bases[role]),
            )
            for role, model_id in checked.items()
        }
        return checked, built

    @staticmethod
    def lane(cycle: Cycle) -> str:
        """The slots a cycle takes (ui.slots): `local` when all its models are the bundled one, else `api`."""
        models = set(cycle.spec.models.values())
        return LOCAL if models and models <= {LOCAL_MODEL} else API

    def sandbox(self, agent: Any, stack: ExitStack) -> Callable[[Cycle], None]:
        """Run the agent's model-written code in sandbox workers until `stack` closes (the cycle's end).

        Returns `attach(cycle)`: a limit the sandbox hits stops that cycle with its reason, and a cycle
        stopped with a reason (its wall clock) kills the workers.
        """
        cycles: list[Cycle] = []
        settings = self.settings
        limits = agents.SandboxLimits(
            step_seconds=settings.step_timeout,
            cycle_cpu_seconds=settings.cycle_timeout,
            memory_mb=settings.sandbox_memory_mb,
            network=settings.sandbox_network,
            disk_mb=settings.sandbox_disk_mb,
            weak=settings.sandbox_weak,
        )

        def on_limit(reason: str) -> None:
            for cycle in cycles:
                cycle.stop(reason)

        sandbox = agents.Sandbox(
            agent, limits=limits, workdir=settings.data_dir / "sandbox" / uuid.uuid4().hex, on_limit=on_limit
        )
        stack.callback(sandbox.close)

        def attach(cycle: Cycle) -> None:
            cycles.append(cycle)
            cycle.on_stop(lambda: sandbox.kill(cycle.stop_reason))

        return attach

    # -- reading cycles back, replay ------------------------------------------------------
    def client(self) -> Any:
        return phoenix_client(self.phoenix.url)

    def projects(self) -> list[str]:
        """The names of the Phoenix projects, oldest first."""
        return [str(project["name"]) for project in self.client().projects.list()]

    def check_project(self, project: str | None = None) -> None:
        """UsageError unless `project` (default: the one these settings read) exists in Phoenix: for a project
        someone named."""
        project = project or self.settings.project
        names = self.projects()
        if project not in names:
            raise UsageError(
                f"no Phoenix project {project!r} at {self.phoenix.url}; its projects: "
                f"{', '.join(names) or 'none yet'} (name one with --project)"
            )

    def trace_frame(self, trace_id: str, project: str | None = None) -> pd.DataFrame:
        """All spans of one trace from Phoenix, in `project` (default: the settings' one); UsageError when the id
        is malformed or unknown."""
        trace_id = (trace_id or "").strip().lower()
        if not TRACE_ID.match(trace_id):
            raise UsageError(
                f"{shorten(trace_id, 80)!r} is not a trace id (32 hex digits); list cycles with `cogscope traces`"
            )
        project = project or self.settings.project
        frame = trace_spans(self.client(), project=project, trace_id=trace_id)
        if frame.empty:
            raise UsageError(f"no trace {trace_id} in Phoenix project {project!r}; list cycles with `cogscope traces`")
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
        trust: bool = False,
        project: str | None = None,
        factory: str | None = None,
        options: Mapping[str, Any] | None = None,
        live_state: bool = False,
    ) -> Replay:
        """Rebuild a recorded cycle for replay or fork (UsageError on bad input).

        A trace is data: its agent file/module and MCP commands are started only when registered or
        allowed, or when `trust` says the operator confirmed them (UntrustedCode otherwise).

        The agent runs on a scratch copy of the state the cycle started from (ui.cycle_state), removed when the
        re-run ends; `live_state`: on the live state instead. The replay's `state_note` says which, for its report.
        """
        recording = self._trusted_recording(trace_id, project, trust=trust, factory=factory, options=options)
        live = None
        if live_model:
            self.policy.check_api_base(api_base)
            checked, built = self._models({"live": live_model}, api_base)
            live_model, live = checked["live"], built["live"]
        stack = ExitStack()
        attach: list[Callable[[Cycle], None]] = []
        state: RerunState | UserRerun = (
            rerun_state(recording, live=live_state, stack=stack)  # nothing made when it raises
            if keeps_state(recording.agent)
            else UserRerun(recording, live=live_state, stack=stack)  # decided once its factory is known
        )

        def build_agent(models: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
            agent = state.build(agents.get(recording.agent), models, options)
            if recording.mcp:
                add_tools(agent, stack.enter_context(mcp_tools(recording.mcp)))
            attach.append(self.sandbox(agent, stack))
            return agent

        self.send_prices()
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
                timeout_s=self.settings.cycle_timeout,
                prices=self.settings.prices,
                checkpoint=state.checkpoint,
                inputs=given_inputs(recording),
            )
        except ReplayError as e:
            stack.close()
            raise UsageError(str(e)) from None
        except BaseException:
            stack.close()
            raise
        for hook in attach:
            hook(replay.cycle)
        replay.state_note = state.note
        return replay

    def _trusted_recording(
        self,
        trace_id: str,
        project: str | None,
        *,
        trust: bool,
        factory: str | None,
        options: Mapping[str, Any] | None,
    ) -> Recording:
        """The recording of a trace, once the code it would start is registered, allowed or confirmed (`trust`)."""
        if factory is not None:  # what the person named is checked before the factory is imported
            options = clean_value(dict(options or {}))
            self.policy.check_build(BuildRequest(factory, options))
        recording = self.recording(trace_id, project, factory=factory, options=options)
        needs = self.policy.check_build(
            BuildRequest(
                recording.agent, recording.options, recording.mcp, recording=recording, typed=recording.factory_named
            )
        )
        if needs and not (trust and self.policy.runs_anything):
            raise UntrustedCode(recording, needs, can_confirm=self.policy.runs_anything)
        return recording

    def recording(
        self,
        trace_id: str,
        project: str | None = None,
        *,
        factory: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Recording:
        """What a trace says about its cycle (UsageError when it cannot be replayed as asked). `factory` and
        `options`: for another app's cycle, the factory the operator names (the trace of a cogscope cycle names
        its own, and wins)."""
        if factory is not None:
            try:
                agents.get(factory)  # a factory that does not load is said before anything else
            except agents.AgentsError as e:
                raise UsageError(f"--agent: {e}") from None
        frame = self.trace_frame(trace_id, project)
        try:
            return Recording.from_frame(
                frame,
                trace_id.strip().lower(),
                signer=self.tracing.signer,
                prices=self.settings.prices,
                factory=factory,
                options=options,
            )
        except ReplayError as e:
            raise UsageError(str(e)) from None

    def close(self, *, drain_timeout: float | None = None) -> int:
        """Deliver spooled spans (up to the drain timeout), stop what this runtime started (never a reused Phoenix);
        returns how many spans stay spooled for the next cogscope on this data dir."""
        if self.closed:
            return 0
        self.closed = True
        left = self.tracing.drain(self.settings.drain_timeout if drain_timeout is None else drain_timeout)
        if left:
            print(f"cogscope: {self.spool_note(left)}", file=sys.stderr, flush=True)
        self.tracing.shutdown()
        self.local.stop()
        self.phoenix.stop()
        return left


def fresh_inputs() -> Any:
    """A new cycle's other inputs (agents.cycle_inputs): a clock start and a seed, set for its tools in the thread
    that runs it, recorded on its root span (`cogscope.inputs`)."""
    return agents.begin_cycle_inputs()


def given_inputs(recording: Recording) -> Callable[[], Any]:
    """A re-run's: the recorded clock readings and seed given back (a fresh clock and seed when none was recorded)."""
    return functools.partial(agents.begin_cycle_inputs, recording.inputs)


class UntrustedCode(UsageError):
    """Replaying this trace would start code the operator has not registered or allowed; `needs` says what."""

    def __init__(self, recording: Recording, needs: list[str], *, can_confirm: bool) -> None:
        self.recording = recording
        self.needs = needs
        self.can_confirm = can_confirm
        origin = (
            "recorded by this installation"
            if recording.recorded_here
            else "recorded here, then CHANGED after recording"
            if recording.changed
            else "NOT recorded by this installation"
        )
        what = "; ".join(shorten(n, 300) for n in needs)
        fix = (
            "check them, then confirm (CLI: --trust-recorded-code)"
            if can_confirm
            else "only the operator can allow it (install the agent as an entry point, or --allow-mcp)"
        )
        super().__init__(f"this trace ({origin}) would {what}; cogscope runs recorded code only when trusted: {fix}")
