"""The Run tab: pick an agent and a model per role, type a task, watch each step stream in;
or run the heartbeat loop (N cycles at an interval, one session) and watch the memory state change."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from cogscope import agents
from cogscope.defaults import LINK_WAIT_S
from cogscope.telemetry import Cycle

from .errors import UsageError
from .heartbeat_loop import heartbeat_cycles
from .inputs import MAX_LOOP_CYCLES, check_cycles, parse_lines, parse_options
from .models import SUGGESTED_MODELS
from .render import LiveWords, fence, inline, redacted, step_messages, totals_markdown, trace_link_markdown
from .runtime import Runtime
from .sessions import Running, key_of, session_of, user_of
from .slots import API, LOCAL, RUNNING, Ticket
from .trust import OPERATOR, Policy

# per-role model pickers shown under the default model (consciousness has three roles; on_run/on_loop name three)
ROLE_SLOTS = 3
Update = tuple[list[dict[str, Any]], str, str, str]  # chat, status, totals, memory state


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
        return f"#### Memory state\n❌ {inline(e)}"


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
    shown = ""
    for item in cycle:
        if isinstance(item, ChatMessageStreamDelta):
            words.add(item)
            text = words.text()
            if text and draft is None:
                draft = {"role": "assistant", "content": fence(text), "metadata": {"title": WRITING}}
                messages.append(draft)
            elif draft is None or text == shown:
                continue
            draft["content"], shown = fence(text), text
            # words that are already followed by more go out with those: each update makes Gradio diff and send
            # the whole chat, and a busy shared app would fall behind the model doing that for every word
            if not cycle.backlog():
                yield f"⏳ {label} ... step {steps + 1}: the model is writing"
            continue
        if draft is not None:
            messages.remove(draft)
        draft, words, shown = None, LiveWords(), ""
        steps += 1
        messages.extend(step_messages(item))
        yield f"⏳ {label} ... {steps} step(s) so far"


LEFT_LINE = "⏹ Left the line: the cycle did not run."  # said by Stop and by the cycle, whichever comes last


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def waiting_status(ticket: Ticket, runtime: Runtime) -> str:
    """What a cycle waiting in line shows: its place, and what it waits for."""
    slots = runtime.slots
    what = "cycles on the bundled model" if ticket.lane == LOCAL else "cycles on API models"
    return (
        f"⏳ Waiting in line: {_ordinal(ticket.position())} for a free slot "
        f"({slots.running(ticket.lane)} of {slots.limits[ticket.lane]} {what} are running on this server). "
        "Stop leaves the line."
    )


def await_slot(cycle: Cycle, running: Running, request: gr.Request | None, *, runtime: Runtime) -> Iterator[str]:
    """Take a slot for `cycle` (ui.slots), yielding its waiting status while it waits in line; sets
    `running.ticket`. A cycle that leaves the line (Stop) is discarded and `running.ticket` is None after."""
    ticket = runtime.slots.ask(
        runtime.lane(cycle), owner=user_of(request) or "", session=session_of(request), label=cycle.spec.agent
    )
    running.ticket = ticket
    shown = ""
    while not ticket.wait(0.5):
        if not ticket.waiting:  # it left the line
            break
        status = waiting_status(ticket, runtime)
        if status != shown:
            shown = status
            yield status
    if ticket.state != RUNNING:
        ticket.release()
        running.ticket = None
        cycle.discard()


def _let_go(running: Running) -> None:
    """Give back the slot (or place in line) of the session's cycle, if it holds one."""
    if running.ticket is not None:
        running.ticket.release()
        running.ticket = None


def run_cycle(form: Form, task: str, request: gr.Request | None, *, runtime: Runtime) -> Iterator[Update]:
    """Stream one cycle: (chat messages, status, totals, memory state) after every finished step."""
    messages: list[dict[str, Any]] = []
    try:
        inputs = form.cycle_inputs(runtime.policy)
        cycle = runtime.prepare_cycle(task=task, session_id=session_of(request), user=user_of(request), **inputs)
    except UsageError as e:
        yield messages, f"❌ {inline(e)}", "", gr.skip()
        return
    running = runtime.running.enter(request, cycle=cycle)
    messages.append({"role": "user", "content": fence(redacted(task.strip()))})
    label = f"Running {form.agent}"
    try:
        for status in await_slot(cycle, running, request, runtime=runtime):
            yield messages, status, "", gr.skip()
        if running.ticket is None:
            yield messages, LEFT_LINE, "", gr.skip()
            return
        yield messages, f"⏳ {label} ...", "", gr.skip()
        for status in _stream(cycle, messages, label):
            yield messages, status, "", gr.skip()
    finally:  # also when the page goes away mid-wait: a cycle that never started lets go of what it holds
        running.cycle = None
        cycle.discard()
        _let_go(running)
        runtime.running.forget(request, running)
    result = cycle.result
    assert result is not None
    status = "❌ Cycle failed" if result.failed else "✅ Cycle finished"
    totals = totals_markdown(result, _link(runtime, result.trace_id, LINK_WAIT_S))
    yield messages, status, totals, memory_state(inputs["options"])


