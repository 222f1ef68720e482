"""cogscope's Gradio app (one module per tab, put together in `ui.app`) and the `cogscope` command.

Gradio is imported only by `ui.app` and the tab modules, so `cogscope run` starts fast.

The command: `cli` (main: parse, settings, run, exit code) · `cli_parser` (every subcommand, its flags and the
function that runs it) · `app_cli` (`ui`) · `cycle_cli` (`run`, `heartbeat`, `mcp-serve`, `seed-memory`) ·
`traces_cli` (`traces`, `show`, `replay`) · `cost_cli` (`cost`) · `state_cli` (`state rollback`, `state list`) ·
`bundle_cli` (`export`, `import`) · `interrupts` (Ctrl-C and signals) · `preflight` (data dir and port checks).
The app: `app` · `run_tab` · `traces_tab` (and its `rollback_panel`, and `bundle_panel`: download and upload of
bundles) · `dashboard_tab` · `pickers` (project / source / user pickers) · `render` (steps as chat, markdown, text) ·
`auth`, `web_access`, `headers`, `trust` (who may do what).
Shared: `runtime` (Phoenix, tracing, the local model; a form -> a cycle or a replay) · `cycle_state` (the state each
cycle starts from: kept, restored into a scratch copy for re-runs, rolled back, pruned) · `user_state` (the same
for a user's own agent: its live state folder, a scratch one for re-runs) · `bundles` (reproduction
bundles exported from and imported into this installation) · `state_files` (starting states that travel in bundles,
and where re-runs find imported ones) · `sessions` (what runs in
each browser session: what Stop reaches) · `slots` (cycles side by side, a line for the rest) · `heartbeat_loop`
· `models` and `local_llm`, `local_llm_server` (the LLMs) · `inputs` (parsing what people type) · `config`
(Settings) · `errors`.
"""

from .cli import main
from .config import Settings
from .errors import ModelError, UiError, UsageError

__all__ = ["ModelError", "Settings", "UiError", "UsageError", "main"]
