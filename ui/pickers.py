"""The pickers the Traces tab and the Dashboard share: which Phoenix project to read, and which of its cycles."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .runtime import Runtime

SOURCES = {"all": None, "run in cogscope": "cogscope", "other apps": "other"}  # label -> cycles.by_source
WHOSE = ("mine", "everyone's")  # on an app with log-ins: the cycles the signed-in user started, or all


def project_pickers(runtime: Runtime, prefix: str) -> tuple[Any, Any, Any]:
    """A row with (the Phoenix project dropdown, the "Cycles from" dropdown, the "Whose cycles" radio), elem_ids
    `{prefix}-project`, `{prefix}-source` and `{prefix}-whose`. The projects are those Phoenix has now; any other
    name can be typed. "Whose cycles" shows only on an app with log-ins, "mine" first."""
    try:
        projects = runtime.projects()
    except Exception:  # Phoenix not answering yet: the picker still takes a typed name
        projects = []
    with gr.Row():
        project = gr.Dropdown(
            sorted({runtime.settings.project, *projects}),
            value=runtime.settings.project,
            label="Phoenix project",
            info="any project: other smolagents apps' cycles too",
            allow_custom_value=True,
            elem_id=f"{prefix}-project",
            scale=1,
        )
        source = gr.Dropdown(list(SOURCES), value="all", label="Cycles from", elem_id=f"{prefix}-source", scale=1)
        whose = gr.Radio(
            list(WHOSE),
            value=WHOSE[0],
            label="Whose cycles",
            info="mine: the cycles you started",
            visible=runtime.signed_in,
            elem_id=f"{prefix}-whose",
            scale=1,
        )
    return project, source, whose


def chosen_user(whose: str | None, request: gr.Request | None) -> str | None:
    """The user whose cycles to show: the signed-in user for "mine" (the default), None for everyone's or when
    nobody signs in."""
    user = getattr(request, "username", None) or None
    return None if user is None or whose == WHOSE[1] else user


def chosen_project(runtime: Runtime, project: str | None) -> str:
    """The project a picker names (default: the one cogscope records into); UsageError if Phoenix has none such."""
    project = (project or "").strip() or runtime.settings.project
    if project != runtime.settings.project:
        runtime.check_project(project)
    return project