@dataclass
class _Loop:
    """A heartbeat loop started from the Run tab: its cycles, how many, what stops it, the first one built."""

    cycles: Iterator[tuple[int, Cycle]]
    count: int
    stop: threading.Event
    first: tuple[int, Cycle]
    task: str
    options: dict[str, Any]


def _start_loop(
    form: Form, task: str, cycles: float, interval: float, request: gr.Request | None, runtime: Runtime
) -> _Loop:
    """Check the loop's fields and build its first cycle's agent now, so bad input shows before anything runs
    (UsageError)."""
    inputs = form.cycle_inputs(runtime.policy)
    count = check_cycles(cycles, "Cycles")
    if interval is None or not interval >= 0:
        raise UsageError("the loop needs an interval of 0 seconds or more")
    stop = threading.Event()
    loop = heartbeat_cycles(
        runtime,
        cycles=count,
        interval=float(interval),
        stop=stop,
        task=task,
        session_id=f"heartbeat-{uuid.uuid4().hex[:8]}",
        user=user_of(request),
        **inputs,
    )
    first = next(loop)
    return _Loop(loop, count, stop, first, task, inputs["options"])


def _loop_cycle(
    loop: _Loop,
    number: int,
    cycle: Cycle,
    running: Running,
    messages: list[dict[str, Any]],
    summaries: list[str],
    request: gr.Request | None,
    runtime: Runtime,
) -> Generator[Update, None, bool]:
    """One cycle of a loop: wait for its slot, stream it, add its summary. False when Stop took it out of line."""
    count = loop.count
    running.cycle = cycle
    messages.append({"role": "user", "content": f"Cycle {number}/{count}:\n\n{fence(redacted(loop.task))}"})
    summaries[:] = [_landed(summary, runtime) for summary in summaries]
    for status in await_slot(cycle, running, request, runtime=runtime):
        yield messages, f"Cycle {number}/{count}: {status}", "\n\n".join(summaries), gr.skip()
    if running.ticket is None:
        return False  # Stop while it waited: the loop ends here
    yield messages, f"⏳ Heartbeat cycle {number}/{count} ...", "\n\n".join(summaries), gr.skip()
    try:
        for status in _stream(cycle, messages, f"Heartbeat cycle {number}/{count}"):
            yield messages, status, "\n\n".join(summaries), gr.skip()
    finally:
        _let_go(running)
    result = cycle.result
    assert result is not None
    link = _link(runtime, result.trace_id, LINK_WAIT_S)
    summaries.append(f"**Cycle {number}**: " + totals_markdown(result, link))
    yield messages, f"Cycle {number}/{count} done", "\n\n".join(summaries), memory_state(loop.options)
    return True


def _loop_cycles(
    loop: _Loop,
    running: Running,
    messages: list[dict[str, Any]],
    summaries: list[str],
    request: gr.Request | None,
    runtime: Runtime,
) -> Generator[Update, None, bool]:
    """Every cycle of a loop in turn, until the last or Stop (True), or a cycle that cannot be built (said;
    False: the loop ends without its final status)."""
    number, cycle = loop.first
    while True:
        ran = yield from _loop_cycle(loop, number, cycle, running, messages, summaries, request, runtime)
        if not ran:
            return True
        try:
            number, cycle = next(loop.cycles)
        except StopIteration:
            return True
        except UsageError as e:
            yield messages, f"❌ {inline(e)}", "\n\n".join(summaries), gr.skip()
            return False


