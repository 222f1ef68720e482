"""The package layout the `cogscope` package docstring (cogscope/__init__.py) and the README describe: the folders
`agents/`, `telemetry/` and `ui/` are imported as `cogscope.agents`, `cogscope.telemetry` and `cogscope.ui`, their
public surfaces are pinned, and dependencies point one way (ui -> telemetry, ui -> agents; never back)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cogscope import agents, telemetry, ui

ROOT = Path(__file__).resolve().parents[1]


def test_local_packages_are_the_ones_imported():
    # other distributions (openai-agents, telemetry) also install top-level `agents` / `telemetry`
    for module in (agents, telemetry, ui):
        assert Path(module.__file__).resolve().is_relative_to(ROOT), module.__file__


def test_public_surfaces_are_pinned():
    assert sorted(agents.__all__) == [
        "AgentFactoryError",
        "AgentSpec",
        "AgentsError",
        "BUILTIN",
        "DEFAULT_TASK",
        "ENERGY_COSTS",
        "ENTRY_POINT_GROUP",
        "EnergyExhausted",
        "EnergyLedger",
        "EnergyRefused",
        "Factory",
        "McpError",
        "Memory",
        "MemoryStore",
        "MemoryStoreError",
        "MentalModelError",
        "RecallMemoryTool",
        "STEP_COST",
        "Sandbox",
        "SandboxError",
        "SandboxLimit",
        "SandboxLimits",
        "StateChange",
        "StateCorrupt",
        "StateError",
        "StateNotKept",
        "StatePoint",
        "UnknownAgentError",
        "add_tools",
        "begin_cycle_inputs",
        "check_options",
        "close_store",
        "cognitive_tools",
        "exit_now",
        "get",
        "install_exit_guard",
        "max_steps_for",
        "mcp_tools",
        "names",
        "open_store",
        "serve_mcp",
        "state_markdown",
    ]
    assert sorted(telemetry.__all__) == [
        "AgentStateError",
        "BUNDLE_SUFFIX",
        "Bundle",
        "BundleError",
        "Cycle",
        "CycleFigures",
        "CycleFilter",
        "CycleResult",
        "CycleSpec",
        "CycleTotals",
        "DEFAULT_PROJECT",
        "ERROR",
        "FAILED",
        "FILES",
        "HostGuard",
        "HostRules",
        "MAX_STEPS",
        "Manifest",
        "OK",
        "PhoenixError",
        "PhoenixPortTaken",
        "PhoenixServer",
        "PhoenixStartFailed",
        "PhoenixUnreachable",
        "Prices",
        "PricesError",
        "Projection",
        "Recording",
        "Replay",
        "ReplayError",
        "SNAPSHOT",
        "STATUSES",
        "STEP_ERRORS",
        "Scope",
        "Signer",
        "SpanTransferError",
        "Spool",
        "StateBlobs",
        "StepView",
        "TRACE_ID",
        "TelemetryError",
        "ToolCall",
        "TraceTables",
        "Tracing",
        "breakdown",
        "bundle_prices_entry",
        "check_database_url",
        "clean_text",
        "clean_value",
        "connect_phoenix",
        "counted",
        "cycle_records",
        "default_redactor",
        "ensure_phoenix",
        "file_sha256",
        "free_port",
        "is_loopback_name",
        "list_cycles",
        "load_prices",
        "log_trace_spans",
        "measured_interval",
        "model_messages",
        "otlp_headers",
        "parse_state_id",
        "per_cycle",
        "phoenix_client",
        "plain_answer",
        "port_in_use",
        "prepare_replay",
        "price_map_models",
        "project",
        "read_bundle",
        "record",
        "redact",
        "redact_value",
        "redacted_stdio",
        "register_prices",
        "restore_into",
        "select",
        "setup_tracing",
        "spans_to_frame",
        "spawn_tied",
        "state_checkpoint",
        "step_record",
        "stop",
        "summary",
        "trace_projects",
        "trace_span_records",
        "trace_spans",
        "trace_tables",
        "trace_url",
        "usd",
        "wait_for_trace",
        "warn_unused_methods",
        "what_if",
        "write_bundle",
    ]
    assert sorted(ui.__all__) == ["ModelError", "Settings", "UiError", "UsageError", "main"]
    for module in (agents, telemetry, ui):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_telemetry_map_names_every_module_and_its_exports_agree():
    """The package docstring's map names each module of telemetry/ once (and no module that is gone); `__all__`,
    the lazy `_EXPORTS` and the imports type checkers read name the same things, each from the module that
    defines it."""
    init = ROOT / "telemetry" / "__init__.py"
    tree = ast.parse(init.read_text())
    mapped = re.findall(r"^- `(\w+)`: ", ast.get_docstring(tree) or "", flags=re.MULTILINE)
    modules = sorted(p.stem for p in (ROOT / "telemetry").glob("*.py") if p.stem != "__init__")
    assert sorted(mapped) == modules, "telemetry/__init__.py's map and the modules differ"
    exports = telemetry._EXPORTS
    assert sorted(exports) == sorted(telemetry.__all__)
    checked = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.level == 1 and imp.module
                checked.update({alias.name: imp.module for alias in imp.names})
    assert checked == exports
    for name, module in exports.items():
        value = getattr(telemetry, name)
        defined_in = getattr(value, "__module__", None)
        if defined_in is not None and defined_in.startswith("cogscope.telemetry."):
            assert defined_in == f"cogscope.telemetry.{module}", f"{name} is defined in {defined_in}, not {module}"


def _top(module: str) -> str:
    """The package an absolute import names: `cogscope.agents.store` -> `agents`, `gradio.themes` -> `gradio`."""
    parts = module.split(".")
    return parts[1] if parts[0] == "cogscope" and len(parts) > 1 else parts[0]


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(_top(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(_top(node.module))
                if node.module == "cogscope":
                    found.update(alias.name for alias in node.names)
    return found


BARE = ("agents", "telemetry", "ui")


def test_no_module_imports_the_bare_folder_names():
    """The folders install as cogscope.agents/telemetry/ui; a bare `import agents` would load OpenAI's Agents SDK
    (or nothing) on a user's machine."""
    bare = []
    for folder in ("agents", "telemetry", "ui", "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                bare += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in BARE]
    assert not bare, bare


def test_dependencies_point_one_way():
    assert not _imports("telemetry") & {"agents", "ui", "gradio"}
    assert not _imports("agents") & {"telemetry", "ui", "gradio"}


def _ui_uses() -> list[tuple[str, str, str]]:
    """(ui file, package, what it takes) for every import of `agents` or `telemetry` in ui, and every attribute
    read through a plain `import agents` (agents.get, ...)."""
    uses = []
    for path in sorted((ROOT / "ui").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                uses += [(path.name, a.name, "") for a in node.names if _top(a.name) in ("agents", "telemetry")]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "cogscope":
                uses += [(path.name, a.name, "") for a in node.names if a.name in ("agents", "telemetry")]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if _top(node.module) in ("agents", "telemetry"):
                    uses += [(path.name, node.module.removeprefix("cogscope."), a.name) for a in node.names]
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("agents", "telemetry")
            ):
                uses.append((path.name, node.value.id, node.attr))
    return uses


def test_ui_imports_only_what_telemetry_and_agents_export():
    uses = _ui_uses()
    assert uses, "the guard found no imports at all: it is looking in the wrong place"
    exported = {"agents": set(agents.__all__), "telemetry": set(telemetry.__all__)}
    for file, module, name in uses:
        assert module in ("agents", "telemetry"), f"ui/{file} imports {module} past its package's __init__"
        assert not name or name in exported[module], f"ui/{file} uses {module}.{name}, which {module} does not export"


def test_ui_modules_do_not_import_each_other_in_a_circle():
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "ui").glob("*.py"):
        graph[path.stem] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                graph[path.stem] |= {node.module} if node.module else {a.name for a in node.names}
    assert graph["traces_cli"], "the guard read no relative imports"

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(m for m in graph if m != "__init__" and reaches(m, m, set()))
    assert not circles, f"ui modules in an import circle: {circles}"


