"""The one-line recorder: an app's smolagents runs become cogscope cycles, replayable without naming the factory.

    from cogscope.telemetry.recorder import record

    record("myapp.agents:build", options={"memory": "/srv/memory.sqlite"})   # once, at start-up
    ...
    agent = build(models)           # the app builds and runs its agents as it always has
    agent.run("What now?")          # -> one cycle in Phoenix, with cogscope's root attributes

`record` sets up what cogscope itself traces with (`setup_tracing`): the OpenInference instrumentor, compact
prompts, secrets blanked from every span, and the span spool, so a trace survives a Phoenix outage or a crash of
the app. It then wraps `MultiStepAgent.run`: every run that is not inside another (a managed agent's run is part
of its manager's cycle) gets a root span with the attributes cogscope's own cycles carry: the agent reference (the
factory cogscope calls to rebuild the agent: `package.module:function` or `path/file.py:function`, called as
`function(models, **options)`), the options, the model of each role (the top agent is `default`, managed agents
by name) and the session. Such a cycle is listed, costed and shown like one run in cogscope, and `cogscope
replay TRACE_ID` rebuilds it from the factory the trace names (an operator confirms code the trace names with
`--trust-recorded-code`, or registers it; a trace alone never makes cogscope import anything).

An app whose agent keeps state between runs hands it to cogscope as cogscope's own agent files do
(telemetry.state_protocol): its options name the folder, `record(..., options={"state_dir": "/srv/agent-state"})`,
and the app builds its agent on that folder. Before each cycle the recorder keeps that folder's files (or what the
agent's `snapshot()` returns) in the data dir's kept states and names it on the root span (`cogscope.state`); a replay
calls the factory with a scratch folder holding that state instead, never the app's.

Importing this module loads OpenTelemetry and OpenInference, no pandas, Gradio or LiteLLM
(`bench/bench_recorder.py` measures it).
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api

from cogscope import defaults

from .attributes import (
    ATTR_SIGNATURE,
    cycle_span_name,
)
from .cycle_spec import CycleSpec, classify, close_root
from .redaction import redact_value
from .signing import Signer
from .spool import Spool
from .state_blobs import StateBlobs
from .state_protocol import STATE_DIR, keep_state, log, warn_unused_methods
from .tracing import Tracing, setup_tracing

DEFAULT_ENDPOINT = defaults.PHOENIX_ENDPOINT


@dataclass
class Recorder:
    """What `record` set up; `close()` delivers what is spooled (bounded) and stops recording."""

    agent: str
    options: Mapping[str, Any]
    session_id: str | None
    tracing: Tracing
    blobs: StateBlobs | None = None  # where the agent's starting states are kept (None: none are)
    _original: Any = field(default=None, repr=False)

    def models(self, agent: Any) -> dict[str, str]:
        """The model id of each role: the top agent's is `default`, a managed agent's its name."""
        out = {"default": _model_id(agent)}
        for name, managed in _managed(agent):
            out[name] = _model_id(managed)
        return out

    def keep_state(self, agent: Any) -> str | None:
        """The id of the state `agent` starts a cycle from, kept now (None: the options name no `state_dir`, or it
        could not be taken: one warning line, and the cycle runs)."""
        folder = self.options.get(STATE_DIR)
        if not folder or self.blobs is None:
            warn_unused_methods(agent, self.agent)
            return None
        try:
            return keep_state(agent, Path(str(folder)), self.blobs)
        except Exception as e:
            log.warning("cogscope: the state this cycle starts from was not kept (%s: %s)", type(e).__name__, e)
            return None

    def close(self, drain_timeout: float = defaults.DRAIN_TIMEOUT_S) -> int:
        """Stop recording; wait up to `drain_timeout` s for Phoenix to store the spooled spans; returns how many
        stay spooled (the next cogscope or recorder on the same data dir sends them)."""
        global _active
        from smolagents.agents import MultiStepAgent

        with _lock:
            if _active is self:
                _active = None
            if self._original is not None:
                MultiStepAgent.run = self._original
                self._original = None
        left = self.tracing.drain(drain_timeout)
        self.tracing.shutdown()
        return left


_active: Recorder | None = None
_lock = threading.Lock()
_inside = threading.local()  # a run inside a recorded run (a managed agent's) is not a cycle of its own


def record(
    agent: str,
    *,
    options: Mapping[str, Any] | None = None,
    session_id: str | None = None,
    project: str | None = None,
    endpoint: str | None = None,
    data_dir: str | Path | None = None,
) -> Recorder:
    """Record every smolagents run of this process as a cogscope cycle (module docstring). Call it once.

    Args:
        agent: the factory that builds the same agent, `package.module:function` or `path/file.py:function`.
        options: the keyword arguments that factory is called with (recorded on each cycle; JSON-able). With
            `state_dir`, the folder the app's agent keeps its state in: each cycle's starting state is kept.
        session_id: groups the cycles into one Phoenix session.
        project: the Phoenix project (default $COGSCOPE_PROJECT, else `cogscope`).
        endpoint: Phoenix (default $PHOENIX_COLLECTOR_ENDPOINT, else http://127.0.0.1:6006).
        data_dir: where the span spool and the signing key live (default: cogscope's data folder,
            `cogscope.defaults.data_dir()`): the same as the app's, so its cycles count as recorded by this
            installation and a spool it leaves is sent by whichever starts next.
    """
    global _active
    from smolagents.agents import MultiStepAgent

    if not isinstance(agent, str) or ":" not in agent:
        raise ValueError(
            f"record(agent={agent!r}): name the factory as 'package.module:function' or 'path/file.py:function'"
        )
    with _lock:
        if _active is not None:
            raise RuntimeError("record() was already called in this process; call its close() first")
        base = (endpoint or os.environ.get("PHOENIX_COLLECTOR_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        base = base.removesuffix("/v1/traces")
        folder = Path(data_dir).expanduser() if data_dir else defaults.data_dir()
        tracing = setup_tracing(
            endpoint=f"{base}/v1/traces",
            project_name=project or os.environ.get("COGSCOPE_PROJECT") or defaults.PROJECT,
            spool=Spool.in_dir(folder),
            signer=Signer.from_dir(folder),
        )
        options = dict(options or {})
        if options.get(STATE_DIR):  # recorded as a whole path: the app's working folder is not the replay's
            options[STATE_DIR] = str(Path(str(options[STATE_DIR])).expanduser().resolve())
        recorder = Recorder(
            agent=agent, options=options, session_id=session_id, tracing=tracing, blobs=StateBlobs.in_dir(folder)
        )
        recorder._original = MultiStepAgent.run
        MultiStepAgent.run = _recording_run(recorder, MultiStepAgent.run)
        _active = recorder
    return recorder


def stop(drain_timeout: float = defaults.DRAIN_TIMEOUT_S) -> int:
    """Stop the recorder `record` started (if any): see `Recorder.close`."""
    recorder = _active
    return recorder.close(drain_timeout) if recorder is not None else 0


def _model_id(agent: Any) -> str:
    model = getattr(agent, "model", None)
    return str(getattr(model, "model_id", None) or type(model).__name__)


def _managed(agent: Any) -> Iterator[tuple[str, Any]]:
    for name, managed in (getattr(agent, "managed_agents", None) or {}).items():
        yield str(name), managed
        yield from _managed(managed)


def _recording_run(recorder: Recorder, original: Any) -> Any:

    @functools.wraps(original)
    def run(self: Any, task: str, *args: Any, **kwargs: Any) -> Any:
        if getattr(_inside, "depth", 0):
            return original(self, task, *args, **kwargs)
        models = recorder.models(self)
        spec = CycleSpec(agent=recorder.agent, options=recorder.options, models=models, session_id=recorder.session_id)
        attributes = spec.attributes(uuid.uuid4().hex, str(task), recorder.keep_state(self))
        tracing = recorder.tracing
        span = tracing.tracer().start_span(cycle_span_name(recorder.agent), attributes=attributes)
        trace_id = span.get_span_context().trace_id
        if tracing.signer is not None:
            exported = {key: redact_value(value) for key, value in attributes.items()}  # as Phoenix gets them
            span.set_attribute(ATTR_SIGNATURE, tracing.signer.sign(format(trace_id, "032x"), exported))
        tracing.collector.watch(trace_id)
        token = context_api.attach(trace_api.set_span_in_context(span))
        _inside.depth = getattr(_inside, "depth", 0) + 1
        ended = False

        def end(raised: BaseException | None, answer: Any) -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            _inside.depth -= 1
            if raised is not None:
                span.record_exception(raised)
            close_root(
                span,
                status=classify(list(self.memory.steps), raised),
                finished=tracing.collector.take(trace_id),
                answer=answer,
                error=f"{type(raised).__name__}: {raised}" if raised is not None else None,
            )
            span.end()
            context_api.detach(token)

        try:
            result = original(self, task, *args, **kwargs)
        except BaseException as e:
            end(e, None)
            raise
        if isinstance(result, Generator):  # run(stream=True): the cycle lasts as long as its steps come
            return _streamed(result, end)
        end(None, result.output if type(result).__name__ == "RunResult" else result)  # return_full_result=True
        return result

    return run


def _streamed(steps: Generator[Any, None, None], end: Any) -> Generator[Any, None, None]:
    from smolagents import FinalAnswerStep

    answer = None
    try:
        for step in steps:
            if isinstance(step, FinalAnswerStep):
                answer = step.output
            yield step
    except GeneratorExit:  # the app stopped reading: the cycle ends here
        end(None, answer)
        raise
    except BaseException as e:
        end(e, None)
        raise
    end(None, answer)
