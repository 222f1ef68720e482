"""Deterministic replay and fork of a recorded cycle, from its trace alone.

The agent is rebuilt from the root span's cogscope attributes (agent, options,
model per role) by a `build_agent` callable the caller passes in (telemetry never
imports agents). Every role gets one `ReplayModel` that returns the recorded model
outputs in call order: zero LLM calls. Tools run for real unless `stub_tools`,
which returns the recorded tool outputs (and raises the recorded tool errors).

A fork replays up to step k, then either substitutes an edited model output for
step k (later steps continue from the recording), or hands every call from step
k on to a live model.

The replay is itself a traced cycle, with `cogscope.replay_of` pointing at the
original; `compare` names the first step where it differs from the recording: the
prompt of its model call (`prompt_diff`), its code, tool calls, tool results,
observations or error, and what an uncaptured input the difference looks like
(`uncaptured`). The cycle's other inputs (`cogscope.inputs`: the clock readings and
the seed) are in `Recording.inputs`, for the caller to give back (`inputs=`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from openinference.semconv.trace import SpanAttributes
from smolagents import ChatMessage, Model, MultiStepAgent, Tool
from smolagents.monitoring import TokenUsage

from .attributes import (
    AGENT_KIND,
    ATTR_AGENT,
    ATTR_INPUTS,
    ATTR_MCP,
    ATTR_MODEL,
    ATTR_OPTIONS,
    ATTR_SESSION,
    ATTR_STATE,
    ATTR_STATUS,
    ERROR,
    MAX_STEPS,
    OK,
    STEP_ERRORS,
    app_agent,
    app_task,
    replayed_attributes,
)
from .cycle_runner import Checkpoint, Cycle, Inputs
from .cycle_spec import CycleSpec
from .errors import TelemetryError
from .prices import Prices, counted
from .prompt_diff import excerpts, prompt_difference, short_diff
from .redaction import redact
from .sealing import CHANGED, HERE, NOT_HERE, trace_trust
from .signing import Signer
from .steps import StepView, model_outputs, steps_from_frame, tool_outputs
from .tables import CycleTotals, trace_tables
from .tracing import Tracing
from .uncaptured import Uncaptured, uncaptured

BuildAgent = Callable[[Mapping[str, Model], Mapping[str, Any]], MultiStepAgent]


class ReplayError(TelemetryError):
    """A trace that cannot be replayed as asked; the message says why and what to do."""


def _attr(root: pd.Series, key: str) -> Any:
    value = root.get(f"attributes.{key}")
    return None if value is None or (isinstance(value, float) and value != value) else value


@dataclass(frozen=True)
class Recording:
    """What a trace says about one cycle: how to rebuild the agent, and what happened."""

    trace_id: str
    agent: str
    options: dict[str, Any]
    models: dict[str, str]
    task: str
    session_id: str | None
    mcp: tuple[str, ...]
    steps: list[StepView]
    outputs: list[dict[str, Any]]
    tools: dict[str, list[tuple[str | None, str | None]]]
    status: str | None
    final_answer: str | None
    max_steps: int | None  # the step budget the agent ran with (the energy-derived one, for the heartbeat)
    trust: str = NOT_HERE  # HERE: signed and sealed by this installation (telemetry.sealing); CHANGED; NOT_HERE
    totals: CycleTotals | None = None  # the recorded cycle's row of the cycles table
    # another app's cycle, replayed with a factory the operator named: the recorded agent's tools and managed
    # agents, which the rebuilt agent must have (else it is another agent)
    tools_names: tuple[str, ...] | None = None
    managed_names: tuple[str, ...] | None = None
    factory_named: bool = False  # another app's cycle: its agent and options are the ones the operator named
    state: str | None = None  # the id of the state the cycle started from (`cogscope.state`); None: none kept
    inputs: dict[str, Any] | None = None  # `cogscope.inputs`: the clock readings and seed, to give back

    @classmethod
    def from_frame(
        cls,
        spans: pd.DataFrame,
        trace_id: str,
        signer: Signer | None = None,
        prices: Prices | None = None,
        *,
        factory: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Recording:
        """What the trace says. `factory` (and its `options`): the operator names the factory that builds the
        agent of a cycle another app recorded with plain OpenInference (cogscope's own cycles name theirs)."""
        if spans.empty:
            raise ReplayError(f"no trace {trace_id} in this Phoenix project; list cycles with `cogscope traces`")
        roots = spans[spans["parent_id"].isna()]
        if roots.empty:
            raise ReplayError(f"trace {trace_id} has no root span yet; wait for Phoenix to ingest it, then retry")
        if f"attributes.{ATTR_AGENT}" in roots and roots[f"attributes.{ATTR_AGENT}"].notna().any():
            roots = roots[roots[f"attributes.{ATTR_AGENT}"].notna()]  # cogscope's root, not one added later
        root = roots.iloc[0]
        agent = _attr(root, ATTR_AGENT)
        if agent is None:
            return cls._of_app(spans, root, trace_id, factory, options, prices)
        try:
            options = json.loads(_attr(root, ATTR_OPTIONS) or "{}")
            models = json.loads(_attr(root, ATTR_MODEL) or "{}") or {"default": "unknown"}
            mcp = tuple(json.loads(_attr(root, ATTR_MCP) or "[]"))
        except ValueError as e:
            raise ReplayError(
                f"trace {trace_id} has malformed cogscope attributes ({e}); it cannot be replayed"
            ) from None
        tables = trace_tables(spans, prices or Prices())
        return cls(
            totals=tables.totals,
            trace_id=trace_id,
            agent=str(agent),
            options=dict(options),
            models=dict(models),
            task=str(_attr(root, SpanAttributes.INPUT_VALUE) or ""),
            session_id=_attr(root, ATTR_SESSION),
            mcp=mcp,
            steps=tables.steps,
            outputs=model_outputs(spans),
            tools=tool_outputs(spans),
            status=_attr(root, ATTR_STATUS),
            final_answer=_attr(root, SpanAttributes.OUTPUT_VALUE),
            max_steps=_recorded_max_steps(spans, root["context.span_id"]),
            trust=trace_trust(signer, trace_id, spans),
            state=_state_id(_attr(root, ATTR_STATE)),
            inputs=_recorded_inputs(root),
        )

    @property
    def recorded_here(self) -> bool:
        """Signed by this installation, and its spans are the ones it sealed: not forged, not foreign, not changed."""
        return self.trust == HERE

    @property
    def changed(self) -> bool:
        """Signed here, but spans were added to the trace or changed after it was recorded."""
        return self.trust == CHANGED

    @classmethod
    def _of_app(
        cls,
        spans: pd.DataFrame,
        root: pd.Series,
        trace_id: str,
        factory: str | None,
        options: Mapping[str, Any] | None,
        prices: Prices | None,
    ) -> Recording:
        """A cycle another app traced with OpenInference: its root is the agent's run span."""
        name = str(root.get("name") or "")
        if root.get("span_kind") != AGENT_KIND or not name.endswith(".run"):
            raise ReplayError(
                f"trace {trace_id} is not a smolagents run (its root span is {name!r}, "
                f"{root.get('span_kind') or 'of no kind'}): cogscope replays smolagents cycles only"
            )
        top = app_agent(name)
        if factory is None:
            raise ReplayError(
                f"trace {trace_id} was recorded by another app ({top}); name the factory that builds the same agent, "
                "package.module:function or path/file.py:function, and its options (`replay --agent REF --option "
                "K=V`, or the Factory field of the Traces tab)"
            )
        tables = trace_tables(spans, prices or Prices())
        models: dict[str, str] = {}
        for role, model in zip(tables.calls["role"], tables.calls["model"], strict=True):
            if model:
                models.setdefault("default" if role == top else str(role), str(model))
        tools = _attr(root, "smolagents.tools_names")
        managed = _managed_names(root)
        code = root.get("status_code")
        return cls(
            totals=tables.totals,
            trace_id=trace_id,
            agent=factory,
            options=dict(options or {}),
            models=models or {"default": "unknown"},
            task=app_task(_attr(root, SpanAttributes.INPUT_VALUE)),
            session_id=_attr(root, ATTR_SESSION),
            mcp=(),
            steps=tables.steps,
            outputs=model_outputs(spans),
            tools=tool_outputs(spans),
            status=ERROR if code == "ERROR" else classify_steps(tables.steps),
            final_answer=_attr(root, SpanAttributes.OUTPUT_VALUE),
            max_steps=_int(_attr(root, "smolagents.max_steps")),
            tools_names=tuple(str(t) for t in tools) if isinstance(tools, (list, tuple)) else None,
            managed_names=tuple(managed),
            factory_named=True,
        )


def _state_id(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _recorded_inputs(root: pd.Series) -> dict[str, Any] | None:
    """The root span's `cogscope.inputs` (a JSON object), or None when missing or malformed (recorded before)."""
    try:
        value = json.loads(_attr(root, ATTR_INPUTS) or "null")
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _managed_names(root: pd.Series) -> list[str]:
    """The managed agents' names OpenInference recorded on an agent's run span: Phoenix gives them as a list of
    {"name": ...} (`smolagents.managed_agents`), OpenTelemetry as `smolagents.managed_agents.N.name`."""
    listed = _attr(root, "smolagents.managed_agents")
    if isinstance(listed, (list, tuple)):
        return [str(m["name"]) for m in listed if isinstance(m, dict) and m.get("name")]
    return [
        str(root.get(c))
        for c in sorted(root.index)
        if c.startswith("attributes.smolagents.managed_agents.") and c.endswith(".name") and root.get(c)
    ]


def classify_steps(steps: list[StepView]) -> str:
    """The status of an app's cycle from its steps: max_steps when the last step ran out of steps, step_errors
    when a step failed, else ok (its root only says whether the run raised)."""
    if steps and steps[-1].error and "max steps" in steps[-1].error.lower():
        return MAX_STEPS
    return STEP_ERRORS if any(v.error for v in steps) else OK


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value != value else int(value)
    except (TypeError, ValueError):
        return None


def check_same_agent(recording: Recording, agent: MultiStepAgent) -> None:
    """ReplayError unless `agent` has the tools and managed agents the recorded one had (an app's cycle, replayed
    with a factory the operator named): a replay of another agent would only report a divergence at step 1."""
    for what, recorded, built in (
        ("tools", recording.tools_names, getattr(agent, "tools", None)),
        ("managed agents", recording.managed_names, getattr(agent, "managed_agents", None)),
    ):
        if recorded is not None and sorted(built or {}) != sorted(recorded):
            raise ReplayError(
                f"the factory {recording.agent} builds an agent with the {what} {sorted(built or {})}, the recorded "
                f"one had {sorted(recorded)}: name the factory that built the recorded agent"
            )


def _recorded_max_steps(spans: pd.DataFrame, root_id: str) -> int | None:
    runs = spans[(spans["parent_id"] == root_id) & (spans["span_kind"] == "AGENT")]
    if runs.empty or "attributes.smolagents.max_steps" not in runs:
        return None
    value = runs.iloc[0]["attributes.smolagents.max_steps"]
    return None if value is None or value != value else int(value)


def call_of_step(steps: list[StepView], number: int) -> int:
    """The model call (1-based, in call order) that step `number` made: the steps before it that made a call
    with a recorded output, plus one. Steps and calls part ways when a step's call failed without an output."""
    return 1 + sum(1 for view in steps[: number - 1] if view.model_output_message is not None)


class ReplayExhausted(RuntimeError):
    pass


class ReplayModel(Model):  # type: ignore[misc]
    """Returns recorded model outputs in call order; from call `fork_at` on, an edited output or a live model.

    Each call writes a span (kind CHAIN, `cogscope.replayed_output=true`) holding the output it
    returned, so the replay can be stepped through, and replayed in turn, like any cycle.
    """

    def __init__(
        self,
        outputs: list[dict[str, Any]],
        *,
        tracing: Tracing,
        fork_at: int | None = None,
        substitute: str | None = None,
        live: Model | None = None,
    ) -> None:
        super().__init__(model_id="cogscope-replay")
        self.outputs = outputs
        self.tracing = tracing
        self.fork_at = fork_at
        self.substitute = substitute
        self.live = live
        self.calls = 0  # every call
        self.replayed = 0  # calls answered from the recording (or the edited output), not by the live model
        self._lock = threading.Lock()

    def generate(self, messages: list[Any], stop_sequences: list[str] | None = None, **kwargs: Any) -> ChatMessage:
        with self._lock:
            self.calls += 1
            call = self.calls
        if self.live is not None and self.fork_at is not None and call >= self.fork_at:
            return self.live.generate(messages, stop_sequences=stop_sequences, **kwargs)
        forked = self.substitute is not None and call == self.fork_at
        if forked:
            data: dict[str, Any] = {"role": "assistant", "content": self.substitute}
        elif call <= len(self.outputs):
            data = json.loads(json.dumps(self.outputs[call - 1]))  # a copy: from_dict rewrites tool_calls
            data.setdefault("role", "assistant")
        else:
            raise ReplayExhausted(
                f"the recording has {len(self.outputs)} model outputs and the replay asked for output {call}: "
                "the run went past the recording; fork with a live model (--model) to go further"
            )
        message = ChatMessage.from_dict(data, token_usage=TokenUsage(input_tokens=0, output_tokens=0))
        with self._lock:
            self.replayed += 1
        attributes = dict(replayed_attributes(call, json.dumps(data), forked=forked))
        for i, m in enumerate(messages):
            role = m.role.value if hasattr(m.role, "value") else str(getattr(m, "role", ""))
            content = (
                m.content
                if isinstance(m.content, str)
                else "\n".join(str(c.get("text", "")) for c in (m.content or []) if isinstance(c, dict))
            )
            attributes[f"llm.input_messages.{i}.message.role"] = role
            attributes[f"llm.input_messages.{i}.message.content"] = content
        with self.tracing.tracer().start_as_current_span("ReplayModel.generate", attributes=attributes):
            return message


class StubTool(Tool):  # type: ignore[misc]
    """Stands in for a tool: returns its recorded outputs in order, raises its recorded errors."""

    skip_forward_signature_validation = True

    def __init__(self, original: Tool, recorded: list[tuple[str | None, str | None]]) -> None:
        self.name = original.name
        self.description = original.description
        self.inputs = original.inputs
        self.output_type = original.output_type
        self.recorded = list(recorded)
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.recorded:
            raise ReplayExhausted(f"the recording has no more outputs of tool {self.name}")
        output, error = self.recorded.pop(0)
        if error is not None:
            raise _recorded_error(error)
        return output


def _recorded_error(message: str) -> Exception:
    """'ValueError: service down' -> an exception that prints the same, so observations match the recording."""
    name, sep, detail = message.partition(": ")
    if sep and name.isidentifier():
        recorded: type[Exception] = type(name, (Exception,), {})
        return recorded(detail)
    return RuntimeError(message)


def stub_tools(agent: MultiStepAgent, recorded: Mapping[str, list[tuple[str | None, str | None]]]) -> None:
    """Replace the tools of `agent` and of its managed agents that the recording called, except final_answer."""
    for name, tool in list(agent.tools.items()):
        if name != "final_answer" and name in recorded:
            agent.tools[name] = StubTool(tool, recorded[name])
    for managed in agent.managed_agents.values():
        stub_tools(managed, recorded)


@dataclass(frozen=True)
class Divergence:
    step: int
    what: str
    original: str
    replay: str
    call: int | None = None  # the prompt differs: the model call (1-based, in call order) ...
    message: int | None = None  # ... and its first input message (0-based) that differs
    role: str | None = None  # that message's role
    diff: tuple[str, ...] = ()  # a short diff of that message, or of a value of several lines ("-"/"+" lines)
    cause: Uncaptured | None = None  # the difference looks like an input cogscope did not capture

    def where(self) -> str:
        """'the prompt differs at call 1, message 0 (system)', 'a tool's result differs'."""
        at = "" if self.call is None else f" at call {self.call}, message {self.message} ({self.role or 'no role'})"
        return f"{self.what} differs{at}"

    def line(self) -> str:
        body = [f"  {line}" for line in self.diff] or [f"  recorded: {self.original}", f"  replay:   {self.replay}"]
        if self.cause is not None:
            body.append(f"  {self.cause.line()}")
        return "\n".join([f"diverged at step {self.step}: {self.where()}", *body])

    def record(self) -> dict[str, Any]:
        """The divergence as `replay --format json` prints it (README)."""
        return {
            "step": self.step,
            "what": self.what,
            "recorded": self.original,
            "replay": self.replay,
            "call": self.call,
            "message": self.message,
            "role": self.role,
            "diff": list(self.diff),
            "uncaptured": None if self.cause is None else self.cause.record(),
        }


def _text(value: Any) -> str:
    return redact(value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str))


def _value_divergence(step: int, what: str, x: Any, y: Any) -> Divergence:
    """Step `step`'s `what` differs (`x` recorded, `y` replay): both cut from just before where they part, a short
    diff of the first item that differs when it has several lines, and what uncaptured input it looks like."""
    a, b = x, y
    while isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        first = next(((p, q) for p, q in zip(a, b, strict=True) if p != q), None)  # a tool call, its output
        if first is None:
            break
        a, b = first
    a_text, b_text = _text(a), _text(b)
    diff = tuple(short_diff(a_text, b_text)) if "\n" in a_text + b_text else ()
    return Divergence(step, what, *excerpts(_text(x), _text(y)), diff=diff, cause=uncaptured(a_text, b_text))


def _prompt_divergence(a: StepView, b: StepView, call: int) -> Divergence | None:
    """Where the prompt of the model call step `a` made (call number `call`) differs in the replay's step `b`.
    Prompts not recorded on either side (OPENINFERENCE_HIDE_INPUTS, a call without its span) are not compared."""
    if a.model_output_message is None or not a.input_messages or not b.input_messages:
        return None
    found = prompt_difference(a.input_messages, b.input_messages)
    if found is None:
        return None
    return Divergence(
        a.number,
        "the prompt",
        *excerpts(found.recorded, found.replay),
        call=call,
        message=found.message,
        role=found.role,
        diff=found.diff,
        cause=uncaptured(found.recorded, found.replay),
    )


def compare(original: list[StepView], replay: list[StepView], *, until: int | None = None) -> Divergence | None:
    """The first step (up to `until`) where the replay's prompt, code, tool calls, tool results, observations or
    error differ, in the order they happen: a step's prompt first (its call is made before its code runs)."""
    last = min(len(original), len(replay)) if until is None else until - 1
    call = 0
    for a, b in zip(original[:last], replay[:last], strict=False):
        call += a.model_output_message is not None
        prompt = _prompt_divergence(a, b, call)
        if prompt is not None:
            return prompt
        checks = [
            ("the code", a.code, b.code),
            (
                "the tool calls",
                [(t.name, t.arguments) for t in a.tool_calls],
                [(t.name, t.arguments) for t in b.tool_calls],
            ),
            (
                "a tool's result",
                [(t.output, t.error) for t in a.tool_calls],
                [(t.output, t.error) for t in b.tool_calls],
            ),
            ("the observations", a.observations, b.observations),
            ("the error", a.error, b.error),
        ]
        for what, x, y in checks:
            if x != y:
                return _value_divergence(a.number, what, x, y)
    counts = counted(len(original), "step"), counted(len(replay), "step")
    if until is None and len(original) != len(replay):
        return Divergence(min(len(original), len(replay)) + 1, "the number of steps", *counts)
    if until is not None and len(replay) < until - 1:
        return Divergence(len(replay) + 1, "the number of steps", *counts)
    return None


@dataclass
class Replay:
    """A replay (or fork) ready to run: iterate `cycle`, then call `report()`."""

    recording: Recording
    cycle: Cycle
    model: ReplayModel
    fork_at: int | None
    live_model_id: str | None
    stubbed: bool
    steps: list[StepView] = field(default_factory=list)
    state_note: str | None = None  # what state the re-run runs on, for its report (set by whoever built its agent)

    def report(self) -> tuple[bool, Divergence | None]:
        """(reproduced, first divergence) — for a fork, 'reproduced' means it ran to a final answer."""
        result = self.cycle.result
        if result is None:
            raise RuntimeError("run the replay's cycle first")
        self.steps = steps_from_frame(result.spans)
        if self.fork_at is not None:
            divergence = compare(self.recording.steps, self.steps, until=self.fork_at)
            return divergence is None and result.final_answer is not None and result.status != ERROR, divergence
        divergence = compare(self.recording.steps, self.steps)
        if divergence is None and result.status != self.recording.status and self.recording.status is not None:
            divergence = Divergence(len(self.steps), "the cycle status", str(self.recording.status), result.status)
        return divergence is None, divergence


def _check_fork(recording: Recording, fork_at: int, substitute: str | None, live_model: Model | None) -> None:
    """A fork starts at one of the recording's steps, with an edited output or a live model (one of the two)."""
    if not recording.steps:
        raise ReplayError(f"trace {recording.trace_id} has no steps to fork from")
    if not 1 <= fork_at <= len(recording.steps):
        raise ReplayError(
            f"step {fork_at} is outside the recording's steps 1..{len(recording.steps)}; pick one of those"
        )
    if (substitute is None) == (live_model is None):
        raise ReplayError("a fork needs either an edited output for that step or a live model, not both")


def _replay_spec(recording: Recording, *, session_id: str | None, live_model_id: str | None) -> CycleSpec:
    """The re-run's spec: the recorded one, linked to its original (`replay_of`), every role on the live model
    when there is one."""
    models = dict(recording.models)
    if live_model_id:
        models = {role: live_model_id for role in models}
    return CycleSpec(
        agent=recording.agent,
        options=recording.options,
        models=models,
        session_id=session_id or recording.session_id,
        replay_of=recording.trace_id,
        mcp=recording.mcp,
    )


def prepare_replay(
    recording: Recording,
    *,
    build_agent: BuildAgent,
    tracing: Tracing,
    stub: bool = False,
    fork_at: int | None = None,
    substitute: str | None = None,
    live_model: Model | None = None,
    live_model_id: str | None = None,
    session_id: str | None = None,
    on_end: Callable[[], None] | None = None,
    timeout_s: float | None = None,
    prices: Prices | None = None,
    checkpoint: Checkpoint | None = None,
    inputs: Callable[[], Inputs] | None = None,
) -> Replay:
    """Rebuild the recorded agent around a ReplayModel; returns the Replay whose cycle the caller runs.

    `checkpoint`: names (or keeps) the state the re-run starts from, as for any cycle (`Cycle`); the caller builds
    the agent on that state (`build_agent`), e.g. on a scratch copy of the recorded one. `inputs`: gives the
    recorded clock readings and seed back (`Recording.inputs`), as `Cycle` takes it."""
    if fork_at is not None:
        _check_fork(recording, fork_at, substitute, live_model)
    model = ReplayModel(
        recording.outputs,
        tracing=tracing,
        fork_at=None if fork_at is None else call_of_step(recording.steps, fork_at),
        substitute=substitute,
        live=live_model,
    )
    try:
        agent = build_agent({role: model for role in recording.models}, recording.options)
    except ReplayError:  # the caller's own word on why it cannot build the agent (e.g. its state is not kept)
        raise
    except Exception as e:
        raise ReplayError(f"cannot replay: agent {recording.agent!r} no longer loads ({e})") from e
    check_same_agent(recording, agent)
    if stub:
        stub_tools(agent, recording.tools)
    spec = _replay_spec(recording, session_id=session_id, live_model_id=live_model_id)
    run_kwargs = {"max_steps": recording.max_steps} if recording.max_steps else {}
    cycle = Cycle(
        agent,
        recording.task,
        spec=spec,
        tracing=tracing,
        on_end=on_end,
        run_kwargs=run_kwargs,
        timeout_s=timeout_s,
        prices=prices,
        keep_spans=True,  # `report` compares the steps of the very spans exported
        checkpoint=checkpoint,
        inputs=inputs,
    )
    return Replay(recording, cycle, model, fork_at, live_model_id, stub)
