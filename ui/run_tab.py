"""The Run tab: pick an agent and a model, type a task, watch each step stream in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr

import agents
from telemetry import Cycle

from .errors import UsageError
from .models import SUGGESTED_MODELS
from .render import step_messages, totals_markdown
from .runtime import Runtime

Update = tuple[list[dict[str, Any]], str, str]

_running: dict[str, Cycle] = {}
_running_lock = threading.Lock()


def _session_id(request: gr.Request | None) -> str:
    return f"ui-{request.session_hash}" if request is not None and request.session_hash else "ui"


def run_cycle(
    agent: str,
    model: str,
    api_base: str,
    task: str,
    request: gr.Request | None = None,
    *,
    runtime: Runtime,
) -> Iterator[Update]:
    """Stream one cycle: (chat messages, status line, totals) after every finished step."""
    session_id = _session_id(request)
    messages: list[dict[str, Any]] = []
    try:
        cycle = runtime.prepare_cycle(
            agent=agent,
            task=task,
            models={"default": model},
            api_base=api_base or None,
            session_id=session_id,
        )
    except UsageError as e:
        yield messages, f"❌ {e}", ""
        return
    messages.append({"role": "user", "content": task.strip()})
    yield messages, f"⏳ Running {agent} with {model} ...", ""
    with _running_lock:
        _running[session_id] = cycle
    try:
        steps = 0
        for step in cycle:
            steps += 1
            messages.extend(step_messages(step))
            yield messages, f"⏳ Running {agent} with {model} ... {steps} step(s) so far", ""
    finally:
        with _running_lock:
            _running.pop(session_id, None)
    result = cycle.result
    assert result is not None
    status = "❌ Cycle failed" if result.failed else "✅ Cycle finished"
    yield messages, status, totals_markdown(result, runtime.trace_url(result.trace_id))


def stop_cycle(request: gr.Request | None = None) -> str:
    with _running_lock:
        cycle = _running.get(_session_id(request))
    if cycle is None:
        return "Nothing is running."
    cycle.stop()
    return "⏹ Stopping after the current step ..."


def build_run_tab(runtime: Runtime) -> None:
    """The Run tab's components and events; call inside a `gr.Blocks` / `gr.Tab` context."""
    names = agents.names()
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            agent = gr.Dropdown(names, value=names[0], label="Agent", elem_id="run-agent")
            model = gr.Dropdown(
                list(dict.fromkeys([runtime.settings.model, *SUGGESTED_MODELS])),
                value=runtime.settings.model,
                allow_custom_value=True,
                label="Model",
                info="Any LiteLLM model id; `local` is the bundled SmolLM2-135M (offline, tiny).",
                elem_id="run-model",
            )
            api_base = gr.Textbox(
                value=runtime.settings.api_base or "",
                label="API base (optional)",
                placeholder="http://127.0.0.1:8000/v1 for an OpenAI-compatible server",
                elem_id="run-api-base",
            )
            task = gr.Textbox(
                label="Task",
                lines=3,
                placeholder="e.g. Recall what you know about my energy and decide the next action.",
                elem_id="run-task",
            )
            with gr.Row():
                run = gr.Button("Run cycle", variant="primary", elem_id="run-button")
                stop = gr.Button("Stop", variant="stop", elem_id="stop-button")
            status = gr.Markdown("Ready.", elem_id="run-status")
            totals = gr.Markdown("", elem_id="run-totals")
        with gr.Column(scale=2):
            chat = gr.Chatbot(
                label="Steps",
                height=640,
                elem_id="run-chat",
                buttons=["copy_all"],
                feedback_options=None,
                placeholder="Each step appears here as it finishes: thought, code, tool calls, observations, errors.",
            )
    inputs = [agent, model, api_base, task]
    outputs = [chat, status, totals]

    # a named function, not functools.partial: Gradio finds the gr.Request parameter by type hints,
    # which it cannot read through a partial (the session would then be unknown to Stop)
    def handler(agent: str, model: str, api_base: str, task: str, request: gr.Request) -> Iterator[Update]:
        yield from run_cycle(agent, model, api_base, task, request, runtime=runtime)

    run.click(handler, inputs=inputs, outputs=outputs, api_name="run_cycle")
    task.submit(handler, inputs=inputs, outputs=outputs, api_name=False)
    stop.click(stop_cycle, inputs=None, outputs=status, api_name="stop_cycle")
