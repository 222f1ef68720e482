"""One cycle: an agent run under a root AGENT span that carries cogscope's attributes.

The run happens in a worker thread of its own: the instrumentor attaches its
span context when `agent.run(stream=True)` is called and detaches it when the
generator ends, so the whole run must stay on one thread, while the caller (a
Gradio generator, the CLI) receives each step as soon as it is finished.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import pandas as pd
from openinference.instrumentation import using_attributes
from opentelemetry.trace import Tracer
from smolagents import ActionStep, ChatMessageStreamDelta, FinalAnswerStep, MultiStepAgent, PlanningStep
from smolagents.monitoring import LogLevel
from smolagents.utils import AgentMaxStepsError

from .attributes import (
    ATTR_INPUTS,
    ATTR_SIGNATURE,
    ERROR,
    MAX_STEPS,
    cycle_span_name,
)
from .cycle_spec import CycleSpec, classify, close_root
from .frames import spans_to_frame
from .prices import Prices
from .redaction import redact_value
from .tables import CycleTotals, cycle_totals
from .tracing import Tracing

Step: TypeAlias = ActionStep | PlanningStep | FinalAnswerStep
# what iterating a Cycle gives: steps, and the model's words as they come
Item: TypeAlias = Step | ChatMessageStreamDelta
# what keeps a cycle's starting state: called with the cycle id, returns the state's id (None: nothing kept)
Checkpoint: TypeAlias = Callable[[str], "str | None"]

log = logging.getLogger("cogscope.state")


def stream_tokens(agent: MultiStepAgent) -> bool:
    """Have `agent` stream its model's output (smolagents' `stream_outputs`), if its model can: returns whether.

    Only the agent run at the top streams to the caller: smolagents runs a managed agent without streaming.
    smolagents also shows a streamed output on the agent's console whatever its log level; an agent built to log
    nothing (LogLevel.OFF) gets a quiet console, so the words are not printed twice or into a page."""
    model = getattr(agent, "model", None)
    if not callable(getattr(model, "generate_stream", None)) or not hasattr(agent, "stream_outputs"):
        return False
    agent.stream_outputs = True
    logger = getattr(agent, "logger", None)
    if logger is not None and getattr(logger, "level", None) == LogLevel.OFF and hasattr(logger, "console"):
        logger.console.quiet = True
    return True


@dataclass(frozen=True)
class CycleResult:
    trace_id: str
    cycle_id: str
    status: str
    final_answer: str | None
    error: str | None
    totals: CycleTotals
    # the spans as exported, for a cycle run with keep_spans (else empty)
    spans: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)
    state: str | None = None  # the id of the state the cycle started from (None: none was kept)

    @property
    def failed(self) -> bool:
        return self.status in (MAX_STEPS, ERROR)


class Inputs(Protocol):
    """What a cycle reads besides its state (the clock, a seed: `agents.cycle_inputs`), once it has run."""

    def record(self) -> Mapping[str, Any]: ...


_DONE = object()
ABANDON_GRACE_S = 30.0  # after the wall clock, how long a stopped cycle may take to wind down


@dataclass
class _Run:
    """What the worker thread learns while the agent runs; `Cycle._finish` turns it into the result."""

    start: float  # time.time() when the run began
    trace_id_int: int = 0  # 0 until the root span is open
    raised: BaseException | None = None  # what the agent raised (or CycleStopped, for a limit)
    final_answer: Any = None


class CycleStopped(Exception):
    """The cycle was stopped early because a limit was hit; str() is the reason."""


def _error_line(raised: BaseException, stop_reason: str | None) -> str:
    """The cycle's error as one line: the limit that stopped it, else the exception."""
    if stop_reason is not None:
        return stop_reason
    detail = str(raised) or repr(raised)
    return f"{type(raised).__name__}: {detail}"


def _agent_tree(agent: MultiStepAgent) -> Iterator[MultiStepAgent]:
    yield agent
    for managed in (getattr(agent, "managed_agents", None) or {}).values():
        yield from _agent_tree(managed)