@pytest.mark.e2e  # starts a Python process
def test_every_export_loads_and_reading_commands_load_no_llm_client():
    """The packages load their exports on first use. `cogscope traces`, `show` and `cost` read Phoenix and price
    with LiteLLM's map, so they need neither LiteLLM's clients nor smolagents: each of those costs seconds of
    start-up on every command."""
    for package in (agents, telemetry):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    probe = (
        "import sys, cogscope.ui.cli, cogscope.ui.traces_cli, cogscope.ui.cost_cli; from cogscope import telemetry;"
        "p = telemetry.load_prices(None); assert p.known('openai/gpt-4o-mini'), 'no price';"
        "telemetry.price_map_models(); cogscope.ui.cli_parser.build_parser();"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'litellm', 'smolagents', 'gradio', 'phoenix'}))"
    )
    import os
    import subprocess
    import sys

    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_price_map_read_from_litellms_file_is_litellms_own():
    import litellm

    from cogscope.telemetry.prices import _offline_price_map

    assert _offline_price_map() == litellm.model_cost
    assert telemetry.Prices().per_million("openai/gpt-4o-mini") == (
        litellm.model_cost["gpt-4o-mini"]["input_cost_per_token"] * 1e6,
        litellm.model_cost["gpt-4o-mini"]["output_cost_per_token"] * 1e6,
    )
