"""Cognitive tools: smolagents Tools that read and change the memory store."""

from __future__ import annotations

from smolagents import Tool

from .memory import MemoryStore


class RecallMemoryTool(Tool):  # type: ignore[misc]
    name = "recall_memory"
    description = (
        "Search long-term memory by full text. Returns up to `limit` memories that share words with "
        "`query`, best match first, one per line as '[kind, salience] text'. Returns 'No memories match.' "
        "when nothing matches: then try other words."
    )
    inputs = {
        "query": {"type": "string", "description": "Words to look for, e.g. 'energy sleep'."},
        "limit": {"type": "integer", "description": "How many memories at most (default 5).", "nullable": True},
    }
    output_type = "string"

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.store = store

    def forward(self, query: str, limit: int | None = 5) -> str:
        memories = self.store.recall(query, limit or 5)
        if not memories:
            return "No memories match."
        return "\n".join(m.line() for m in memories)
