"""The Run tab: pick an agent and a model per role, type a task, watch each step stream in;
or run the heartbeat loop (N cycles at an interval, one session) and watch the memory state change."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

import agents
from telemetry import Cycle

from .errors import UsageError
from .heartbeat_loop import heartbeat_cycles
from .inputs import parse_lines, parse_options
from .models import SUGGESTED_MODELS
from .render import LiveWords, redacted, step_messages, totals_markdown, trace_link_markdown
from .runtime import Runtime
from .trust import OPERATOR, Policy

# per-role model pickers shown under the default model (consciousness has three roles; on_run/on_loop name three)
ROLE_SLOTS = 3
Update = tuple[list[dict[str, Any]], str, str, str]  # chat, status, totals, memory state


@dataclass
class _Running:
    cycle: Cycle | None = None
    loop_stop: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_running: dict[str, _Running] = {}
_running_lock = threading.Lock()


def _session_id(request: gr.Request | None) -> str:
    return f"ui-{request.session_hash}" if request is not None and request.session_hash else "ui"


def _running_for(session_id: str) -> _Running:
    with _running_lock:
        return _running.setdefault(session_id, _Running())


@dataclass(frozen=True)
class Form:
    """The Run tab's fields, as typed."""

    agent: str
    model: str
    role_models: tuple[str, ...]
    api_base: str
    options: str
    mcp: str

    @classmethod
    def of(cls, agent: str, model: str, roles: tuple[str, ...], api_base: str, options: str, mcp: str) -> Form:
        """From the fields as Gradio passes them (None for an untouched field)."""
        return cls(agent or "", model or "", tuple(r or "" for r in roles), api_base or "", options or "", mcp or "")

    def cycle_inputs(self, policy: Policy = OPERATOR) -> dict[str, Any]:
        """Form -> the keyword arguments of Runtime.prepare_cycle (UsageError on bad input).

        What the policy forbids is refused before anything is imported or started.
        """
        policy.check_agent(self.agent)
        policy.check_mcp(parse_lines(self.mcp))
        try:
            spec = agents.get(self.agent or "")
        except agents.AgentsError as e:
            raise UsageError(str(e)) from None
        models = {"default": self.model}
        for role, model_id in zip([r for r in spec.roles if r != "default"], self.role_models, strict=False):
            if model_id and model_id.strip():
                models[role] = model_id.strip()
        return {
            "agent": self.agent,
            "models": models,
            "api_base": self.api_base or None,
            "options": parse_options([self.options]),
            "mcp": parse_lines(self.mcp),
        }


def memory_state(options: dict[str, Any]) -> str:
    try:
        return "#### Memory state\n" + redacted(agents.state_markdown(agents.open_store(options.get("memory"))))
    except agents.AgentsError as e:
        return f"#### Memory state\n❌ {redacted(e)}"


LINK_WAIT_S = 3.0  # how long a finished cycle waits for its spans to reach Phoenix before saying "pending"
PENDING = re.compile(r"Trace `([0-9a-f]{32})` · ⏳ [^\n]*")


def _link(runtime: Runtime, trace_id: str, wait: float = 0.0) -> str:
    if not trace_id:
        return "no trace"
    return trace_link_markdown(*runtime.trace_link(trace_id, wait=wait))


def _landed(text: str, runtime: Runtime) -> str:
    """`text` with each "trace pending upload" brought up to date (a link once the trace has landed)."""
    return PENDING.sub(lambda m: f"Trace `{m.group(1)}` · {_link(runtime, m.group(1))}", text)


def refresh_links(totals: str, *, runtime: Runtime) -> Any:
    """Every few seconds: turn each "trace pending upload" in the totals into its link once the trace has landed."""
    if not totals or "⏳" not in totals:
        return gr.skip()
    fresh = _landed(totals, runtime)
    return gr.skip() if fresh == totals else fresh


WRITING = "✍️ The model is writing ..."


def _stream(cycle: Cycle, messages: list[dict[str, Any]], label: str) -> Iterator[str]:
    """Each finished step as chat messages; meanwhile the model's words as they come, in a message of their own
    that the finished step replaces."""
    from smolagents import ChatMessageStreamDelta

    steps = 0
    words = LiveWords()
    draft: dict[str, Any] | None = None
    for item in cycle:
        if isinstance(item, ChatMessageStreamDelta):
            words.add(item)
            text = words.text()
            if text and draft is None:
                draft = {"role": "assistant", "content": text, "metadata": {"title": WRITING}}
                messages.append(draft)
                yield f"⏳ {label} ... step {steps + 1}: the model is writing"
            elif draft is not None and text != draft["content"]:
                draft["content"] = text
                yield f"⏳ {label} ... step {steps + 1}: the model is writing"
            continue
        if draft is not None:
            messages.remove(draft)
        draft, words = None, LiveWords()
        steps += 1
        messages.extend(step_messages(item))
        yield f"⏳ {label} ... {steps} step(s) so far"