class Cycle:
    """Runs `agent` on `task` once; iterate it to receive each finished step, then read `.result`.

    cycle = Cycle(agent, "What now?", spec=CycleSpec("heartbeat"), tracing=tracing)
    for step in cycle:
        ...  # with tokens=True, also each ChatMessageStreamDelta of the model's output as it comes
    print(cycle.result.trace_id, cycle.result.status)

    `checkpoint(cycle_id) -> state id | None` keeps the state the cycle starts from (e.g. a memory store's point),
    called in the worker thread right before the root span opens: its id goes on the root span (`cogscope.state`)
    and in the result. A checkpoint that raises costs the cycle its state (no attribute, one warning line on the
    logger `cogscope.state`), never the cycle.
    """

    def __init__(
        self,
        agent: MultiStepAgent,
        task: str,
        *,
        spec: CycleSpec,
        tracing: Tracing,
        on_end: Callable[[], None] | None = None,
        run_kwargs: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        prices: Prices | None = None,
        keep_spans: bool = False,
        tokens: bool = False,
        checkpoint: Checkpoint | None = None,
        inputs: Callable[[], Inputs] | None = None,
    ) -> None:
        self.agent = agent
        # keeps the state the cycle starts from, in the worker thread right before the root span opens
        self.checkpoint = checkpoint
        self.state: str | None = None  # the id it returned
        self.state_error: str | None = None  # why no state was kept, when the checkpoint failed
        # called in the worker thread as the root span opens (the agent runs in that thread: what it sets in the
        # thread's context, its tools see); what its result records when the run ends is `cogscope.inputs`
        self._inputs = inputs
        self.keep_spans = keep_spans  # the result's `spans`: the frame of the spans exported (a replay compares them)
        self.tokens = tokens and stream_tokens(agent)  # iterating gives the model's words too, as they come
        self.prices = prices or Prices()  # what the result's cost is priced with
        self.timeout_s = timeout_s  # the cycle's wall clock: past it, stop() with a reason that names it
        self._run_kwargs = dict(run_kwargs or {})  # e.g. the recorded max_steps, for a replay
        self._on_end = on_end  # runs in the worker thread when the cycle ends (e.g. stops MCP servers)
        self.task = task
        self.spec = spec
        self.tracing = tracing
        self.cycle_id = uuid.uuid4().hex
        self.trace_id: str | None = None
        self.result: CycleResult | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cycle-{self.cycle_id[:8]}", daemon=True)
        self._launched = False
        self.stop_reason: str | None = None  # why the cycle was stopped early (a limit), when it was
        self._stop_hooks: list[Callable[[], None]] = []

    def on_stop(self, hook: Callable[[], None]) -> None:
        """Call `hook` when the cycle is stopped with a reason (e.g. kill a sandbox worker running code)."""
        self._stop_hooks.append(hook)

    def start(self) -> Cycle:
        if not self._launched:
            self._launched = True
            self._thread.start()
            self._started.wait()
        return self

    def discard(self) -> None:
        """Let go of a cycle that will not run (it left the line): what building its agent started (MCP servers,
        sandbox workers) is stopped. A cycle already started is not affected."""
        if self._launched:
            return
        self._launched = True  # it can no longer start
        if self._on_end is not None:
            on_end, self._on_end = self._on_end, None
            try:
                on_end()
            except Exception:
                pass

    def stop(self, reason: str | None = None) -> None:
        """Ask the agent and its managed agents to stop after the current step.

        Without a reason (the Stop button) the cycle ends as an error 'Agent interrupted'; with one (a limit
        was hit) the cycle ends as an error that says `reason`, and the stop hooks run.
        """
        first = reason is not None and self.stop_reason is None
        if first:
            self.stop_reason = reason
        for agent in _agent_tree(self.agent):
            agent.interrupt()
        if first:
            for hook in self._stop_hooks:
                try:
                    hook()
                except Exception:  # stopping must go on whatever one hook does
                    pass

    def backlog(self) -> int:
        """How many items the run has queued that iterating has not given yet (a caller may skip showing an
        update that more are already following)."""
        return self._queue.qsize()

    def __iter__(self) -> Iterator[Item]:
        self.start()
        # past the wall clock plus a grace period the caller stops waiting: code stuck where no stop reaches
        # (a tool blocked in a system call) must not hold the page or the terminal forever
        deadline = None if not self.timeout_s else time.monotonic() + self.timeout_s + ABANDON_GRACE_S
        while True:
            try:
                item = self._queue.get(timeout=None if deadline is None else max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self._abandon()
                return
            if item is _DONE:
                break
            yield item
        self._thread.join()

    def _abandon(self) -> None:
        """The run did not stop after its wall clock: report it as an error and leave its thread behind."""
        reason = (
            f"{self.stop_reason or 'the cycle ran past its wall-clock limit'}; it did not stop within "
            f"{ABANDON_GRACE_S:g} s more and was abandoned (its trace may be incomplete)"
        )
        self.result = self._error_result(reason, float(self.timeout_s or 0) + ABANDON_GRACE_S)

    def run(self) -> CycleResult:
        """Run to the end, discarding the steps; returns the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    # -- worker thread --------------------------------------------------------------
    def _run(self) -> None:
        tracer = self.tracing.tracer()
        span_name = cycle_span_name(self.spec.agent)
        run = _Run(start=time.time())
        watchdog = self._start_watchdog()
        try:
            self._run_under_root(tracer, span_name, run)
        finally:
            try:
                self._finish(watchdog, run)
            except BaseException as e:  # noqa: B036 the cycle must end whatever its record does
                if self.result is None:
                    why = f"cogscope could not finish the cycle's record: {type(e).__name__}: {e}"
                    self.result = self._error_result(why, time.time() - run.start)
            finally:
                self._queue.put(_DONE)

    def _start_watchdog(self) -> threading.Timer | None:
        """The wall clock: past `timeout_s`, the cycle is stopped with a reason that names the limit."""
        if not self.timeout_s:
            return None
        watchdog = threading.Timer(
            self.timeout_s,
            self.stop,
            args=(f"the cycle ran past its {self.timeout_s:g} s wall-clock limit (COGSCOPE_CYCLE_TIMEOUT)",),
        )
        watchdog.daemon = True
        watchdog.start()
        return watchdog

    def _keep_state(self) -> str | None:
        """The checkpoint's state id; a checkpoint that fails costs the cycle its state (one warning line), never
        the cycle."""
        if self.checkpoint is None:
            return None
        try:
            state = self.checkpoint(self.cycle_id)
        except Exception as e:
            self.state_error = f"{type(e).__name__}: {e}"
            log.warning(
                "cogscope: the state this cycle starts from was not kept (%s); it runs, but replays of it run "
                "against the live state only",
                self.state_error,
            )
            return None
        return str(state) if state else None

    def _run_under_root(self, tracer: Tracer, span_name: str, run: _Run) -> None:
        """Keep the starting state, open the root span, run the agent inside it, and close it with the cycle's
        status."""
        self.state = self._keep_state()
        attributes = self.spec.attributes(self.cycle_id, self.task, self.state)
        with tracer.start_as_current_span(span_name, attributes=attributes, end_on_exit=True) as span:
            run.trace_id_int = span.get_span_context().trace_id
            self.trace_id = format(run.trace_id_int, "032x")
            if self.tracing.signer is not None:
                exported = {key: redact_value(value) for key, value in attributes.items()}  # as Phoenix gets them
                span.set_attribute(ATTR_SIGNATURE, self.tracing.signer.sign(self.trace_id, exported))
            self.tracing.collector.watch(run.trace_id_int, exported=self.keep_spans)
            self._started.set()
            inputs = None
            try:
                inputs = self._inputs() if self._inputs is not None else None
                self._stream_agent(run)
            except BaseException as e:  # noqa: B036 the agent failed, even by SystemExit: record it, report it
                run.raised = e
                span.record_exception(e)
            if inputs is not None:
                span.set_attribute(ATTR_INPUTS, json.dumps(dict(inputs.record()), sort_keys=True))
            if self.stop_reason is not None and run.raised is None:
                run.raised = CycleStopped(self.stop_reason)
            close_root(
                span,
                status=classify(list(self.agent.memory.steps), run.raised),
                finished=self.tracing.collector.spans_of(run.trace_id_int),
                answer=run.final_answer,
                error=_error_line(run.raised, self.stop_reason) if run.raised else None,
            )

    def _stream_agent(self, run: _Run) -> None:
        """Run the agent, handing each finished step (and, with `tokens`, each delta) to the caller's queue."""
        emitted: set[int] = set()
        # every span of the cycle carries its session and user (Phoenix groups and filters by them)
        with using_attributes(session_id=self.spec.session_id or "", user_id=self.spec.user or ""):
            for item in self.agent.run(self.task, stream=True, **self._run_kwargs):
                if isinstance(item, FinalAnswerStep):
                    self._emit_max_steps_step(emitted)
                    run.final_answer = item.output
                    self._queue.put(item)
                elif isinstance(item, (ActionStep, PlanningStep)) and id(item) not in emitted:
                    emitted.add(id(item))
                    self._queue.put(item)
                elif self.tokens and isinstance(item, ChatMessageStreamDelta):
                    self._queue.put(item)

    def _error_result(self, error: str, seconds: float) -> CycleResult:
        """The result of a cycle that ended without its record: an error, no calls, `seconds` long."""
        return CycleResult(
            trace_id=self.trace_id or "",
            cycle_id=self.cycle_id,
            status=ERROR,
            final_answer=None,
            error=error,
            totals=CycleTotals(0, 0, 0, 0, seconds),
            state=self.state,
        )

    def _finish(self, watchdog: threading.Timer | None, run: _Run) -> None:
        """After the run: clean up, and count the result's totals from the cycle's spans as they ended, without
        waiting for their export (whoever shows the trace waits for it: `Tracing.pending`, `Tracing.written`)."""
        if watchdog is not None:
            watchdog.cancel()
        self._started.set()
        if self._on_end is not None:
            try:
                self._on_end()
            except Exception:  # cleanup must never hide the cycle's own result
                pass
        spans = self.tracing.collector.take(run.trace_id_int) if run.trace_id_int else []
        totals = cycle_totals(spans, self.prices) if spans else CycleTotals(0, 0, 0, 0, time.time() - run.start)
        frame = pd.DataFrame()
        if self.keep_spans and self.trace_id:
            self.tracing.written(self.trace_id)
            frame = spans_to_frame(self.tracing.collector.take_exported(run.trace_id_int))
        status = classify(list(self.agent.memory.steps), run.raised)
        error = None
        if run.raised is not None:
            error = _error_line(run.raised, self.stop_reason)
        elif status == MAX_STEPS:
            error = f"Reached max steps ({self.agent.max_steps}) without a final answer."
        if self.result is None:  # else abandoned: the caller has moved on with its own result
            self.result = CycleResult(
                trace_id=self.trace_id or "",
                cycle_id=self.cycle_id,
                status=status,
                final_answer=None if run.final_answer is None else str(run.final_answer),
                error=error,
                totals=totals,
                spans=frame,
                state=self.state,
            )

    def _emit_max_steps_step(self, emitted: set[int]) -> None:
        """smolagents does not stream the step that records 'Reached max steps': emit it from memory."""
        steps = self.agent.memory.steps
        if steps and isinstance(steps[-1], ActionStep) and isinstance(steps[-1].error, AgentMaxStepsError):
            if id(steps[-1]) not in emitted:
                emitted.add(id(steps[-1]))
                self._queue.put(steps[-1])