def run_loop(
    form: Form, task: str, cycles: float, interval: float, request: gr.Request | None, *, runtime: Runtime
) -> Iterator[Update]:
    """The heartbeat loop in the browser: every cycle streams in turn, the memory state after each.

    Each cycle takes a slot of its own (ui.slots), so a loop's intervals leave room for others' cycles."""
    messages: list[dict[str, Any]] = []
    task = (task or "").strip() or agents.DEFAULT_TASK
    try:
        loop = _start_loop(form, task, cycles, interval, request, runtime)
    except UsageError as e:
        yield messages, f"❌ {inline(e)}", "", gr.skip()
        return
    running = runtime.running.enter(request, loop_stop=loop.stop)
    summaries: list[str] = []
    try:
        ended = yield from _loop_cycles(loop, running, messages, summaries, request, runtime)
    finally:
        if running.cycle is not None:
            running.cycle.discard()  # a cycle that never started (the page went away while it waited)
        running.cycle = None
        running.loop_stop = None
        _let_go(running)
        runtime.running.forget(request, running)
    if not ended:
        return
    done = len(summaries)
    status = f"✅ Loop finished: {done} cycle(s)" if done == loop.count else f"⏹ Loop stopped after {done} cycle(s)"
    yield messages, status, "\n\n".join(summaries), gr.skip()


def stop(request: gr.Request | None = None, *, runtime: Runtime) -> str:
    """Stop: a loop ends after the current cycle; a single cycle after the current step."""
    running = runtime.running.get(request)
    if running is None:
        return "Nothing is running."
    ticket = running.ticket
    if ticket is not None and ticket.cancel():  # it was waiting in line: it leaves the line, nothing ran
        if running.loop_stop is not None:
            running.loop_stop.set()
        return LEFT_LINE
    if running.loop_stop is not None:
        running.loop_stop.set()
        return "⏹ Stopping the loop after the current cycle ..."
    if running.cycle is not None:
        running.cycle.stop()
        return "⏹ Stopping after the current step ..."
    return "Nothing is running."


def server_markdown(runtime: Runtime, request: gr.Request | None = None) -> str:
    """The cycles running and waiting on this server, whoever started them (names only, never tasks)."""
    slots = runtime.slots
    tickets = slots.tickets()
    head = (
        f"**On this server:** {slots.running(API)} of {slots.limits[API]} API-model slots busy, "
        f"{slots.running(LOCAL)} of {slots.limits[LOCAL]} bundled-model slots busy"
        + (f", {sum(t.waiting for t in tickets)} waiting" if any(t.waiting for t in tickets) else "")
    )
    if not tickets:
        return head
    me = key_of(request)
    now = time.time()
    rows = ["| who | agent | state | for |", "| --- | --- | --- | --- |"]
    for ticket in tickets:
        who = ticket.owner or "—"
        if (ticket.owner, ticket.session) == me:
            who += " (you)"
        state = f"waiting, {_ordinal(ticket.position())} in line" if ticket.waiting else "running"
        rows.append(f"| {escape_cell(who)} | {escape_cell(ticket.label)} | {state} | {now - ticket.asked_at:.0f} s |")
    return head + "\n\n" + "\n".join(rows)


def escape_cell(text: str) -> str:
    return redacted(str(text)).replace("|", "\\|").replace("\n", " ")[:60]


WAITING_ROOM = 64  # cycles that may wait in line in ui.slots; more wait in Gradio's own queue


def cycle_events_limit(runtime: Runtime) -> int:
    """How many Run / Start loop events Gradio runs at once: every slot plus the waiting room."""
    return runtime.settings.max_cycles + runtime.settings.max_local_cycles + WAITING_ROOM


def agent_changed(agent: str, policy: Policy = OPERATOR) -> tuple[Any, ...]:
    """Show one model picker per role of the chosen agent, and what the agent is."""
    try:
        policy.check_agent(agent or "")  # before importing anything a remote user typed
        spec = agents.get(agent or "")
    except (agents.AgentsError, UsageError) as e:
        return (f"❌ {inline(e)}", *[gr.update(visible=False)] * ROLE_SLOTS)
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


@dataclass
class _RunTab:
    """The Run tab's components, the events wire them (`_wire_run_tab`)."""

    agent: Any
    agent_info: Any
    model: Any
    role_models: list[Any]
    task: Any
    api_base: Any
    options: Any
    mcp: Any
    run: Any = None
    stop_button: Any = None
    cycles: Any = None
    interval: Any = None
    loop: Any = None
    status: Any = None
    totals: Any = None
    server: Any = None
    state: Any = None
    chat: Any = None


def _folded_fields(runtime: Runtime) -> tuple[Any, Any, Any]:
    """API base, options and MCP servers, folded away under the task."""
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
    return api_base, options, mcp


def _cycle_fields(runtime: Runtime) -> _RunTab:
    """Agent, models, task, and (folded) API base, options and MCP servers."""
    names = agents.names()
    model_choices = list(dict.fromkeys([runtime.settings.model, *SUGGESTED_MODELS]))
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
    api_base, options, mcp = _folded_fields(runtime)
    return _RunTab(agent, agent_info, model, role_models, task, api_base, options, mcp)