def run_cycle(form: Form, task: str, request: gr.Request | None, *, runtime: Runtime) -> Iterator[Update]:
    """Stream one cycle: (chat messages, status, totals, memory state) after every finished step."""
    session_id = _session_id(request)
    messages: list[dict[str, Any]] = []
    try:
        inputs = form.cycle_inputs(runtime.policy)
        cycle = runtime.prepare_cycle(task=task, session_id=session_id, **inputs)
    except UsageError as e:
        yield messages, f"❌ {redacted(e)}", "", gr.skip()
        return
    running = _running_for(session_id)
    running.cycle = cycle
    messages.append({"role": "user", "content": redacted(task.strip())})
    label = f"Running {form.agent}"
    yield messages, f"⏳ {label} ...", "", gr.skip()
    try:
        for status in _stream(cycle, messages, label):
            yield messages, status, "", gr.skip()
    finally:
        running.cycle = None
    result = cycle.result
    assert result is not None
    status = "❌ Cycle failed" if result.failed else "✅ Cycle finished"
    totals = totals_markdown(result, _link(runtime, result.trace_id, LINK_WAIT_S))
    yield messages, status, totals, memory_state(inputs["options"])


def run_loop(
    form: Form, task: str, cycles: float, interval: float, request: gr.Request | None, *, runtime: Runtime
) -> Iterator[Update]:
    """The heartbeat loop in the browser: every cycle streams in turn, the memory state after each."""
    session_id = _session_id(request)
    messages: list[dict[str, Any]] = []
    task = (task or "").strip() or agents.DEFAULT_TASK
    try:
        inputs = form.cycle_inputs(runtime.policy)
        count = int(cycles or 0)
        if count < 1 or interval is None or interval < 0:
            raise UsageError("the loop needs at least 1 cycle and an interval of 0 seconds or more")
        # build the first cycle's agent now, so bad input shows before anything runs
        loop = heartbeat_cycles(
            runtime,
            cycles=count,
            interval=float(interval),
            stop=(stop := threading.Event()),
            task=task,
            session_id=f"heartbeat-{uuid.uuid4().hex[:8]}",
            **inputs,
        )
        first = next(loop)
    except UsageError as e:
        yield messages, f"❌ {redacted(e)}", "", gr.skip()
        return
    running = _running_for(session_id)
    running.loop_stop = stop
    summaries: list[str] = []
    try:
        number, cycle = first
        while True:
            running.cycle = cycle
            messages.append({"role": "user", "content": redacted(f"Cycle {number}/{count}: {task}")})
            summaries = [_landed(summary, runtime) for summary in summaries]
            yield messages, f"⏳ Heartbeat cycle {number}/{count} ...", "\n\n".join(summaries), gr.skip()
            for status in _stream(cycle, messages, f"Heartbeat cycle {number}/{count}"):
                yield messages, status, "\n\n".join(summaries), gr.skip()
            result = cycle.result
            assert result is not None
            link = _link(runtime, result.trace_id, LINK_WAIT_S)
            summaries.append(f"**Cycle {number}**: " + totals_markdown(result, link))
            yield messages, f"Cycle {number}/{count} done", "\n\n".join(summaries), memory_state(inputs["options"])
            try:
                number, cycle = next(loop)
            except StopIteration:
                break
            except UsageError as e:
                yield messages, f"❌ {redacted(e)}", "\n\n".join(summaries), gr.skip()
                return
    finally:
        running.cycle = None
        running.loop_stop = None
    done = len(summaries)
    status = f"✅ Loop finished: {done} cycle(s)" if done == count else f"⏹ Loop stopped after {done} cycle(s)"
    yield messages, status, "\n\n".join(summaries), gr.skip()


def stop(request: gr.Request | None = None) -> str:
    """Stop: a loop ends after the current cycle; a single cycle after the current step."""
    running = _running_for(_session_id(request))
    if running.loop_stop is not None:
        running.loop_stop.set()
        return "⏹ Stopping the loop after the current cycle ..."
    if running.cycle is not None:
        running.cycle.stop()
        return "⏹ Stopping after the current step ..."
    return "Nothing is running."


def agent_changed(agent: str, policy: Policy = OPERATOR) -> tuple[Any, ...]:
    """Show one model picker per role of the chosen agent, and what the agent is."""
    try:
        policy.check_agent(agent or "")  # before importing anything a remote user typed
        spec = agents.get(agent or "")
    except (agents.AgentsError, UsageError) as e:
        return (f"❌ {redacted(e)}", *[gr.update(visible=False)] * ROLE_SLOTS)
    roles = [r for r in spec.roles if r != "default"]
    options = ", ".join(f"`{k}`" for k in spec.options) or "none"
    summary = f"{spec.summary}  \nOptions: {options}"
    updates = [
        gr.update(visible=True, label=f"Model for {role}", value="")
        if i < len(roles)
        else gr.update(visible=False, value="")
        for i, role in enumerate(roles + [""] * (ROLE_SLOTS - len(roles)))
    ]
    return (summary, *updates)


