"""The Gradio app: one module per tab, put together here."""

from __future__ import annotations

import gradio as gr

from .dashboard_tab import PHOENIX_COLUMN, build_dashboard_tab
from .run_tab import build_run_tab
from .runtime import Runtime
from .traces_tab import TAB_ID, build_traces_tab

TITLE = "cogscope"


def header_markdown(runtime: Runtime) -> str:
    settings = runtime.settings
    network = "network allowed" if settings.sandbox_network else "no network"
    who = (
        ""
        if runtime.policy.operator
        else " Shared app: registered agents and allowed MCP servers only."
        if not runtime.policy.allow_commands
        else " Shared app: anyone logged in may run agent files and commands."
    )
    return (
        f"## cogscope — run cognitive agents, watch every step\n"
        f"Traces go to Phoenix project **{settings.project}** at [{runtime.phoenix.url}]({runtime.phoenix.url}). "
        f"Model-written code runs in a sandbox ({network}, {settings.sandbox_memory_mb:,} MB, "
        f"{settings.step_timeout:g} s a code step, {settings.cycle_timeout:g} s a cycle).{who}"
    )


def build_app(runtime: Runtime) -> gr.Blocks:
    # every dashboard refresh hands Gradio a CSV, which it copies into its cache: clear copies over an hour old
    demo = gr.Blocks(title=TITLE, delete_cache=(3600, 3600))
    with demo:
        gr.Markdown(header_markdown(runtime), elem_id="header")
        with gr.Tabs() as tabs:
            with gr.Tab("Run", id="run"):
                build_run_tab(runtime)
            with gr.Tab("Traces", id=TAB_ID):
                traces = build_traces_tab(runtime)
            with gr.Tab("Dashboard", id="dashboard"):
                build_dashboard_tab(
                    runtime,
                    open_in_traces=lambda table, ids, project: traces.open_from(
                        table, ids, tabs, skip_columns=(PHOENIX_COLUMN,), other_project=project
                    ),
                )
    return demo