def _controls_and_panels(tab: _RunTab, runtime: Runtime) -> None:
    """Run / Stop, the (folded) heartbeat loop, then the status, totals, server and memory state panels."""
    with gr.Row():
        tab.run = gr.Button("Run cycle", variant="primary", elem_id="run-button")
        tab.stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button")
    with gr.Accordion("Heartbeat loop", open=False, elem_id="loop-accordion"):
        with gr.Row():
            # bounds checked by run_loop (check_cycles), which says what is wrong in the status line
            tab.cycles = gr.Number(
                value=3, precision=0, label="Cycles", info=f"1 to {MAX_LOOP_CYCLES:,}", elem_id="loop-cycles"
            )
            tab.interval = gr.Number(value=5, minimum=0, label="Interval (s)", elem_id="loop-interval")
        tab.loop = gr.Button("Start loop", elem_id="loop-button")
    tab.status = gr.Markdown("Ready.", elem_id="run-status")
    tab.totals = gr.Markdown("", elem_id="run-totals")
    tab.server = gr.Markdown(server_markdown(runtime), elem_id="run-server")
    tab.state = gr.Markdown(memory_state({}), elem_id="run-state", label="Memory state")


def build_run_tab(runtime: Runtime) -> None:
    """The Run tab's components and events; call inside a `gr.Blocks` / `gr.Tab` context."""
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            tab = _cycle_fields(runtime)
            _controls_and_panels(tab, runtime)
        with gr.Column(scale=2):
            tab.chat = gr.Chatbot(
                label="Steps",
                height=720,
                elem_id="run-chat",
                buttons=["copy_all"],
                feedback_options=None,
                placeholder="Each step appears here as it finishes: thought, code, tool calls, observations, errors.",
            )
    _wire_run_tab(tab, runtime)


# named functions with explicit parameters, not functools.partial or *args: Gradio finds the gr.Request parameter
# by its type hint (Stop needs the session), and it cannot see one through those
def _on_run(runtime: Runtime) -> Callable[..., Iterator[Update]]:
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

    return on_run


def _on_loop(runtime: Runtime) -> Callable[..., Iterator[Update]]:
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

    return on_loop


def _wire_run_tab(tab: _RunTab, runtime: Runtime) -> None:
    form_fields = [tab.agent, tab.model, *tab.role_models, tab.api_base, tab.options, tab.mcp]
    outputs = [tab.chat, tab.status, tab.totals, tab.state]
    on_run, on_loop = _on_run(runtime), _on_loop(runtime)
    # cycles wait for their slot in ui.slots (their place in line shown), not in Gradio's queue: these events may
    # run up to cycle_events_limit at once, and nothing else shares their concurrency group
    cycle_events = {"concurrency_id": "cycles", "concurrency_limit": cycle_events_limit(runtime)}
    tab.run.click(on_run, inputs=[*form_fields, tab.task], outputs=outputs, api_name="run_cycle", **cycle_events)
    tab.task.submit(on_run, inputs=[*form_fields, tab.task], outputs=outputs, api_name=False, **cycle_events)
    loop_inputs = [*form_fields, tab.task, tab.cycles, tab.interval]
    tab.loop.click(on_loop, inputs=loop_inputs, outputs=outputs, api_name="heartbeat_loop", **cycle_events)

    def on_stop(request: gr.Request) -> str:
        return stop(request, runtime=runtime)

    tab.stop_button.click(on_stop, inputs=None, outputs=tab.status, api_name="stop", concurrency_limit=None)

    def on_tick(text: str) -> Any:
        return refresh_links(text, runtime=runtime)

    # a trace that was "pending upload" when its cycle ended gets its link here once it lands
    timer = gr.Timer(2.0)
    # api_name=False (no API endpoint) works in Gradio 6 but its hints say str | None
    timer.tick(on_tick, inputs=tab.totals, outputs=tab.totals, api_name=False, show_progress="hidden", queue=False)  # type: ignore[arg-type]

    def on_server_tick(request: gr.Request) -> str:
        return server_markdown(runtime, request)

    gr.Timer(2.0).tick(on_server_tick, outputs=tab.server, api_name=False, show_progress="hidden", queue=False)  # type: ignore[arg-type]

    def on_agent_changed(agent: str) -> tuple[Any, ...]:
        return agent_changed(agent, runtime.policy)

    tab.agent.change(on_agent_changed, inputs=tab.agent, outputs=[tab.agent_info, *tab.role_models], api_name=False)
