"""The Traces tab's rollback, for the operator only: the button beside an opened cycle, the list of what rolling the
live memory store back to that cycle's starting state would change, and the buttons that confirm or cancel it.

A shared app's remote users never get it: the tab builds neither the button nor its events for them, and each
handler checks again that the page is the operator's."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .cycle_state import memory_path, roll_forward_command, trace_rollback
from .errors import UsageError
from .pickers import chosen_project
from .render import inline
from .runtime import Runtime

OPERATOR_ONLY = "only the operator may roll the memory store back"


def rollback_button() -> Any:
    """The button beside the cycle's summary (inside its row)."""
    return gr.Button("↶ Roll back to this state", size="sm", elem_id="state-rollback", scale=0, min_width=200)


def preview_rollback(runtime: Runtime, trace_id: str, project: str | None) -> tuple[Any, ...]:
    """(what rolling back to the cycle's starting state would change, the confirm and cancel buttons, the target)."""
    hidden = gr.update(visible=False)
    try:
        if not runtime.policy.operator:
            raise UsageError(OPERATOR_ONLY)
        recording = runtime.recording(trace_id, chosen_project(runtime, project))
        plan = trace_rollback(recording)
    except UsageError as e:
        return f"❌ {inline(e)}", hidden, hidden, None
    path = memory_path(recording.options)
    if plan.unchanged:
        return f"The memory store {inline(path)} is already in state {inline(plan.state)}.", hidden, hidden, None
    lines = "\n".join(f"- {inline(line)}" for line in plan.lines)
    note = (
        f"**Roll the live memory store {inline(path)} back to state {inline(plan.state)}**, the one this cycle "
        f"started from? It changes:\n\n{lines}\n\nThe current state is kept first, as a point you can roll "
        "forward to."
    )
    shown = gr.update(visible=True)
    return note, shown, shown, {"trace_id": recording.trace_id, "project": project, "state": plan.state}


def confirm_rollback(runtime: Runtime, target: dict[str, Any] | None) -> tuple[Any, ...]:
    """Roll back to what the preview showed: (what happened, the confirm and cancel buttons hidden, no target)."""
    hidden = gr.update(visible=False)
    if not target:
        return "Nothing to confirm: press the rollback button first.", hidden, hidden, None
    try:
        if not runtime.policy.operator:
            raise UsageError(OPERATOR_ONLY)
        recording = runtime.recording(target["trace_id"], chosen_project(runtime, target["project"]))
        plan = trace_rollback(recording)
        if plan.state != target["state"]:
            raise UsageError("the cycle names another state than the one shown; press the rollback button again")
        kept = plan.apply()
    except UsageError as e:
        return f"❌ {inline(e)}", hidden, hidden, None
    command = roll_forward_command(kept, recording.options)
    return (
        f"✅ Rolled back to state {inline(plan.state)}. The state before is kept as point {inline(kept.id)}; to roll "
        f"forward again: `{command}`",
        hidden,
        hidden,
        None,
    )


def build_rollback_panel(button: Any, runtime: Runtime, trace_box: Any, project: Any) -> None:
    """The change list and its confirm / cancel buttons under the cycle's summary, wired to `button`; `trace_box`
    holds the opened cycle's trace id, `project` its Phoenix project."""
    note = gr.Markdown("", elem_id="state-rollback-note")
    with gr.Row():
        confirm: Any = gr.Button(
            "Roll back now", variant="stop", visible=False, elem_id="state-rollback-confirm", scale=0, min_width=160
        )
        cancel: Any = gr.Button("Cancel", visible=False, elem_id="state-rollback-cancel", scale=0, min_width=120)
    target = gr.State(None)

    def on_preview(trace_id: str, project_v: str | None) -> tuple[Any, ...]:
        return preview_rollback(runtime, trace_id, project_v)

    def on_confirm(target_v: dict[str, Any] | None) -> tuple[Any, ...]:
        return confirm_rollback(runtime, target_v)

    def on_cancel() -> tuple[Any, ...]:
        hidden = gr.update(visible=False)
        return "Nothing changed.", hidden, hidden, None

    def on_other_cycle() -> tuple[Any, ...]:  # a confirmation holds for the cycle it was shown for, never the next
        return ("", *on_cancel()[1:])

    outputs = [note, confirm, cancel, target]
    button.click(on_preview, inputs=[trace_box, project], outputs=outputs, api_name=False)
    confirm.click(on_confirm, inputs=target, outputs=outputs, api_name=False)
    cancel.click(on_cancel, outputs=outputs, api_name=False)
    trace_box.change(on_other_cycle, outputs=outputs, api_name=False)
