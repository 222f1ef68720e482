"""A garbage collection inside OpenTelemetry's `context.attach` must not crash the process (telemetry.context_guard).

On Python 3.11 a finalizer run by a collection that starts inside `ContextVar.set` frees the context map being copied
(python/cpython#148891). A CI run of the suite died of it: a segfault in `attach`, the worker lost, the run hung.
The program below makes that happen the way an agent run does: step generators that keep their span current across a
yield are abandoned in reference cycles, so the collector is what ends them (and detaches their spans), while spans
keep being attached."""

from __future__ import annotations

import gc
import resource
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cogscope.telemetry import context_guard

from .scripted_llm import ScriptedLLM

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = textwrap.dedent(
    """
    import contextvars, gc, random, sys

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if sys.argv[1] == "cogscope":
        import cogscope.telemetry.tracing  # what every cogscope process that traces imports
        from cogscope.telemetry import context_guard
        assert context_guard.installed() == context_guard.NEEDED
    random.seed(int(sys.argv[2]))
    tracer = TracerProvider().get_tracer("t")
    pads = [contextvars.ContextVar(f"pad{i}") for i in range(40)]  # a context with many variables, as an app's has
    for pad in pads:
        pad.set(object())

    def step(span):
        with trace.use_span(span, end_on_exit=True):  # current across the yield, as a traced step is
            yield 1
            yield 2

    class Holder:
        pass

    root = tracer.start_span("run")
    for _ in range(60_000):
        gc.set_threshold(random.randint(1, 12), 1000, 1000)  # collections start at varying allocations
        steps = step(tracer.start_span("step"))
        next(steps)
        holder = Holder()
        holder.steps, holder.me = steps, holder  # abandoned in a cycle: only the collector closes it
        del steps, holder
        with trace.use_span(root, end_on_exit=False):  # attach, then detach
            pass
    gc.collect()
    print("ok")
    """
)


def _no_core_file() -> None:  # a crash writes no `core` into the folder it ran in
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _run(way: str, seed: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, way, str(seed)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_no_core_file,
    )


@pytest.mark.e2e  # starts a Python process
@pytest.mark.parametrize("seed", [1, 2])
def test_spans_attached_while_the_collector_ends_abandoned_steps_do_not_crash(seed: int):
    ran = _run("cogscope", seed)
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", (ran.returncode, ran.stderr[-2000:])


@pytest.mark.e2e  # starts a Python process
@pytest.mark.skipif(not context_guard.NEEDED, reason="Python 3.12 and later do not collect inside ContextVar.set")
def test_without_the_guard_this_interpreter_crashes_on_the_same_program():
    # what the guard is for: the same program, OpenTelemetry as it comes, dies of a segfault here
    ran = _run("bare", 1)
    assert ran.returncode == -signal.SIGSEGV, (ran.returncode, ran.stdout, ran.stderr[-2000:])


def test_the_guard_keeps_the_context_opentelemetry_had():
    from opentelemetry import context, trace

    import cogscope.telemetry.tracing  # noqa: F401 installs it

    assert context_guard.installed() == context_guard.NEEDED
    span = trace.NonRecordingSpan(trace.SpanContext(1, 2, False))
    before = context.get_current()
    token = context.attach(trace.set_span_in_context(span))
    assert trace.get_current_span() is span
    context.detach(token)
    assert context.get_current() is before
    assert context_guard.install() == context_guard.NEEDED  # twice: still one layer
    if context_guard.NEEDED:
        assert not isinstance(context._RUNTIME_CONTEXT.inner, context_guard.CollectorPausedContext)


def _sets_by_finalizers(run: Callable[[], object]) -> list[str]:
    """The context-variable sets that a `__del__` makes while `run` runs on this thread."""
    found: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and getattr(arg, "__qualname__", "") in ("ContextVar.set", "ContextVar.reset"):
            caller = frame
            while caller is not None:
                if caller.f_code.co_name == "__del__":
                    found.append(f"{caller.f_code.co_filename}:{caller.f_lineno}")
                    return
                caller = caller.f_back

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return found


def test_a_streamed_litellm_call_leaves_no_finalizer_that_sets_context(llm: ScriptedLLM):
    # the other half of the crash: LiteLLM's streamed response sets two context variables when the collector ends it
    from smolagents import ChatMessage, LiteLLMModel, MessageRole

    import cogscope.telemetry.tracing  # noqa: F401 installs the guard

    model = LiteLLMModel("openai/scripted", api_base=llm.api_base, api_key="sk-test")

    def calls() -> None:
        for n in range(3):
            llm.enqueue(f"reply {n}", prompt_tokens=5, completion_tokens=2)
            deltas = list(model.generate_stream([ChatMessage(role=MessageRole.USER, content=f"say {n}")]))
            assert "".join(d.content or "" for d in deltas) == f"reply {n}"
            gc.collect()

    assert _sets_by_finalizers(calls) == []
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    assert getattr(CustomStreamWrapper.__del__, "_cogscope_quiet", False) == context_guard.NEEDED


def test_the_quiet_finalizer_still_restores_what_an_async_call_stamped():
    restored: list[str] = []

    class Stream:
        def __init__(self, **stamps: str) -> None:
            self.logging_obj = type("Logging", (), stamps)()

        def __del__(self) -> None:
            restored.append("restored")

    assert context_guard.quiet_stream_finalizer(Stream)
    unchanged = dict(_own_trace_id="", _pre_call_trace_id="", _own_session_id="", _pre_call_session_id="")
    streams = [
        Stream(**unchanged),  # a sync call stamps nothing: nothing to put back
        Stream(**{**unchanged, "_own_trace_id": "t-1"}),  # an async call stamped its trace id: put it back
        Stream(**{**unchanged, "_own_session_id": "s-1"}),
        Stream(_own_trace_id=""),  # a LiteLLM that keeps other attributes: its own finalizer runs
    ]
    for stream in streams:
        stream.__del__()
    assert restored == ["restored"] * 3
    assert context_guard.quiet_stream_finalizer(Stream)  # twice: one layer
    assert not hasattr(Stream.__del__.__wrapped__, "__wrapped__")
