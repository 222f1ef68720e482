"""The Traces tab: recent cycles (filter the failed ones), step through one, replay it or fork it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import gradio as gr
import pandas as pd

from cogscope import agents
from cogscope.defaults import LINK_WAIT_S, VALUE_LIMIT
from cogscope.telemetry import (
    STATUSES,
    CycleFilter,
    Recording,
    ReplayError,
    StepView,
    counted,
    list_cycles,
    trace_tables,
    usd,
)

from .bundle_panel import bundle_controls, wire_bundle_controls
from .cycle_state import LIVE_BOX, keeps_state
from .errors import UsageError
from .inputs import TIME_WINDOWS, parse_lines, parse_options
from .models import SUGGESTED_MODELS
from .pickers import SOURCES, chosen_project, chosen_user, project_pickers
from .render import (
    STATUS_LABELS,
    fence,
    inline,
    messages_markdown,
    redacted,
    step_markdown,
    step_messages,
    step_title,
    totals_text,
    truncate,
    usd_cells,
)
from .rollback_panel import build_rollback_panel, rollback_button
from .runtime import Runtime, UntrustedCode

TAB_ID = "traces"
PAGE_SIZE = 25
WINDOWS = TIME_WINDOWS
STATUS_CHOICES = ["all", "failed", *STATUSES]
TABLE_COLUMNS = ["time", "agent", "status", "steps", "LLM calls", "tokens", "duration", "cost", "task", "trace"]
NOT_HERE = "⚠ not recorded here"
CHANGED = "⚠ changed after recording"


def trust_marker(recorded_here: bool, changed: bool) -> str:
    """What the list adds after a cycle's agent: nothing for a cycle recorded here, else which doubt."""
    return "" if recorded_here else f" {CHANGED}" if changed else f" {NOT_HERE}"


def _cycle_filter(status: str, agent: str, window: str, text: str, source: str, user: str | None) -> CycleFilter:
    """The list's filters as a telemetry.CycleFilter ("all" and blanks: no filter)."""
    delta = WINDOWS.get(window)
    return CycleFilter(
        failed_only=status == "failed",
        status=status if status not in ("all", "failed") else None,
        agent=None if agent in ("", "all") else agent,
        text=(text or "").strip() or None,
        source=SOURCES.get(source),
        since=datetime.now(UTC) - delta if delta else None,
        user=user,
    )


def _nothing_caption(f: CycleFilter, status: str, project: str, window: str) -> str:
    """What the list says when no cycle is shown: which filter to loosen, or how to record a first cycle."""
    if status != "all" or f.agent or f.text or f.source or f.user:
        return (
            "No cycle matches these filters: choose status, agent and source `all`"
            + (", show everyone's cycles" if f.user else "")
            + ", clear the text, or widen the time window."
        )
    return (
        f"No cycles in project `{project}` ({window}): run one in the Run tab "
        "(or `cogscope run`), then press Refresh; or widen the time window."
    )


