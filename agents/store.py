"""The memory store: one SQLite file holding what a cognitive agent knows about itself.

Memories (with full-text search), goals, the energy budget and the log of actions paid
from it, and the mental models of `mental_models` (basins, predictors, predictions and
their resolutions), whose rules and revision maths live there. The store keeps its own
history (`state_log`): any recent state can be named (`checkpoint`), copied out
(`restore_copy`), compared (`diff_to`) and rolled back to (`rollback`).

Created and migrated on first use. One connection per store, guarded by a lock, so
several agents (and the Gradio worker threads) in one process can share it; every write
is one transaction (`BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any error), so
other processes see either all of a write or none of it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from . import state_log
from .errors import EnergyRefused, MemoryStoreError, MentalModelError, StateError
from .mental_models import (
    EXAMPLE_BASINS,
    EXAMPLE_MODEL,
    Basin,
    Prediction,
    Predictor,
    Resolution,
    Revision,
    plan_revision,
    revision_request,
    unknown_model_message,
)
from .state_log import StateChange, StatePoint

SCHEMA_VERSION = 3

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
    2: """
    CREATE TABLE goals (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'done', 'dropped')),
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE energy (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        current REAL NOT NULL,
        "max" REAL NOT NULL CHECK ("max" >= 0),
        regen_per_cycle REAL NOT NULL CHECK (regen_per_cycle >= 0),
        CHECK (current BETWEEN 0 AND "max")
    );
    INSERT INTO energy(id, current, "max", regen_per_cycle) VALUES (1, 100, 100, 10);
    CREATE TABLE action_log (
        id INTEGER PRIMARY KEY,
        cycle_id TEXT NOT NULL,
        action TEXT NOT NULL,
        cost REAL NOT NULL,
        energy_after REAL NOT NULL,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX action_log_cycle ON action_log(cycle_id);
    CREATE TABLE basins (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL,
        name TEXT NOT NULL,
        strength REAL NOT NULL CHECK (strength BETWEEN 0 AND 1),
        threshold REAL NOT NULL CHECK (threshold BETWEEN 0 AND 1),
        UNIQUE (model, name)
    );
    CREATE TABLE predictors (
        id INTEGER PRIMARY KEY,
        basin_id INTEGER NOT NULL REFERENCES basins(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        confidence REAL NOT NULL CHECK (confidence BETWEEN 0 AND 1)
    );
    CREATE TABLE predictions (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL,
        text TEXT NOT NULL,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE resolutions (
        id INTEGER PRIMARY KEY,
        prediction_id INTEGER REFERENCES predictions(id),
        observation TEXT NOT NULL,
        error REAL NOT NULL CHECK (error BETWEEN 0 AND 1),
        basins_changed TEXT NOT NULL DEFAULT '{}',
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    """,
    3: state_log.SCHEMA,
}
STATE_LOGGER = logging.getLogger("cogscope.state")

MEMORY_KINDS = ("episodic", "semantic", "procedural", "reflection")
MAX_MEMORY_CHARS = 4_000
"""What one memory may hold. The `remember` tool refuses longer text (the model reads why); anything else that
stores a memory (`reflect`, your own code) has it cut to this, with a marker that says how much was cut."""


def clip(text: str, limit: int) -> str:
    """`text`, or its first characters and a marker saying how many more there were, in at most `limit` + 40."""
    if len(text) <= limit:
        return text
    return text[:limit] + f" … [cut: {len(text) - limit:,} more characters]"
GOAL_STATUSES = ("active", "done", "dropped")

EXAMPLE_MEMORIES: list[tuple[str, str, str, float]] = [
    ("The user prefers short morning check-ins over long evening reviews.", "semantic", "user,routine", 0.8),
    ("Yesterday's reflection on sleep went well; energy recovered to 80 by noon.", "episodic", "energy,sleep", 0.6),
    ("Long reasoning chains drain energy fast; keep each heartbeat under five actions.", "procedural", "energy", 0.9),
    ("The user's main goal this month is finishing the coaching course outline.", "semantic", "goals,user", 0.9),
    ("Prediction 'user will skip the workout' failed: the user went running.", "episodic", "prediction,model", 0.7),
    ("Recall before reflecting: reflections without memories were vague.", "procedural", "reflect,recall", 0.7),
    ("The user gets anxious when plans change at short notice.", "semantic", "user,emotion", 0.8),
    ("Last week the user asked for fewer notifications during deep work.", "episodic", "user,focus", 0.6),
    ("The user does their best writing between 8 and 10 in the morning.", "semantic", "user,focus,routine", 0.8),
    ("On Tuesday the user finished two outline chapters before lunch.", "episodic", "goals,focus", 0.6),
    ("When the user sounds tired, suggest a ten-minute walk before any new task.", "procedural", "energy,user", 0.7),
    ("After evening calls the user's energy drops and replies get shorter.", "semantic", "energy,routine", 0.7),
    ("Prediction 'user wants a long review tonight' failed: the user slept early.", "episodic", "prediction", 0.6),
    ("Break big goals into three steps at most; longer lists were ignored.", "procedural", "goals,plan", 0.8),
    ("Weekends with friends recharge the user; the Monday after is productive.", "semantic", "user,social,energy", 0.7),
    ("Friday's coffee with a friend left the user visibly more motivated.", "episodic", "social,emotion", 0.5),
    ("Announce plan changes a day ahead and offer one alternative.", "procedural", "user,emotion,plan", 0.8),
    ("The user wants to read twenty minutes every evening instead of scrolling.", "semantic", "goals,routine", 0.6),
    ("Yesterday the user ignored two reminders sent during deep work.", "episodic", "focus,notifications", 0.5),
    ("Check energy before reflecting: reflections begun below 20 energy were cut short.", "procedural", "energy", 0.7),
]

EXAMPLE_GOALS: list[tuple[str, int]] = [
    ("Finish the coaching course outline by the end of the month", 5),
    ("Protect two hours of deep work every morning", 4),
    ("Read twenty minutes every evening", 3),
    ("See a friend at least once a week", 2),
]


@dataclass(frozen=True)
class Memory:
    id: int
    text: str
    kind: str
    tags: str
    salience: float
    created: str

    def line(self, limit: int = MAX_MEMORY_CHARS) -> str:
        """'[kind, salience] text', the text cut at `limit` characters (a memory stored before the bound may be
        longer)."""
        return f"[{self.kind}, salience {self.salience:.1f}] {clip(self.text, limit)}"


@dataclass(frozen=True)
class Goal:
    id: int
    text: str
    priority: int
    status: str
    created: str


@dataclass(frozen=True)
class Energy:
    current: float
    max: float
    regen_per_cycle: float


@dataclass(frozen=True)
class Action:
    id: int
    cycle_id: str
    action: str
    cost: float
    energy_after: float
    created: str


def _fts_query(text: str) -> str:
    """User text -> an FTS5 query that cannot be a syntax error: quoted words joined by OR."""
    words = re.findall(r"\w+", text.lower())
    return " OR ".join(f'"{w}"' for w in words)


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into complete statements (trigger bodies keep their inner `;`)."""
    buffer = ""
    for part in script.split(";"):
        buffer += part + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                yield buffer.strip()
            buffer = ""


def _unit(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be between 0 and 1, got {value}")
    return value


def _save_points(db: sqlite3.Connection, pending: list[state_log.PointRow], lock: threading.RLock, path: str) -> None:
    """Save the points taken since the store's last write (at close, or when the process ends)."""
    if not pending or not lock.acquire(timeout=5):
        return
    try:
        db.execute("BEGIN IMMEDIATE")
        state_log.save_points(db, pending)
        db.execute("COMMIT")
        pending.clear()
    except sqlite3.Error as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        STATE_LOGGER.warning("%d state points of the memory store %s were not saved: %s", len(pending), path, e)
    finally:
        lock.release()


def _create_private(path: Path) -> None:
    """Make the store's folder (mode 700 when new) and file (mode 600 when new: SQLite gives its journal files the
    same mode), so that only the user who runs cogscope can read what the agent remembers."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise MemoryStoreError(
            f"cannot create the memory store folder {path.parent}: {e.strerror}; "
            "set COGSCOPE_DATA_DIR to a writable folder"
        ) from None
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        pass  # it exists already, or sqlite3 says what is wrong with the path, in the words the store's errors use


class MemoryStore:
    """Memories, goals, energy and mental models in one SQLite file (or `:memory:`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._pending: list[state_log.PointRow] = []  # points taken and not saved yet (saved with the next write)
        if self.path != ":memory:":
            _create_private(Path(self.path).expanduser())
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            self._store_id = str(state_log.meta(self._db, "store_id"))
        except MemoryStoreError:
            raise
        except sqlite3.OperationalError as e:
            raise self._unusable(e) from None
        except sqlite3.DatabaseError as e:
            raise MemoryStoreError(
                f"cannot open the memory store {self.path}: {e}; "
                "move the file away (it is left untouched) or point COGSCOPE_DATA_DIR elsewhere"
            ) from None
        self._save_at_exit = weakref.finalize(self, _save_points, self._db, self._pending, self._lock, self.path)

    def _unusable(self, error: sqlite3.Error, doing: str = "write") -> MemoryStoreError:
        if "locked" in str(error) or "busy" in str(error):
            hint = "another process holds it for too long; stop it or point COGSCOPE_DATA_DIR elsewhere"
        else:
            hint = "make the file and its folder writable or set COGSCOPE_DATA_DIR to a writable folder"
        return MemoryStoreError(f"cannot {doing} the memory store {self.path}: {error}; {hint}")

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise MemoryStoreError(
                    f"the memory store {self.path} has schema version {version}, newer than this cogscope "
                    f"understands ({SCHEMA_VERSION}); upgrade cogscope or point COGSCOPE_DATA_DIR elsewhere"
                )
            if version == SCHEMA_VERSION:
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # Read again inside the write lock: another process may have migrated meanwhile.
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                for target in sorted(v for v in _MIGRATIONS if v > version):
                    for statement in _statements(_MIGRATIONS[target]):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {int(target)}")
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the store's lock; rolled back on any error.

        SQLite errors that mean the file cannot be written become a MemoryStoreError.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise self._unusable(e) from None
            try:
                if self._pending:
                    state_log.save_points(self._db, self._pending)
                yield self._db
                self._db.execute("COMMIT")
                self._pending.clear()
            except BaseException as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(e, sqlite3.OperationalError):
                    raise self._unusable(e) from None
                raise

    def close(self) -> None:
        """Save the points not saved yet, then close the file."""
        with self._lock:
            self._save_at_exit()
            self._db.close()

    # -- memories --------------------------------------------------------------------
    def remember(self, text: str, kind: str = "episodic", tags: str = "", salience: float = 0.5) -> int:
        """Store one memory; text longer than MAX_MEMORY_CHARS is cut to it (`clip`)."""
        if not text.strip():
            raise ValueError("a memory needs some text")
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO memories(text, kind, tags, salience) VALUES (?, ?, ?, ?)",
                (clip(text.strip(), MAX_MEMORY_CHARS), kind, clip(tags, 200), min(1.0, max(0.0, salience))),
            )
            return int(cur.lastrowid or 0)

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

    def seed_example(self) -> int:
        """Fill an empty store (no memories) with a believable example, in one transaction.

        Energy 100/100 regenerating 10 per cycle, four goals, EXAMPLE_MEMORIES and the mental
        model `user_routine` with three basins and their predictors. Returns how many memories
        were added: len(EXAMPLE_MEMORIES), or 0 when the store already held memories.
        """
        with self._transaction() as db:
            if db.execute("SELECT count(*) FROM memories").fetchone()[0]:
                return 0
            db.execute('UPDATE energy SET current = 100, "max" = 100, regen_per_cycle = 10 WHERE id = 1')
            db.executemany("INSERT INTO goals(text, priority) VALUES (?, ?)", EXAMPLE_GOALS)
            db.executemany("INSERT INTO memories(text, kind, tags, salience) VALUES (?, ?, ?, ?)", EXAMPLE_MEMORIES)
            if not db.execute("SELECT 1 FROM basins WHERE model = ?", (EXAMPLE_MODEL,)).fetchone():
                for name, strength, threshold, predictors in EXAMPLE_BASINS:
                    cur = db.execute(
                        "INSERT INTO basins(model, name, strength, threshold) VALUES (?, ?, ?, ?)",
                        (EXAMPLE_MODEL, name, strength, threshold),
                    )
                    db.executemany(
                        "INSERT INTO predictors(basin_id, text, confidence) VALUES (?, ?, ?)",
                        [(cur.lastrowid, text, confidence) for text, confidence in predictors],
                    )
            return len(EXAMPLE_MEMORIES)

    # -- goals -----------------------------------------------------------------------
    def add_goal(self, text: str, priority: int = 3) -> int:
        if not text.strip():
            raise ValueError("a goal needs some text")
        if not 1 <= int(priority) <= 5:
            raise ValueError(f"priority must be 1 (low) to 5 (high), got {priority}")
        with self._transaction() as db:
            cur = db.execute("INSERT INTO goals(text, priority) VALUES (?, ?)", (text.strip(), int(priority)))
            return int(cur.lastrowid or 0)

    def set_goal_status(self, goal_id: int, status: str) -> None:
        if status not in GOAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(GOAL_STATUSES)}, got {status!r}")
        with self._transaction() as db:
            if not db.execute("UPDATE goals SET status = ? WHERE id = ?", (status, int(goal_id))).rowcount:
                raise ValueError(f"no goal #{goal_id}")

    def goals(self, status: str = "active") -> list[Goal]:
        """Goals with `status`, highest priority first (then oldest first)."""
        if status not in GOAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(GOAL_STATUSES)}, got {status!r}")
        with self._lock:
            rows = self._db.execute(
                "SELECT id, text, priority, status, created FROM goals WHERE status = ? ORDER BY priority DESC, id",
                (status,),
            ).fetchall()
        return [Goal(*row) for row in rows]

    # -- energy ----------------------------------------------------------------------
    @staticmethod
    def _energy(db: sqlite3.Connection) -> Energy:
        row = db.execute('SELECT current, "max", regen_per_cycle FROM energy WHERE id = 1').fetchone()
        return Energy(*row)

    def energy(self) -> Energy:
        with self._lock:
            return self._energy(self._db)

    def set_energy(
        self, current: float | None = None, max: float | None = None, regen_per_cycle: float | None = None
    ) -> Energy:
        """Set any of the three figures; lowering `max` below the current energy lowers the current energy too."""
        with self._transaction() as db:
            old = self._energy(db)
            new_max = old.max if max is None else float(max)
            regen = old.regen_per_cycle if regen_per_cycle is None else float(regen_per_cycle)
            if new_max < 0 or regen < 0:
                raise ValueError("max and regen_per_cycle cannot be negative")
            if current is None:
                new_current = min(old.current, new_max)
            elif 0 <= float(current) <= new_max:
                new_current = float(current)
            else:
                raise ValueError(f"current energy must be between 0 and max ({new_max:g}), got {current}")
            db.execute(
                'UPDATE energy SET current = ?, "max" = ?, regen_per_cycle = ? WHERE id = 1',
                (new_current, new_max, regen),
            )
            return Energy(new_current, new_max, regen)

    def regenerate(self) -> Energy:
        """Rest between cycles: current = min(max, current + regen_per_cycle)."""
        with self._transaction() as db:
            old = self._energy(db)
            current = min(old.max, old.current + old.regen_per_cycle)
            db.execute("UPDATE energy SET current = ? WHERE id = 1", (current,))
            return Energy(current, old.max, old.regen_per_cycle)

    def spend(self, action: str, cost: float, cycle_id: str) -> Energy:
        """Pay `cost` for `action` and log it, in one transaction.

        Raises EnergyRefused (and changes nothing) when `cost` is more than the energy left.
        """
        cost = float(cost)
        if cost < 0:
            raise ValueError(f"a cost cannot be negative, got {cost}; use adjust_energy to add energy")
        with self._transaction() as db:
            old = self._energy(db)
            if cost > old.current:
                raise EnergyRefused(action, cost, old.current, old.regen_per_cycle)
            current = max(0.0, old.current - cost)
            db.execute("UPDATE energy SET current = ? WHERE id = 1", (current,))
            self._log(db, cycle_id, action, cost, current)
            return Energy(current, old.max, old.regen_per_cycle)

    def adjust_energy(self, delta: float, reason: str, cycle_id: str) -> Energy:
        """Add `delta` (negative: remove), clamped to 0..max, and log it as 'update_energy: <reason>'.

        The logged cost is minus the change actually applied (the clamped delta), so that summing
        the costs of the action log always accounts for the energy exactly.
        """
        with self._transaction() as db:
            old = self._energy(db)
            current = min(old.max, max(0.0, old.current + float(delta)))
            db.execute("UPDATE energy SET current = ? WHERE id = 1", (current,))
            why = clip(reason.strip(), 200)
            self._log(db, cycle_id, f"update_energy: {why}", old.current - current + 0.0, current)
            return Energy(current, old.max, old.regen_per_cycle)

    @staticmethod
    def _log(db: sqlite3.Connection, cycle_id: str, action: str, cost: float, energy_after: float) -> None:
        db.execute(
            "INSERT INTO action_log(cycle_id, action, cost, energy_after) VALUES (?, ?, ?, ?)",
            (str(cycle_id), action, cost, energy_after),
        )

    def recent_actions(self, limit: int = 5) -> list[Action]:
        """The last `limit` actions paid from energy, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, cycle_id, action, cost, energy_after, created FROM action_log ORDER BY id DESC LIMIT ?",
                (max(1, int(limit)),),
            ).fetchall()
        return [Action(*row) for row in rows]

    # -- mental models ---------------------------------------------------------------
    def add_basin(self, model: str, name: str, strength: float, threshold: float) -> int:
        strength, threshold = _unit(strength, "strength"), _unit(threshold, "threshold")
        with self._transaction() as db:
            try:
                cur = db.execute(
                    "INSERT INTO basins(model, name, strength, threshold) VALUES (?, ?, ?, ?)",
                    (model, name, strength, threshold),
                )
            except sqlite3.IntegrityError:
                raise MentalModelError(f"model {model!r} already has a basin named {name!r}") from None
            return int(cur.lastrowid or 0)

    def basins(self, model: str) -> list[Basin]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, model, name, strength, threshold FROM basins WHERE model = ? ORDER BY id", (model,)
            ).fetchall()
        return [Basin(*row) for row in rows]

    def models(self) -> list[str]:
        """Names of the mental models (those with at least one basin), sorted."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT DISTINCT model FROM basins ORDER BY model")]

    def predictors(self, model: str) -> list[Predictor]:
        """Predictors of every basin of `model`, grouped by basin in basin order."""
        with self._lock:
            rows = self._db.execute(
                """SELECT p.id, p.basin_id, p.text, p.confidence FROM predictors p
                   JOIN basins b ON b.id = p.basin_id WHERE b.model = ? ORDER BY b.id, p.id""",
                (model,),
            ).fetchall()
        return [Predictor(*row) for row in rows]

    @staticmethod
    def _add_prediction(db: sqlite3.Connection, model: str, text: str) -> int:
        return int(db.execute("INSERT INTO predictions(model, text) VALUES (?, ?)", (model, text)).lastrowid or 0)

    @staticmethod
    def _add_resolution(
        db: sqlite3.Connection, prediction_id: int | None, observation: str, error: float, changed: dict[str, Any]
    ) -> int:
        cur = db.execute(
            "INSERT INTO resolutions(prediction_id, observation, error, basins_changed) VALUES (?, ?, ?, ?)",
            (prediction_id, observation, error, json.dumps(changed)),
        )
        return int(cur.lastrowid or 0)

    def predictions(self, model: str) -> list[Prediction]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, model, text, created FROM predictions WHERE model = ? ORDER BY id", (model,)
            ).fetchall()
        return [Prediction(*row) for row in rows]

    def resolutions(self, model: str | None = None) -> list[Resolution]:
        """Resolutions of `model`'s predictions, oldest first; all resolutions (also those without a
        prediction) when `model` is None."""
        sql = """SELECT r.id, r.prediction_id, r.observation, r.error, r.basins_changed, r.created
                 FROM resolutions r LEFT JOIN predictions p ON p.id = r.prediction_id"""
        with self._lock:
            if model is None:
                rows = self._db.execute(sql + " ORDER BY r.id").fetchall()
            else:
                rows = self._db.execute(sql + " WHERE p.model = ? ORDER BY r.id", (model,)).fetchall()
        return [Resolution(i, p, o, e, json.loads(b), c) for i, p, o, e, b, c in rows]

    def unknown_model_message(self, model: str) -> str:
        return unknown_model_message(model, self.models())

    def revise_model(
        self,
        model: str,
        error: float,
        failed_basins: Sequence[str],
        new_basin: str | None = None,
        *,
        prediction: str | None = None,
        observation: str | None = None,
    ) -> Revision:
        """Restructure `model` after a prediction failed with `error` (0..1), in one transaction.

        What changes is `mental_models.plan_revision`'s: each failed basin and its predictors change
        as `revise_basin` documents; `new_basin`, when given, is added with strength `error` and
        threshold NEW_BASIN_THRESHOLD. A prediction and its resolution are recorded; the resolution's
        `basins_changed` holds old -> new values. Raises MentalModelError, changing nothing, for an
        unknown model or basin, an existing `new_basin`, nothing to revise, or `error` outside 0..1.
        """
        error, failed, new_basin = revision_request(error, failed_basins, new_basin)
        with self._transaction() as db:
            basins = [
                Basin(*row)
                for row in db.execute(
                    "SELECT id, model, name, strength, threshold FROM basins WHERE model = ? ORDER BY id", (model,)
                )
            ]
            if not basins:
                raise MentalModelError(self.unknown_model_message(model) + " Nothing changed.")
            predictors = [
                Predictor(*row)
                for row in db.execute(
                    """SELECT p.id, p.basin_id, p.text, p.confidence FROM predictors p
                       JOIN basins b ON b.id = p.basin_id WHERE b.model = ? ORDER BY b.id, p.id""",
                    (model,),
                )
            ]
            plan = plan_revision(model, basins, predictors, error, failed, new_basin)
            db.executemany(
                "UPDATE basins SET strength = ?, threshold = ? WHERE id = ?",
                [(b.strength, b.threshold, b.id) for b in plan.basins],
            )
            db.executemany(
                "UPDATE predictors SET confidence = ? WHERE id = ?", [(p.confidence, p.id) for p in plan.predictors]
            )
            if plan.new_basin:
                added = plan.new_basin
                db.execute(
                    "INSERT INTO basins(model, name, strength, threshold) VALUES (?, ?, ?, ?)",
                    (added.model, added.name, added.strength, added.threshold),
                )
            prediction_id = self._add_prediction(
                db, model, prediction or f"basins {', '.join(failed) or '(none)'} of {model} would hold"
            )
            resolution_id = self._add_resolution(
                db, prediction_id, observation or f"prediction error {error:.3f}", error, plan.changes
            )
            return Revision(model, error, prediction_id, resolution_id, plan.changes)

    # -- state: the store's history (state_log) -------------------------------------------
    @property
    def store_id(self) -> str:
        """This store file's id ("m" + 8 hex, random, kept in the file): the first part of its state ids."""
        return self._store_id

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction under the store's lock: the log and the points seen at one moment."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                yield self._db
            except sqlite3.OperationalError as e:
                raise self._unusable(e, "read") from None
            finally:
                if self._db.in_transaction:
                    self._db.execute("COMMIT")

    def checkpoint(self, label: str) -> StatePoint:
        """Name the state the store is in now (`label`: the cycle about to start from it), so it can be restored.

        A read, no write of its own: the point is saved with the store's next write (a cycle makes one at once) or
        at close, so it adds no disk sync to a cycle. The same state keeps the same id."""
        with self._reading() as db:
            row = state_log.take_point(db, clip(str(label), 200), self._pending)
            self._pending.append(row)
        return row.point(self._store_id)

    def point(self, state_id: str) -> StatePoint:
        """The point `state_id` names; StateNotKept (pruned, unknown or another store's) when there is none."""
        with self._reading() as db:
            return state_log.find_point(db, state_id, self._store_id, self._pending, self.path).point(self._store_id)

    def points(self, limit: int = 50) -> list[StatePoint]:
        """The newest `limit` points, newest first."""
        with self._reading() as db:
            return state_log.points(db, self._store_id, self._pending, limit)

    def restore_copy(self, state_id: str, dest: str | Path) -> Path:
        """Write the state `state_id` names as a store file of its own at `dest` (which must not exist, or be empty);
        the live store is only read. The copy has its own id and no history before that state; it answers for
        `state_id` with its first point. StateNotKept, StateCorrupt (its change log fails its checksum), StateError
        (`dest` cannot be written)."""
        target = Path(dest).expanduser()
        if target.exists() and (not target.is_file() or target.stat().st_size):
            raise StateError(f"cannot restore a state into {target}: it exists already; choose a path that does not")
        with self._lock:
            with self._reading() as db:
                point = state_log.find_point(db, state_id, self._store_id, self._pending, self.path)
                pending = list(self._pending)
            part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
            copy: sqlite3.Connection | None = None
            try:
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _create_private(part)
                copy = sqlite3.connect(part, isolation_level=None)
                for pragma in ("journal_mode = OFF", "synchronous = OFF", "foreign_keys = OFF"):  # a scratch file yet
                    copy.execute(f"PRAGMA {pragma}")
                self._db.backup(copy)
            except BaseException as e:
                self._discard(copy, part, e, target)
        try:
            state_log.restore(copy, point, pending, self.path, "m" + secrets.token_hex(4))
            copy.close()
            os.replace(part, target)
        except BaseException as e:
            self._discard(copy, part, e, target)
        return target

    @staticmethod
    def _discard(copy: sqlite3.Connection | None, part: Path, error: BaseException, target: Path) -> NoReturn:
        """Remove a copy that failed half-way; an SQLite or OS error becomes one line naming `target`."""
        if copy is not None:
            copy.close()
        with suppress(OSError):
            part.unlink(missing_ok=True)
        if isinstance(error, (sqlite3.OperationalError, OSError)):
            raise StateError(f"cannot write the state copy {target}: {error}; choose a writable folder") from None
        raise error

    def diff_to(self, state_id: str) -> StateChange:
        """What `rollback(state_id)` would change, read from the change log (nothing is written)."""
        with self._reading() as db:
            point = state_log.find_point(db, state_id, self._store_id, self._pending, self.path)
            return state_log.diff(db, point, self.path)

    def rollback(self, state_id: str) -> StatePoint:
        """Put the live store back in the state `state_id` names, in one transaction, after keeping the state now as
        a point ("before rollback"), which it returns: `rollback(kept.id)` rolls forward again. Nothing changes on
        StateNotKept, StateCorrupt or a store that cannot be written (MemoryStoreError)."""
        with self._lock:
            self._db.execute("PRAGMA foreign_keys = OFF")  # undo restores rows in log order, not parents first
            try:
                with self._transaction() as db:
                    point = state_log.find_point(db, state_id, self._store_id, self._pending, self.path)
                    kept = state_log.rollback(db, point, self._pending, self.path)
            finally:
                self._db.execute("PRAGMA foreign_keys = ON")
        STATE_LOGGER.info(
            "rolled the memory store %s back to %s.%d; the state before is kept as %s.%d",
            self.path, self._store_id, point.seq, self._store_id, kept.seq,
        )
        return kept.point(self._store_id)

    def prune(self, max_age_days: float) -> int:
        """Drop the points older than `max_age_days` and the change log no point needs any more; returns how many
        points were dropped and says so in one line on the logger "cogscope.state"."""
        days = float(max_age_days)
        if not days >= 0:
            raise ValueError(f"max_age_days must be 0 or more, got {max_age_days}")
        with self._transaction() as db:
            pruned, kept = state_log.prune(db, days)
        STATE_LOGGER.log(
            logging.INFO if pruned else logging.DEBUG,
            "pruned %d state points older than %g days from the memory store %s (%d kept)",
            *(pruned, days, self.path, kept),
        )
        return pruned
