"""The package layout of DESIGN.md: our own `agents`/`telemetry`/`ui` are imported, surfaces are pinned,
and dependencies point one way (ui -> telemetry, ui -> agents; never back)."""

from __future__ import annotations

import ast
from pathlib import Path

import agents
import telemetry
import ui

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
        "UnknownAgentError",
        "cognitive_tools",
        "get",
        "max_steps_for",
        "names",
        "open_store",
        "state_markdown",
    ]
    assert "Cycle" in telemetry.__all__ and "setup_tracing" in telemetry.__all__
    assert sorted(ui.__all__) == ["ModelError", "Settings", "UiError", "UsageError", "main"]
    for module in (agents, telemetry, ui):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_dependencies_point_one_way():
    assert not _imports("telemetry") & {"agents", "ui", "gradio"}
    assert not _imports("agents") & {"telemetry", "ui", "gradio"}
