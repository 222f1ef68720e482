"""The heartbeat: one OODA cycle (observe, orient, decide, act) as a smolagents CodeAgent."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from smolagents import CodeAgent, Model

from .memory import MemoryStore
from .tools import RecallMemoryTool

DEFAULT_MAX_STEPS = 5

_stores: dict[str, MemoryStore] = {}
_stores_lock = threading.Lock()


def default_memory_path() -> Path:
    data_dir = os.environ.get("COGSCOPE_DATA_DIR") or Path.home() / ".local" / "share" / "cogscope"
    return Path(data_dir).expanduser() / "memory.sqlite"


def open_store(path: str | Path | None = None) -> MemoryStore:
    """The process-wide store for `path` (default: the data dir's memory.sqlite), seeded on first use."""
    key = str(path or default_memory_path())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = MemoryStore(key)
            store.seed_example()
            if key != ":memory:":
                _stores[key] = store
        return store


INSTRUCTIONS = """You are the heartbeat of a cognitive agent. Each run is one OODA cycle:
observe (recall what memory holds about the task), orient (relate it to the goals you recall),
decide (choose one concrete next action), act (state it with final_answer).
Keep the cycle short: every step costs energy. Recall before you decide.

What memory holds most recently:
{recent}"""


def build(models: dict[str, Model], *, memory: str | None = None, max_steps: int = DEFAULT_MAX_STEPS) -> CodeAgent:
    """Registry factory for `heartbeat`: a CodeAgent with `recall_memory` over the SQLite memory store.

    Args:
        models: model per role; the heartbeat uses `default` (or `heartbeat`).
        memory: path of the SQLite memory file (default: $COGSCOPE_DATA_DIR/memory.sqlite).
        max_steps: the step budget of one cycle.
    """
    model = models.get("heartbeat") or models["default"]
    store = open_store(memory)
    recent = "\n".join(f"- {m.line()}" for m in store.recent(5)) or "- (nothing yet)"
    return CodeAgent(
        tools=[RecallMemoryTool(store)],
        model=model,
        name="heartbeat",
        description="One OODA cycle over the memory store.",
        instructions=INSTRUCTIONS.format(recent=recent),
        max_steps=int(max_steps),
        verbosity_level=0,
    )
