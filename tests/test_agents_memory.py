"""The SQLite memory store and the recall_memory tool, on real SQLite files."""

from __future__ import annotations

import sqlite3

import pytest

from agents import MemoryStore, MemoryStoreError, RecallMemoryTool
from agents.memory import EXAMPLE_MEMORIES


def test_recall_finds_by_full_text_best_match_first(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite")
    store.remember("The garden needs water every evening", kind="procedural", salience=0.4)
    store.remember("Energy dips after lunch; energy returns after a walk", kind="episodic", salience=0.9)
    store.remember("Lunch with Ana on Friday", salience=0.2)

    found = store.recall("energy walk")
    assert [m.text for m in found] == ["Energy dips after lunch; energy returns after a walk"]
    assert store.recall("lunch", limit=5)[0].text.startswith(("Energy dips", "Lunch with Ana"))
    assert len(store.recall("lunch", limit=1)) == 1
    assert store.recall("quantum") == []
    assert store.recall('"); DROP TABLE memories; --') == []  # query syntax can never break FTS5
    assert store.count() == 3


def test_store_persists_and_seeds_once(tmp_path):
    path = tmp_path / "m.sqlite"
    first = MemoryStore(path)
    assert first.seed_example() == len(EXAMPLE_MEMORIES)
    assert first.seed_example() == 0
    first.close()
    again = MemoryStore(path)
    assert again.count() == len(EXAMPLE_MEMORIES)
    assert again.recall("energy")


def test_corrupt_store_is_a_clear_error_and_left_untouched(tmp_path):
    path = tmp_path / "m.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MemoryStoreError, match="cannot open the memory store .* left untouched"):
        MemoryStore(path)
    assert path.read_bytes() == b"this is not a database" * 100


def test_recall_memory_tool_reads_the_store():
    store = MemoryStore(":memory:")
    store.seed_example()
    tool = RecallMemoryTool(store)
    assert tool.name == "recall_memory" and set(tool.inputs) == {"query", "limit"}
    out = tool(query="energy", limit=2)
    assert len(out.splitlines()) == 2 and all("energy" in line.lower() for line in out.splitlines())
    assert tool(query="xylophone") == "No memories match."


def test_schema_is_migrated_to_current_version(tmp_path):
    path = tmp_path / "m.sqlite"
    MemoryStore(path).close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] >= 1