def _page_table(shown: pd.DataFrame, runtime: Runtime) -> pd.DataFrame:
    """The rows of one page, as shown (TABLE_COLUMNS; on a shared app, who started each cycle last)."""
    table = pd.DataFrame(
        {
            "time": shown["start_time"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "agent": shown["agent"].map(lambda a: a if len(a) <= 40 else "…" + a[-39:])
            + shown["replay_of"].map(lambda r: " ↻ replay" if isinstance(r, str) else "")
            + [trust_marker(h, c) for h, c in zip(shown["recorded_here"], shown["changed"], strict=True)],
            "status": shown["status"],
            "steps": shown["steps"],
            "LLM calls": shown["llm_calls"],
            "tokens": shown["tokens"],
            "duration": shown["duration_s"].map(lambda s: f"{s:.1f} s"),
            "cost": usd_cells(shown["cost_usd"]),
            "task": shown["task"].map(lambda t: truncate(t, 80)),
            "trace": [f"[{t[:12]}…]({runtime.trace_url(t)})" for t in shown["trace_id"]],
        },
        columns=TABLE_COLUMNS,
    )
    if runtime.signed_in:  # a shared app: who started each cycle (last, so the other columns keep their place)
        table["started by"] = shown["user"].map(lambda u: u if isinstance(u, str) else "").to_numpy()
    return table


def cycles_page(
    runtime: Runtime,
    status: str,
    agent: str,
    window: str,
    text: str,
    page: float,
    project: str | None = None,
    source: str = "all",
    user: str | None = None,
) -> tuple[pd.DataFrame, str, int, list[str]]:
    """One page of the cycles table, its caption, the page shown, and the trace ids in the table's order.

    `project`: any Phoenix project (default: the one cogscope records into); `source`: a key of SOURCES;
    `user`: only the cycles this user started (None: everyone's)."""
    project = chosen_project(runtime, project)
    f = _cycle_filter(status, agent, window, text, source, user)
    cycles = list_cycles(
        runtime.client(),
        project=project,
        prices=runtime.settings.prices,
        filter=f,
        signer=runtime.tracing.signer,
    )
    if cycles.empty:  # (an empty frame's columns are not typed: no .dt to format times with)
        return pd.DataFrame(columns=TABLE_COLUMNS), _nothing_caption(f, status, project, window), 1, []
    pages = max(1, math.ceil(len(cycles) / PAGE_SIZE))
    page_number = min(max(1, int(page or 1)), pages)
    shown = cycles.iloc[(page_number - 1) * PAGE_SIZE : page_number * PAGE_SIZE]
    caption = f"{len(cycles)} cycle(s) · page {page_number} of {pages} · click a row to step through it"
    return _page_table(shown, runtime), caption, page_number, shown["trace_id"].tolist()


def open_cycle(runtime: Runtime, trace_id: str, project: str | None = None) -> tuple[str, list[StepView], list[str]]:
    """(summary markdown, steps, step titles) of one trace of `project` (default: cogscope's); UsageError for a
    bad id."""
    frame = runtime.trace_frame(trace_id, (project or "").strip() or None)
    trace_id = trace_id.strip().lower()
    tables = trace_tables(frame, runtime.settings.prices)
    steps = tables.steps
    link = f"[Open in Phoenix]({runtime.trace_url(trace_id)})"
    totals = redacted(totals_text(tables.totals))
    try:
        rec = Recording.from_frame(frame, trace_id, signer=runtime.tracing.signer, prices=runtime.settings.prices)
    except ReplayError as e:
        status = (
            f"**{inline(STATUS_LABELS.get(str(tables.cycle['status']), tables.cycle['status']))}** · "
            if tables.cycle is not None
            else ""
        )
        return (
            f"{status}**Trace `{trace_id}`** · {totals} · read-only: {inline(e)} · {link}",
            steps,
            step_titles(steps),
        )
    replay_note = ""
    roots = frame[frame["parent_id"].isna()]
    if not roots.empty and isinstance(roots.iloc[0].get("attributes.cogscope.replay_of"), str):
        replay_note = f" · replay of {inline(roots.iloc[0]['attributes.cogscope.replay_of'])}"
    origin = (
        ""
        if rec.recorded_here
        else f"\n\n**{CHANGED}**: this installation recorded the cycle, but spans were added to its trace or changed "
        "since; replay will show what it would run and ask before starting any of it."
        if rec.changed
        else f"\n\n**{NOT_HERE}**: this cycle has no valid signature of this installation and may be forged; "
        "replay will show what it would run and ask before starting any of it."
    )
    mcp = f" · MCP {inline('; '.join(rec.mcp))}" if rec.mcp else ""
    state = (
        f" · started from state {inline(rec.state)}"
        if rec.state
        else " · no starting state kept"
        if keeps_state(rec.agent)
        else ""
    )
    summary = (
        f"**{inline(STATUS_LABELS.get(str(rec.status), rec.status))}** · agent {inline(rec.agent)}{mcp} · "
        f"{totals} · models {inline(', '.join(f'{r}={m}' for r, m in rec.models.items()))}"
        f"{state}{replay_note} · {link}\n\n"
        f"Task: {inline(truncate(rec.task, 500))}\n\nFinal answer: {inline(truncate(rec.final_answer, 500))}"
        f"{origin}"
    )
    return summary, steps, step_titles(steps)


def step_titles(steps: list[StepView]) -> list[str]:
    """The step list's labels: managed agents' steps indented under the step that called them."""
    return [("\u2003" * s.depth) + step_title(s) for s in steps]


@dataclass
class _Parts:
    """The Traces tab's components (built by the _*_section helpers, wired by the _wire_* helpers)."""

    project: Any
    source: Any
    whose: Any
    status: Any = None
    agent: Any = None
    window: Any = None
    text: Any = None
    failed: Any = None
    refresh: Any = None
    table: Any = None
    prev_page: Any = None
    caption: Any = None
    next_page: Any = None
    page: Any = None
    ids: Any = None
    trace_box: Any = None
    open_button: Any = None
    summary: Any = None
    bundles: Any = None
    steps_state: Any = None
    step_list: Any = None
    prev_step: Any = None
    next_step: Any = None
    whole: Any = None
    detail: Any = None
    messages: Any = None
    factory: Any = None
    factory_options: Any = None
    stub: Any = None
    replay_button: Any = None
    edited: Any = None
    fork_edit: Any = None
    live_model: Any = None
    fork_live: Any = None
    replay_report: Any = None
    trust: Any = None
    replay_chat: Any = None
    live_state: Any = None
    rollback: Any = None  # the operator's only (None on a shared app's remote users' page)

    @property
    def filters(self) -> list[Any]:
        """The list's filters; the API's parameters: the newer ones last."""
        return [self.status, self.agent, self.window, self.text, self.project, self.source, self.whose]

    @property
    def listed(self) -> list[Any]:
        return [self.table, self.caption, self.page, self.ids]

    @property
    def opened(self) -> list[Any]:
        """What opening a cycle fills (open_trace's outputs)."""
        return [self.summary, self.steps_state, self.step_list, self.detail, self.messages, self.edited]


def _list_section(parts: _Parts) -> None:
    """The filters, the cycles table and its pages."""
    with gr.Row():
        parts.status = gr.Dropdown(STATUS_CHOICES, value="all", label="Status", elem_id="traces-status", scale=1)
        parts.agent = gr.Dropdown(
            ["all", *agents.names()], value="all", label="Agent", allow_custom_value=True, scale=1
        )
        parts.window = gr.Dropdown(list(WINDOWS), value="last 7 days", label="Time window", scale=1)
        parts.text = gr.Textbox(label="Text in task", scale=2, elem_id="traces-text")
        parts.failed = gr.Button("Failed only", elem_id="traces-failed", scale=1)
        parts.refresh = gr.Button("Refresh", variant="primary", elem_id="traces-refresh", scale=1)
    parts.table = gr.Dataframe(
        headers=TABLE_COLUMNS,
        datatype=["str", "str", "str", "number", "number", "number", "str", "str", "str", "markdown"],
        interactive=False,
        wrap=True,
        # headers on one line, and every column in view on a 1,400 px window
        column_widths=["185px", "100px", "120px", "65px", "95px", "80px", "95px", "85px", "250px", "135px"],
        elem_id="traces-table",
        label="Cycles, newest first",
    )
    with gr.Row():
        parts.prev_page = gr.Button("◀ Newer", size="sm", elem_id="traces-prev-page")
        parts.caption = gr.Markdown("", elem_id="traces-caption")
        parts.next_page = gr.Button("Older ▶", size="sm", elem_id="traces-next-page")
    parts.page = gr.State(1)
    parts.ids = gr.State([])


def _step_section(parts: _Parts, runtime: Runtime, operator: bool) -> None:
    """A trace id to open, the cycle's summary (and, for the operator, the rollback to its starting state), its bundle
    (download, upload), its steps and the selected step."""
    with gr.Row():
        parts.trace_box = gr.Textbox(label="Trace id", placeholder="32 hex digits", elem_id="traces-trace-id", scale=4)
        parts.open_button = gr.Button("Open", elem_id="traces-open", scale=1)
    with gr.Row(equal_height=False):
        parts.summary = gr.Markdown("", elem_id="trace-summary")
        if operator:
            parts.rollback = rollback_button()
    if operator:
        build_rollback_panel(parts.rollback, runtime, parts.trace_box, parts.project)
    parts.bundles = bundle_controls(runtime)
    parts.steps_state = gr.State([])
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            parts.step_list = gr.Radio([], label="Steps", type="index", elem_id="trace-steps")
            with gr.Row():
                parts.prev_step = gr.Button("◀ Previous", elem_id="step-prev")
                parts.next_step = gr.Button("Next ▶", elem_id="step-next")
            parts.whole = gr.Checkbox(False, label="Show long values whole", elem_id="step-whole")
        with gr.Column(scale=3):
            parts.detail = gr.Markdown("", elem_id="step-detail")
            with gr.Accordion("Exact LLM input messages", open=False, elem_id="step-messages-accordion"):
                parts.messages = gr.Markdown("", elem_id="step-messages")


def _replay_section(parts: _Parts) -> None:
    """Replay or fork the open cycle (folded)."""
    with gr.Accordion("Replay or fork this cycle", open=False, elem_id="replay-accordion"):
        gr.Markdown(
            "**Replay** re-runs the recorded agent with the recorded model outputs: zero LLM calls. Tools run for "
            "real (to check a fix in tool code) unless stubbed. **Fork** replays up to the selected step, then "
            "uses your edited output for it, or a live model from it on."
        )
        with gr.Row():
            parts.factory = gr.Textbox(
                label="Factory (another app's cycle): package.module:function or path/file.py:function",
                placeholder="cogscope's own cycles name theirs; leave empty",
                elem_id="replay-factory",
                scale=2,
            )
            parts.factory_options = gr.Textbox(
                label="Its options: KEY=VALUE per line", lines=1, elem_id="replay-factory-options", scale=1
            )
        with gr.Row():
            parts.stub = gr.Checkbox(False, label="Stub tools (recorded outputs)", elem_id="replay-stub")
            parts.live_state = gr.Checkbox(
                False,
                label=f"{LIVE_BOX} (tools write to the live state; else a scratch copy of the cycle's starting state)",
                elem_id="replay-live-state",
            )
            parts.replay_button = gr.Button("Replay", variant="primary", elem_id="replay-button")
        parts.edited = gr.Textbox(label="Edited model output for the selected step", lines=5, elem_id="fork-output")
        with gr.Row():
            parts.fork_edit = gr.Button("Fork with this output", elem_id="fork-edit-button")
            parts.live_model = gr.Dropdown(
                SUGGESTED_MODELS, value=None, allow_custom_value=True, label="Live model", elem_id="fork-model"
            )
            parts.fork_live = gr.Button("Fork with live model", elem_id="fork-live-button")
        parts.replay_report = gr.Markdown("", elem_id="replay-report")
        parts.trust = gr.Checkbox(
            False, visible=False, label="Run the recorded code shown above", elem_id="replay-trust", interactive=True
        )
        parts.replay_chat = gr.Chatbot(label="Replay steps", height=400, elem_id="replay-chat", feedback_options=None)


def load_page(
    runtime: Runtime,
    filters: tuple[str, str, str, str, str, str, str],
    page: float,
    request: gr.Request | None,
) -> tuple[Any, ...]:
    """(status, agent, window, text, project, source, whose) and a page -> the table, its caption, page, ids."""
    s, a, w, t, p, o, h = filters
    try:
        frame, cap, number, trace_ids = cycles_page(
            runtime, s, a, w, t, page, project=p, source=o, user=chosen_user(h, request)
        )
    except Exception as e:  # Phoenix unreachable, an unknown project, ...: say so, keep the app up
        return gr.skip(), f"❌ {inline(e)}", page, gr.skip()
    return frame, cap, number, trace_ids


def _wire_list(parts: _Parts, runtime: Runtime) -> None:
    # named functions with explicit parameters: Gradio finds the gr.Request parameter by its type hint
    def first_page(
        status_v: str,
        agent_v: str,
        window_v: str,
        text_v: str,
        project_v: str,
        source_v: str,
        whose_v: str,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        return load_page(runtime, (status_v, agent_v, window_v, text_v, project_v, source_v, whose_v), 1, request)

    def page_before(
        s: str, a: str, w: str, t: str, p: str, o: str, h: str, n: float, request: gr.Request
    ) -> tuple[Any, ...]:
        return load_page(runtime, (s, a, w, t, p, o, h), n - 1, request)

    def page_after(
        s: str, a: str, w: str, t: str, p: str, o: str, h: str, n: float, request: gr.Request
    ) -> tuple[Any, ...]:
        return load_page(runtime, (s, a, w, t, p, o, h), n + 1, request)

    filters, listed = parts.filters, parts.listed
    parts.refresh.click(first_page, inputs=filters, outputs=listed, api_name="traces")
    parts.failed.click(lambda: "failed", outputs=parts.status, api_name=False)
    for changed in (parts.status, parts.project, parts.source, parts.whose):
        changed.change(first_page, inputs=filters, outputs=listed, api_name=False)
    parts.prev_page.click(page_before, inputs=[*filters, parts.page], outputs=listed, api_name=False)
    parts.next_page.click(page_after, inputs=[*filters, parts.page], outputs=listed, api_name=False)


def show_step(steps: list[StepView], index: int | None, whole: bool) -> tuple[str, str, str]:
    """(the step, its exact LLM input messages, its model output) of step `index`."""
    if not steps or index is None:
        return "", "", ""
    view = steps[index]
    return (
        step_markdown(view, full=whole, limit=VALUE_LIMIT),
        messages_markdown(view, full=whole, limit=VALUE_LIMIT),
        view.model_output or "",
    )


def open_trace(runtime: Runtime, trace_id: str, whole: bool, project: str | None = None) -> tuple[Any, ...]:
    """What opening a cycle shows (_Parts.opened): its summary, steps, step list, first step."""
    try:
        text_summary, steps, titles = open_cycle(runtime, trace_id, project)
    except UsageError as e:
        return f"❌ {inline(e)}", [], gr.update(choices=[], value=None), "", "", ""
    first = 0 if steps else None
    step_md, msgs, output = show_step(steps, first, whole)
    return (
        text_summary,
        steps,
        gr.update(choices=titles, value=titles[0] if titles else None),
        step_md,
        msgs,
        output,
    )


def move(steps: list[StepView], index: int | None, delta: int) -> Any:
    """The title of the step `delta` away from step `index` (kept within the steps)."""
    if not steps:
        return gr.skip()
    return step_titles(steps)[max(0, min(len(steps) - 1, (index or 0) + delta))]


def _wire_steps(parts: _Parts, runtime: Runtime) -> None:
    def on_open(trace_id: str, whole_v: bool, project_v: str | None = None) -> tuple[Any, ...]:
        return open_trace(runtime, trace_id, whole_v, project_v)

    opened, trace_inputs = parts.opened, [parts.trace_box, parts.whole, parts.project]
    parts.open_button.click(on_open, inputs=trace_inputs, outputs=opened, api_name="open_trace")
    parts.trace_box.submit(on_open, inputs=trace_inputs, outputs=opened, api_name=False)

    def select_row(trace_ids: list[str], whole_v: bool, project_v: str, event: gr.SelectData) -> tuple[Any, ...]:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        if row is None or row >= len(trace_ids):
            return (gr.skip(),) * 7
        return (trace_ids[row], *open_trace(runtime, trace_ids[row], whole_v, project_v))

    parts.table.select(
        select_row, inputs=[parts.ids, parts.whole, parts.project], outputs=[parts.trace_box, *opened], api_name=False
    )
    step_inputs, step_outputs = (
        [parts.steps_state, parts.step_list, parts.whole],
        [parts.detail, parts.messages, parts.edited],
    )
    parts.step_list.change(show_step, inputs=step_inputs, outputs=step_outputs, api_name=False)
    parts.whole.change(show_step, inputs=step_inputs, outputs=step_outputs, api_name=False)
    moved = [parts.steps_state, parts.step_list]
    parts.prev_step.click(lambda s, i: move(s, i, -1), inputs=moved, outputs=parts.step_list, api_name=False)
    parts.next_step.click(lambda s, i: move(s, i, +1), inputs=moved, outputs=parts.step_list, api_name=False)


@dataclass(frozen=True)
class ReplayForm:
    """The replay fields, as typed; `mode`: replay, edit (fork with the edited output) or live (a live model)."""

    trace_id: str
    stub: bool
    index: int | None  # the selected step
    edited: str
    model: str
    trust: bool
    factory: str | None
    options: str | None
    project: str | None
    mode: str
    live_state: bool = False  # run against the live memory store, not a scratch copy of the cycle's state


def run_replay(runtime: Runtime, form: ReplayForm) -> Iterator[tuple[Any, ...]]:
    """Stream a replay or fork: (report, chat messages, the trust checkbox) as it goes."""
    fork_at = None if form.mode == "replay" else (form.index or 0) + 1
    messages_out: list[dict[str, Any]] = []
    factory = (form.factory or "").strip() or None
    try:
        replay = runtime.prepare_replay(  # what the person names is checked before anything loads
            form.trace_id,
            stub=form.stub,
            fork_at=fork_at,
            substitute=form.edited if form.mode == "edit" else None,
            live_model=(form.model or None) if form.mode == "live" else None,
            trust=bool(form.trust),
            project=chosen_project(runtime, form.project),
            factory=factory,
            options=parse_options(parse_lines(form.options or "")) if factory else None,
            live_state=bool(form.live_state),
        )
    except UntrustedCode as e:
        yield confirm_markdown(e), messages_out, gr.update(visible=e.can_confirm, value=False)
        return
    except UsageError as e:
        yield f"❌ {inline(e)}", messages_out, gr.skip()
        return
    label = "Replaying" if fork_at is None else f"Forking at step {fork_at}"
    yield f"⏳ {label} ...", messages_out, gr.update(visible=False, value=False)
    for step in replay.cycle:
        messages_out.extend(step_messages(step))
        yield f"⏳ {label} ...", messages_out, gr.skip()
    yield replay_markdown(runtime, replay), messages_out, gr.skip()


def _wire_replay(parts: _Parts, runtime: Runtime) -> None:
    def on_replay(
        t: str, s: bool, i: int | None, e: str, m: str, ok: bool, f: str, o: str, p: str, ls: bool = False
    ) -> Any:
        yield from run_replay(runtime, ReplayForm(t, s, i, e, m, ok, f, o, p, "replay", ls))

    def on_fork_edit(
        t: str, s: bool, i: int | None, e: str, m: str, ok: bool, f: str, o: str, p: str, ls: bool = False
    ) -> Any:
        yield from run_replay(runtime, ReplayForm(t, s, i, e, m, ok, f, o, p, "edit", ls))

    def on_fork_live(
        t: str, s: bool, i: int | None, e: str, m: str, ok: bool, f: str, o: str, p: str, ls: bool = False
    ) -> Any:
        yield from run_replay(runtime, ReplayForm(t, s, i, e, m, ok, f, o, p, "live", ls))

    # the API's parameters: the newer ones (factory, its options, project, live state) last, with defaults
    replay_inputs = [
        parts.trace_box, parts.stub, parts.step_list, parts.edited, parts.live_model, parts.trust, parts.factory,
        parts.factory_options, parts.project, parts.live_state,
    ]  # fmt: skip
    replay_outputs = [parts.replay_report, parts.replay_chat, parts.trust]
    # a confirmation holds for the trace it was given for, never the next one
    parts.trace_box.change(lambda: gr.update(visible=False, value=False), outputs=parts.trust, api_name=False)
    parts.replay_button.click(on_replay, inputs=replay_inputs, outputs=replay_outputs, api_name="replay")
    parts.fork_edit.click(on_fork_edit, inputs=replay_inputs, outputs=replay_outputs, api_name="fork_edit")
    parts.fork_live.click(on_fork_live, inputs=replay_inputs, outputs=replay_outputs, api_name="fork_live")


@dataclass
class TracesTab:
    """What another tab needs to open a cycle here (`open_from`)."""

    runtime: Runtime
    parts: _Parts

    def open_from(
        self,
        other: gr.Dataframe,
        other_ids: gr.State,
        tabs: gr.Tabs,
        skip_columns: tuple[int, ...] = (),
        other_project: gr.Dropdown | None = None,
    ) -> None:
        """A click on a row of `other` (another tab's table of the cycles of `other_project`, whose trace ids, in
        row order, are in the State `other_ids`) switches `tabs` to this tab and opens that cycle here."""
        runtime, parts = self.runtime, self.parts

        def pick(trace_ids: list[str], whole_v: bool, project_v: str | None, event: gr.SelectData) -> tuple[Any, ...]:
            row, column = event.index if isinstance(event.index, (list, tuple)) else (event.index, None)
            if row is None or row >= len(trace_ids) or column in skip_columns:  # e.g. the Phoenix link's cell
                return (gr.skip(),) * 9
            project_v = (project_v or "").strip() or runtime.settings.project
            return (
                gr.Tabs(selected=TAB_ID),
                project_v,
                trace_ids[row],
                *open_trace(runtime, trace_ids[row], whole_v, project_v),
            )

        inputs = [other_ids, parts.whole, other_project if other_project is not None else gr.State(None)]
        outputs = [tabs, parts.project, parts.trace_box, *parts.opened]
        # api_name=False (no API endpoint) works in Gradio 6 but its hints say str | None
        other.select(pick, inputs=inputs, outputs=outputs, api_name=False)  # type: ignore[arg-type]


def build_traces_tab(runtime: Runtime) -> TracesTab:
    """The Traces tab's components and events; call inside a `gr.Blocks` / `gr.Tab` context."""
    parts = _Parts(*project_pickers(runtime, "traces"))
    _list_section(parts)
    _step_section(parts, runtime, operator=runtime.policy.operator)
    _replay_section(parts)
    _wire_list(parts, runtime)
    _wire_steps(parts, runtime)
    _wire_replay(parts, runtime)
    wire_bundle_controls(
        parts.bundles,
        runtime,
        trace_box=parts.trace_box,
        project=parts.project,
        opened=parts.opened,
        open_trace=open_trace,
        whole=parts.whole,
    )
    return TracesTab(runtime, parts)


def replay_markdown(runtime: Runtime, replay: Any) -> str:
    result = replay.cycle.result
    reproduced, divergence = replay.report()
    rec = replay.recording
    url, line = runtime.trace_link(result.trace_id, wait=LINK_WAIT_S)
    link = f"[replay trace]({url})" if url else f"replay trace: ⏳ {line}"
    if replay.fork_at is None:
        verdict = (
            "✅ **Reproduced the recording**: same prompts, code, tool calls, observations and errors at every step."
            if reproduced
            else f"⚠️ **Diverged at step {divergence.step}**: {divergence_markdown(divergence)}"
        )
    else:
        verdict = "✅ **Fork finished.**" if reproduced else "⚠️ **The fork did not reach a final answer.**"
        if divergence is not None:
            verdict += f"\n\nBefore the fork point it diverged at step {divergence.step}: " + divergence_markdown(
                divergence
            )
    before, after = rec.totals, result.totals
    table = (
        "| | original | " + ("replay" if replay.fork_at is None else f"fork at step {replay.fork_at}") + " |\n"
        "| --- | --- | --- |\n"
        f"| status | {inline(rec.status)} | {result.status} |\n"
        f"| steps | {len(rec.steps)} | {result.totals.steps} |\n"
        f"| final answer | {inline(truncate(rec.final_answer, 120))} | "
        f"{inline(truncate(result.final_answer, 120))} |\n"
        f"| LLM calls | {before.llm_calls if before else '?'} | {after.llm_calls} |\n"
        f"| tokens | {f'{before.total_tokens:,}' if before else '?'} | {after.total_tokens:,} |\n"
        f"| cost | {usd(before.cost_usd) if before else '?'} | {usd(after.cost_usd)} |\n"
    )
    state = f"\n\nRan {inline(replay.state_note)}." if replay.state_note else ""
    return f"{verdict}\n\n{table}\n{counted(replay.model.replayed, 'recorded output')} replayed · {link}{state}"


def divergence_markdown(divergence: Any) -> str:
    """Where a re-run first differs, as markdown: the prompt's message with a short diff, or the recorded value and
    the replay's; then the input cogscope did not capture that the difference looks like, if it does."""
    text = inline(divergence.where()) + "."
    if divergence.diff:
        what = (
            "The replayed call was given another prompt than the recorded one. That message's lines"
            if divergence.call is not None
            else "Its lines"
        )
        block = fence(redacted("\n".join(divergence.diff)), "diff")
        text += f"\n\n{what} that differ (- recorded, + replay):\n{block}"
    else:
        text += (
            f"\n\nRecorded:\n{fence(redacted(divergence.original))}\n\nReplay:\n{fence(redacted(divergence.replay))}"
        )
    if divergence.cause is not None:
        icon = "🕒" if divergence.cause.source == "the clock" else "🎲"
        text += f"\n\n{icon} {inline(divergence.cause.line())}"
    return text


def confirm_markdown(error: UntrustedCode) -> str:
    """What replaying would start, exactly, and how to go on."""
    rec = error.recording
    origin = (
        "recorded by this installation"
        if rec.recorded_here
        else f"**{CHANGED}**"
        if rec.changed
        else f"**{NOT_HERE}** (it may be forged)"
    )
    lines = [f"⚠️ **This replay would run code the trace names** — the trace was {origin}:", ""]
    lines += [fence(redacted(need)) for need in error.needs]
    if error.can_confirm:
        lines += ["", "Check it. To run it, tick **Run the recorded code shown above** below and click again."]
    else:
        lines += ["", "Only the operator can allow it (an installed agent, or `--allow-mcp`)."]
    return "\n".join(lines)
