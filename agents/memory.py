"""The memory store: one SQLite file with full-text search over memories.

Created and migrated on first use. One connection per store, guarded by a lock,
so several agents (and the Gradio worker threads) in one process can share it;
every write is its own transaction.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import MemoryStoreError

SCHEMA_VERSION = 1

_MIGRATIONS = {
    1: """
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
    CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text, tags) VALUES ('delete', old.id, old.text, old.tags);
    END;
    CREATE TRIGGER memories_au AFTER UPDATE ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text, tags) VALUES ('delete', old.id, old.text, old.tags);
        INSERT INTO memories_fts(rowid, text, tags) VALUES (new.id, new.text, new.tags);
    END;
    """,
}

EXAMPLE_MEMORIES: list[tuple[str, str, str, float]] = [
    ("The user prefers short morning check-ins over long evening reviews.", "semantic", "user,routine", 0.8),
    ("Yesterday's reflection on sleep went well; energy recovered to 80 by noon.", "episodic", "energy,sleep", 0.6),
    ("Long reasoning chains drain energy fast; keep each heartbeat under five actions.", "procedural", "energy", 0.9),
    ("The user's main goal this month is finishing the coaching course outline.", "semantic", "goals,user", 0.9),
    ("Prediction 'user will skip the workout' failed: the user went running.", "episodic", "prediction,model", 0.7),
    ("Recall before reflecting: reflections without memories were vague.", "procedural", "reflect,recall", 0.7),
    ("The user gets anxious when plans change at short notice.", "semantic", "user,emotion", 0.8),
    ("Last week the user asked for fewer notifications during deep work.", "episodic", "user,focus", 0.6),
]


@dataclass(frozen=True)
class Memory:
    id: int
    text: str
    kind: str
    tags: str
    salience: float
    created: str

    def line(self) -> str:
        return f"[{self.kind}, salience {self.salience:.1f}] {self.text}"


def _fts_query(text: str) -> str:
    """User text -> an FTS5 query that cannot be a syntax error: quoted words joined by OR."""
    words = re.findall(r"\w+", text.lower())
    return " OR ".join(f'"{w}"' for w in words)


class MemoryStore:
    """Memories in one SQLite file (or `:memory:`), searchable by full text."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        if self.path != ":memory:":
            parent = Path(self.path).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise MemoryStoreError(
                    f"cannot create the memory store folder {parent}: {e.strerror}; "
                    "set COGSCOPE_DATA_DIR to a writable folder"
                ) from None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise MemoryStoreError(
                f"cannot open the memory store {self.path}: {e}; "
                "move the file away (it is left untouched) or point COGSCOPE_DATA_DIR elsewhere"
            ) from None

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for target in sorted(v for v in _MIGRATIONS if v > version):
                self._db.executescript(f"BEGIN; {_MIGRATIONS[target]} PRAGMA user_version = {target}; COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes ----------------------------------------------------------------------
    def remember(self, text: str, kind: str = "episodic", tags: str = "", salience: float = 0.5) -> int:
        if not text.strip():
            raise ValueError("a memory needs some text")
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO memories(text, kind, tags, salience) VALUES (?, ?, ?, ?)",
                (text.strip(), kind, tags, min(1.0, max(0.0, salience))),
            )
            return int(cur.lastrowid or 0)

    def seed_example(self) -> int:
        """Fill an empty store with a small believable example; returns how many memories were added."""
        with self._lock:
            if self.count():
                return 0
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO memories(text, kind, tags, salience) VALUES (?, ?, ?, ?)", EXAMPLE_MEMORIES
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return len(EXAMPLE_MEMORIES)

    # -- reads -----------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM memories").fetchone()[0])

    def recall(self, query: str, limit: int = 5) -> list[Memory]:
        """Memories matching any word of `query`, best match first (BM25, then salience)."""
        match = _fts_query(query)
        if not match:
            return []
        with self._lock:
            rows = self._db.execute(
                """SELECT m.id, m.text, m.kind, m.tags, m.salience, m.created
                   FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid
                   WHERE memories_fts MATCH ? ORDER BY bm25(memories_fts), m.salience DESC LIMIT ?""",
                (match, max(1, int(limit))),
            ).fetchall()
        return [Memory(*row) for row in rows]

    def recent(self, limit: int = 5) -> list[Memory]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, text, kind, tags, salience, created FROM memories ORDER BY id DESC LIMIT ?",
                (max(1, int(limit)),),
            ).fetchall()
        return [Memory(*row) for row in rows]
