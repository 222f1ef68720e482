"""The SQLite memory store (`agents/store.py`) and the recall_memory tool, on real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest

from cogscope.agents import MemoryStore, MemoryStoreError, RecallMemoryTool
from cogscope.agents.energy import EnergyLedger
from cogscope.agents.store import EXAMPLE_MEMORIES, Energy

V1_SCHEMA = """
CREATE TABLE memories (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'episodic',
    tags TEXT NOT NULL DEFAULT '',
    salience REAL NOT NULL DEFAULT 0.5 CHECK (salience BETWEEN 0 AND 1),
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE VIRTUAL TABLE memories_fts USING fts5(text, tags, content='memories', content_rowid='id');
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, text, tags) VALUES (new.id, new.text, new.tags);
END;
INSERT INTO memories(text, kind, tags) VALUES ('The user walks the dog at seven', 'episodic', 'routine');
INSERT INTO memories(text, kind, tags) VALUES ('Naps after lunch restore energy', 'semantic', 'energy');
PRAGMA user_version = 1;
"""


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore(":memory:")
    store.seed_example()
    return store


def user_version(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def tables(path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


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


def test_a_file_that_is_not_a_database_is_a_clear_error_and_left_untouched(tmp_path):
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


# -- the schema version: written, kept, migrated up, refused when newer -----------------------
def test_a_new_store_is_written_at_schema_version_3(tmp_path):
    path = tmp_path / "m.sqlite"
    MemoryStore(path).close()
    assert user_version(path) == 3
    assert {"memories", "goals", "energy", "action_log", "basins", "predictors", "predictions", "resolutions"} | {
        "state_log",
        "state_points",
        "state_meta",
    } <= tables(path)


def test_a_store_at_version_3_is_opened_as_it_is(tmp_path):
    path = tmp_path / "m.sqlite"
    first = MemoryStore(path)
    first.remember("The user walks the dog at seven")
    first.set_energy(current=40)
    first.close()

    again = MemoryStore(path)

    assert user_version(path) == 3
    assert again.count() == 1 and again.energy() == Energy(40.0, 100.0, 10.0)  # kept: nothing was created again


def test_a_version_1_store_is_migrated_keeping_its_memories(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()

    store = MemoryStore(path)

    assert user_version(path) == 3
    assert store.count() == 2 and store.recall("dog")[0].text == "The user walks the dog at seven"
    assert store.energy() == Energy(100.0, 100.0, 10.0)
    assert store.goals() == [] and store.models() == []
    assert store.add_goal("Walk the dog") == 1 and store.add_basin("m", "b", 0.5, 0.5) == 1
    assert store.seed_example() == 0  # it already holds memories


@pytest.mark.parametrize("version", [4, 99])
def test_a_store_from_a_newer_cogscope_is_a_clear_error_and_left_as_it_is(tmp_path, version):
    path = tmp_path / "new.sqlite"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {version}").connection.close()
    with pytest.raises(
        MemoryStoreError, match=rf"schema version {version}, newer than this cogscope understands \(3\); upgrade"
    ):
        MemoryStore(path)
    assert user_version(path) == version and tables(path) == set()


# -- seed, failure, threads --------------------------------------------------------------
def test_seed_example_fills_everything_once(store):
    assert store.count() == len(EXAMPLE_MEMORIES) == 20
    assert {m.kind for m in store.recent(20)} == {"episodic", "semantic", "procedural"}
    assert all(m.tags for m in store.recent(20))
    assert len(store.goals()) == 4
    assert store.energy() == Energy(100.0, 100.0, 10.0)
    assert store.models() == ["user_routine"]
    basins = store.basins("user_routine")
    assert [b.name for b in basins] == ["morning_focus", "evening_fatigue", "social_recharge"]
    per_basin = [sum(p.basin_id == b.id for p in store.predictors("user_routine")) for b in basins]
    assert all(1 <= n <= 2 for n in per_basin)
    assert store.seed_example() == 0 and store.count() == 20 and len(store.goals()) == 4


def test_a_damaged_database_is_a_clear_error_and_left_untouched(tmp_path):
    path = tmp_path / "m.sqlite"
    junk = b"SQLite format 3\x00" + b"\xff" * 4000
    path.write_bytes(junk)
    with pytest.raises(MemoryStoreError, match="cannot open the memory store .* left untouched"):
        MemoryStore(path)
    assert path.read_bytes() == junk


def test_a_store_that_cannot_be_written_is_a_clear_error_at_the_first_write(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite")
    # Root ignores file permissions, so make the connection read-only the way SQLite reports a read-only file.
    store._db.execute("PRAGMA query_only = ON")
    with pytest.raises(MemoryStoreError, match="cannot write the memory store .*readonly.*make the file .* writable"):
        store.remember("lost")
    with pytest.raises(MemoryStoreError, match="cannot write the memory store"):
        store.spend("observe", 0.5, "c")
    store._db.execute("PRAGMA query_only = OFF")
    assert store.remember("kept") == 1 and store.count() == 1  # nothing half-written before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write read-only files")
def test_a_read_only_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.sqlite"
    MemoryStore(path).close()
    path.chmod(0o444)
    store = MemoryStore(path)
    with pytest.raises(MemoryStoreError, match="cannot write the memory store"):
        store.remember("lost")


def test_the_store_is_safe_from_several_threads(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite")
    refusals: list[str] = []

    def work(n: int) -> None:
        ledger = EnergyLedger(store, f"thread-{n}")
        for i in range(25):
            store.remember(f"thread {n} note {i}")
            if refused := ledger.charge("remember"):  # 100 charges of 2 from 100 energy: 50 are refused
                refusals.append(refused)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 100
    assert store.energy().current == 0.0
    assert len(refusals) == 50 and len(store.recent_actions(1000)) == 50
