"""The pickers the Traces tab and the Dashboard share: which Phoenix project to read, and which of its cycles."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .runtime import Runtime

SOURCES = {"all": None, "run in cogscope": "cogscope", "other apps": "other"}  # label -> cycles.by_source


def project_pickers(runtime: Runtime, prefix: str) -> tuple[Any, Any]:
    """A row with (the Phoenix project dropdown, the "Cycles from" dropdown), elem_ids `{prefix}-project` and
    `{prefix}-source`. The projects are those Phoenix has now; any other name can be typed."""
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
    return project, source


def chosen_project(runtime: Runtime, project: str | None) -> str:
    """The project a picker names (default: the one cogscope records into); UsageError if Phoenix has none such."""
    project = (project or "").strip() or runtime.settings.project
    if project != runtime.settings.project:
        runtime.check_project(project)
    return project