def build_run_tab(runtime: Runtime) -> None:
    """The Run tab's components and events; call inside a `gr.Blocks` / `gr.Tab` context."""
    names = agents.names()
    model_choices = list(dict.fromkeys([runtime.settings.model, *SUGGESTED_MODELS]))
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            agent = gr.Dropdown(
                names,
                value=names[0],
                label="Agent",
                allow_custom_value=True,
                elem_id="run-agent",
                info="A registry name, path/to/file.py:factory or package.module:factory"
                if runtime.policy.runs_anything
                else "A registered agent (agent files and modules are for the operator only)",
            )
            agent_info = gr.Markdown(agent_changed(names[0])[0], elem_id="run-agent-info")
            model = gr.Dropdown(
                model_choices,
                value=runtime.settings.model,
                allow_custom_value=True,
                label="Model",
                info="Any LiteLLM model id; `local` is the bundled SmolLM2-135M (offline, tiny). Serves every role.",
                elem_id="run-model",
            )
            role_models = [
                gr.Dropdown(
                    model_choices,
                    value="",
                    allow_custom_value=True,
                    visible=False,
                    label=f"Model for role {i + 1}",
                    info="Blank: the model above.",
                    elem_id=f"run-role-model-{i}",
                )
                for i in range(ROLE_SLOTS)
            ]
            task = gr.Textbox(
                label="Task",
                lines=3,
                placeholder="e.g. Recall what you know about my energy and decide the next action.",
                elem_id="run-task",
            )
            with gr.Accordion("API base, options, MCP servers", open=False):
                api_base = gr.Textbox(
                    value=runtime.settings.api_base or "",
                    label="API base (optional)",
                    placeholder="http://127.0.0.1:8000/v1 for an OpenAI-compatible server",
                    elem_id="run-api-base",
                )
                options = gr.Textbox(
                    label="Options (KEY=VALUE, one per line)",
                    lines=2,
                    placeholder="max_steps=4",
                    elem_id="run-options",
                )
                mcp = gr.Textbox(
                    label="MCP servers (one command per line)"
                    + ("" if runtime.policy.runs_anything else ": only those the operator allowed"),
                    lines=2,
                    placeholder="cogscope mcp-serve",
                    elem_id="run-mcp",
                )
            with gr.Row():
                run = gr.Button("Run cycle", variant="primary", elem_id="run-button")
                stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button")
            with gr.Accordion("Heartbeat loop", open=False, elem_id="loop-accordion"):
                with gr.Row():
                    cycles = gr.Number(value=3, precision=0, minimum=1, label="Cycles", elem_id="loop-cycles")
                    interval = gr.Number(value=5, minimum=0, label="Interval (s)", elem_id="loop-interval")
                loop = gr.Button("Start loop", elem_id="loop-button")
            status = gr.Markdown("Ready.", elem_id="run-status")
            totals = gr.Markdown("", elem_id="run-totals")
            state = gr.Markdown(memory_state({}), elem_id="run-state", label="Memory state")
        with gr.Column(scale=2):
            chat = gr.Chatbot(
                label="Steps",
                height=720,
                elem_id="run-chat",
                buttons=["copy_all"],
                feedback_options=None,
                placeholder="Each step appears here as it finishes: thought, code, tool calls, observations, errors.",
            )
    form_fields = [agent, model, *role_models, api_base, options, mcp]
    outputs = [chat, status, totals, state]

    # named functions with explicit parameters, not functools.partial or *args: Gradio finds the
    # gr.Request parameter by its type hint (Stop needs the session), and it cannot see one through those
    def on_run(
        agent: str,
        model: str,
        role_0: str,
        role_1: str,
        role_2: str,
        api_base: str,
        options: str,
        mcp: str,
        task: str,
        request: gr.Request,
    ) -> Iterator[Update]:
        form = Form.of(agent, model, (role_0, role_1, role_2), api_base, options, mcp)
        yield from run_cycle(form, task, request, runtime=runtime)

    def on_loop(
        agent: str,
        model: str,
        role_0: str,
        role_1: str,
        role_2: str,
        api_base: str,
        options: str,
        mcp: str,
        task: str,
        cycles: float,
        interval: float,
        request: gr.Request,
    ) -> Iterator[Update]:
        form = Form.of(agent, model, (role_0, role_1, role_2), api_base, options, mcp)
        yield from run_loop(form, task, cycles, interval, request, runtime=runtime)

    run.click(on_run, inputs=[*form_fields, task], outputs=outputs, api_name="run_cycle")
    task.submit(on_run, inputs=[*form_fields, task], outputs=outputs, api_name=False)
    loop.click(on_loop, inputs=[*form_fields, task, cycles, interval], outputs=outputs, api_name="heartbeat_loop")
    stop_button.click(stop, inputs=None, outputs=status, api_name="stop")

    def on_tick(text: str) -> Any:
        return refresh_links(text, runtime=runtime)

    # a trace that was "pending upload" when its cycle ended gets its link here once it lands
    gr.Timer(2.0).tick(on_tick, inputs=totals, outputs=totals, api_name=False, show_progress="hidden", queue=False)

    def on_agent_changed(agent: str) -> tuple[Any, ...]:
        return agent_changed(agent, runtime.policy)

    agent.change(on_agent_changed, inputs=agent, outputs=[agent_info, *role_models], api_name=False)
