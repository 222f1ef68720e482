"""The memory store's history: a change log kept by SQLite triggers, state points, restore, rollback and prune.

How it works (schema version 3 of `store`):

- Every insert, update and delete on the tracked tables (TRACKED; not `memories_fts`, which the memories' own
  triggers keep right) adds one row to `state_log` through a trigger: its position `seq` (only ever grows), the table,
  the operation, the row's id and, for an update or a delete, the old row's values exactly as SQLite held them.
- A state point names a position in that log, "<store_id>.<seq>" (`store_id`: "m" + 8 hex, random per store file).
  Its digest chains sha256 over the log rows since the point it follows (`prev_seq`), so a log row altered later
  is found when a state is restored. Taking a point writes nothing: the store keeps it in memory and saves it with
  its next write (a cycle makes one at once: energy regenerates) or when it closes, so it adds no disk sync.
- The state at a point is the live state with every row the log touched after it put back as the first change
  after the point found it (`before`, `undo`: set-wise, a table at a time), in a copy (`restore`) or in the live
  store (`rollback`, whose writes are logged like any other, so that it can itself be rolled back). Any position
  the log still holds is a state, so a point whose process ended before saving it can still be restored.
- `prune` drops points older than the retention and the log rows no point needs any more, and remembers up to
  which position it pruned, so that a lookup can tell "pruned" from "unknown" from "another store's".

The functions here take an open connection; `store.MemoryStore` holds the lock and the transactions around them.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .errors import StateCorrupt, StateNotKept

TRACKED: dict[str, tuple[str, ...]] = {  # table -> its columns, in order: what the triggers copy into v0..v5
    "memories": ("id", "text", "kind", "tags", "salience", "created"),
    "goals": ("id", "text", "priority", "status", "created"),
    "energy": ("id", "current", "max", "regen_per_cycle"),
    "action_log": ("id", "cycle_id", "action", "cost", "energy_after", "created"),
    "basins": ("id", "model", "name", "strength", "threshold"),
    "predictors": ("id", "basin_id", "text", "confidence"),
    "predictions": ("id", "model", "text", "created"),
    "resolutions": ("id", "prediction_id", "observation", "error", "basins_changed", "created"),
}
VALUES = 6  # v0..v5: the most columns a tracked table has (a test checks TRACKED against the schema)
LOG_COLUMNS = "seq, tbl, op, row_id, " + ", ".join(f"v{i}" for i in range(VALUES))
STATE_ID = re.compile(r"(m[0-9a-f]{8})\.([0-9]{1,18})")
RETENTION_NAME = "COGSCOPE_STATE_DAYS"
REPLAY_HINT = "replay against the current state with --live-state"
NOT_SAVED = "(not saved)"  # the label of a state whose point was never saved


def _triggers(table: str, columns: Sequence[str]) -> str:
    cols = [f'"{c}"' for c in columns]
    old = ", ".join(f"old.{c}" for c in cols)
    values = ", ".join(f"v{i}" for i in range(len(cols)))
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in cols)
    head = f"CREATE TRIGGER state_log_{table}"
    log = "INSERT INTO state_log(tbl, op, row_id"
    return f"""
    {head}_i AFTER INSERT ON {table} BEGIN {log}) VALUES ('{table}', 'I', new.rowid); END;
    {head}_u AFTER UPDATE ON {table} WHEN old.rowid = new.rowid AND ({changed}) BEGIN
        {log}, {values}) VALUES ('{table}', 'U', new.rowid, {old});
    END;
    {head}_k AFTER UPDATE ON {table} WHEN old.rowid IS NOT new.rowid BEGIN
        {log}, {values}) VALUES ('{table}', 'D', old.rowid, {old});
        {log}) VALUES ('{table}', 'I', new.rowid);
    END;
    {head}_d AFTER DELETE ON {table} BEGIN {log}, {values}) VALUES ('{table}', 'D', old.rowid, {old}); END;
    """


SCHEMA = f"""
    CREATE TABLE state_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tbl TEXT NOT NULL,
        op TEXT NOT NULL,
        row_id INTEGER NOT NULL,
        {", ".join(f"v{i}" for i in range(VALUES))}
    );
    CREATE TABLE state_points (
        n INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        prev_seq INTEGER NOT NULL,
        digest TEXT NOT NULL,
        label TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX state_points_seq ON state_points(seq);
    CREATE TABLE state_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO state_meta(key, value) VALUES ('store_id', 'm' || lower(hex(randomblob(4))));
    """ + "".join(_triggers(table, columns) for table, columns in TRACKED.items())
"""Schema version 3 of the memory store: the change log, the state points, the store's id, and the triggers."""


@dataclass(frozen=True)
class StatePoint:
    """A state of the memory store that can be restored: `id` is "<store_id>.<seq>"."""

    id: str
    seq: int
    digest: str
    label: str
    created: str


@dataclass(frozen=True)
class StateChange:
    """What moving the live store to a point would change: per table (added, removed, changed) rows, and energy."""

    tables: dict[str, tuple[int, int, int]]
    energy: tuple[float, float]  # (now, after)

    def lines(self) -> list[str]:
        """For a person: "memories: 2 removed, 1 changed", "energy: 40 -> 100"; ["nothing changes"] when so."""
        out = []
        for table, counts in self.tables.items():
            if table == "energy" and self.energy[0] != self.energy[1]:
                continue  # said below, with the figures
            parts = [f"{n} {what}" for n, what in zip(counts, ("added", "removed", "changed"), strict=True) if n]
            if parts:
                out.append(f"{table}: {', '.join(parts)}")
        if self.energy[0] != self.energy[1]:
            out.append(f"energy: {self.energy[0]:g} -> {self.energy[1]:g}")
        return out or ["nothing changes"]


class PointRow(NamedTuple):
    """A point as stored: its digest chains from the point at `prev_seq` (-1: from the start of the log)."""

    seq: int
    prev_seq: int
    digest: str
    label: str
    created: str

    def point(self, store_id: str) -> StatePoint:
        return StatePoint(f"{store_id}.{self.seq}", self.seq, self.digest, self.label, self.created)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def chain(prev_digest: str, rows: Sequence[tuple[Any, ...]]) -> str:
    """sha256 over the previous digest and the log rows, written as Python's repr of the list of row tuples (exact
    for every value SQLite holds: floats round-trip)."""
    return hashlib.sha256(f"{prev_digest}\n{list(rows)!r}".encode()).hexdigest()


def current_seq(db: sqlite3.Connection) -> int:
    """The log's position now: the last seq ever given (kept by AUTOINCREMENT even when rows are pruned)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'state_log'").fetchone()
    return int(row[0]) if row else 0


def meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM state_meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(db: sqlite3.Connection, key: str, value: object) -> None:
    db.execute("INSERT OR REPLACE INTO state_meta(key, value) VALUES (?, ?)", (key, str(value)))


def log_rows(db: sqlite3.Connection, after: int, upto: int | None = None) -> list[tuple[Any, ...]]:
    """The log rows with after < seq (<= upto), oldest first."""
    if upto is None:
        return db.execute(f"SELECT {LOG_COLUMNS} FROM state_log WHERE seq > ? ORDER BY seq", (after,)).fetchall()
    sql = f"SELECT {LOG_COLUMNS} FROM state_log WHERE seq > ? AND seq <= ? ORDER BY seq"
    return db.execute(sql, (after, upto)).fetchall()


def _saved(db: sqlite3.Connection, where: str, args: Sequence[Any]) -> PointRow | None:
    sql = f"SELECT seq, prev_seq, digest, label, created FROM state_points WHERE {where} ORDER BY seq DESC, n DESC"
    row = db.execute(sql + " LIMIT 1", args).fetchone()
    return None if row is None else PointRow(*row)


def _newest(candidates: Iterable[PointRow | None]) -> PointRow | None:
    found = [c for c in candidates if c is not None]
    return max(found, key=lambda c: c.seq) if found else None


def take_point(db: sqlite3.Connection, label: str, pending: Sequence[PointRow]) -> PointRow:
    """A point at the log's position now (writes nothing). The same position keeps the same digest; otherwise the
    digest chains from the newest point before it, saved or `pending`, over the log rows since."""
    seq = current_seq(db)
    created = _now()
    same = _newest([_saved(db, "seq = ?", (seq,)), *[p for p in pending if p.seq == seq]])
    if same is not None:
        return PointRow(seq, same.prev_seq, same.digest, label, created)
    return _chained(db, seq, pending, label, created)


def _chained(db: sqlite3.Connection, seq: int, pending: Sequence[PointRow], label: str, created: str) -> PointRow:
    """A point at `seq` whose digest chains from the newest point before it, saved or pending."""
    prev = _newest([_saved(db, "seq < ?", (seq,)), *[p for p in pending if p.seq < seq]])
    prev_seq, prev_digest = (prev.seq, prev.digest) if prev else (-1, "")
    return PointRow(seq, prev_seq, chain(prev_digest, log_rows(db, prev_seq, seq)), label, created)


def save_points(db: sqlite3.Connection, rows: Sequence[PointRow]) -> None:
    db.executemany(
        "INSERT INTO state_points(seq, prev_seq, digest, label, created) VALUES (?, ?, ?, ?, ?)",
        [tuple(row) for row in rows],
    )


def find_point(
    db: sqlite3.Connection, state_id: str, store_id: str, pending: Sequence[PointRow], where: str
) -> PointRow:
    """The point `state_id` names, or StateNotKept saying whether it was pruned, is unknown or another store's.

    Every position the log still holds is a state: one whose point was never saved (its process ended before the
    store's next write) is found too, labelled NOT_SAVED. A copy made by `restore` answers for the point it was
    made from with its own first point."""
    match = STATE_ID.fullmatch(state_id.strip())
    if match is None:
        raise StateNotKept(f"{state_id!r} is not a state id (expected m<8 hex>.<number>); {REPLAY_HINT}")
    owner, seq = match[1], int(match[2])
    if owner != store_id:
        origin = meta(db, "origin")
        base = _saved(db, "seq = ?", (int(meta(db, "origin_seq") or -1),))
        if origin == match[0] and base is not None:
            return base
        raise StateNotKept(
            f"the state {match[0]} belongs to another memory store (this one, {where}, is {store_id}); "
            f"run with that store as the agent's memory, or {REPLAY_HINT}"
        )
    waiting = [p for p in pending if p.seq == seq]
    found = waiting[-1] if waiting else _saved(db, "seq = ?", (seq,))
    if found is not None:
        return found
    now, cut = current_seq(db), int(meta(db, "pruned_seq") or -1)
    if (
        cut < seq <= now
        and db.execute("SELECT count(*) FROM state_log WHERE seq > ?", (seq,)).fetchone()[0] == now - seq
    ):
        return _chained(db, seq, pending, NOT_SAVED, "")
    if seq <= cut:
        days = float(meta(db, "pruned_days") or 0)
        raise StateNotKept(
            f"the state {match[0]} was pruned from the memory store {where} (kept {RETENTION_NAME}={days:g} days); "
            f"{REPLAY_HINT}"
        )
    raise StateNotKept(f"the state {match[0]} is unknown to the memory store {where}; {REPLAY_HINT}")


def points(db: sqlite3.Connection, store_id: str, pending: Sequence[PointRow], limit: int) -> list[StatePoint]:
    """The newest `limit` points, saved or pending, newest first."""
    sql = "SELECT seq, prev_seq, digest, label, created FROM state_points ORDER BY seq DESC, n DESC LIMIT ?"
    saved = [PointRow(*row) for row in db.execute(sql, (max(1, int(limit)),))]
    rows = sorted([*saved, *pending], key=lambda p: (p.seq, p.created), reverse=True)
    return [row.point(store_id) for row in rows[: max(1, int(limit))]]


def _corrupt(point: StatePoint | PointRow, where: str, what: str) -> StateCorrupt:
    return StateCorrupt(
        f"the state at position {point.seq} of the memory store {where} fails its checksum ({what}); "
        f"it cannot be restored: {REPLAY_HINT}"
    )


def rows_after(db: sqlite3.Connection, point: PointRow, where: str) -> list[tuple[Any, ...]]:
    """The log rows after `point`, oldest first; StateCorrupt when any is missing (seq has no gaps)."""
    rows = log_rows(db, point.seq)
    now = current_seq(db)
    if point.seq > now or len(rows) != now - point.seq:
        raise _corrupt(point, where, f"{now - point.seq - len(rows)} change log rows are missing")
    return rows


def verify(
    db: sqlite3.Connection, point: PointRow, rows: Sequence[tuple[Any, ...]], pending: Sequence[PointRow], where: str
) -> None:
    """Check every digest that chains over the log after `point` (rows: `rows_after`); StateCorrupt on a mismatch."""
    sql = "SELECT seq, prev_seq, digest, label, created FROM state_points WHERE seq >= ?"
    later = [PointRow(*row) for row in db.execute(sql, (point.seq,))]
    later += [p for p in pending if p.seq >= point.seq]
    digests: dict[int, set[str]] = {point.seq: {point.digest}}
    for p in later:
        digests.setdefault(p.seq, set()).add(p.digest)
    for p in later:
        if p.prev_seq < point.seq or p.prev_seq not in digests or p.seq == point.seq:
            continue  # chains from before the point: not on the way from it
        segment = rows[p.prev_seq - point.seq : p.seq - point.seq]  # rows[i] has seq point.seq + 1 + i: no gaps
        if all(chain(d, segment) != p.digest for d in digests[p.prev_seq]):
            raise _corrupt(point, where, f"the change log between positions {p.prev_seq} and {p.seq} was altered")


def before(
    rows: Sequence[tuple[Any, ...]], point: PointRow, where: str
) -> dict[str, dict[int, tuple[Any, ...] | None]]:
    """Per table, per row id that `rows` (the log after `point`, oldest first) touch: the row's values at the point,
    None when it did not exist then. The first change to a row after the point holds them: an insert says it was
    not there, an update or a delete gives its old values (the triggers log a change of row id as delete + insert).
    """
    out: dict[str, dict[int, tuple[Any, ...] | None]] = {}
    for seq, table, op, row_id, *values in rows:
        width = len(TRACKED.get(table, ()))
        if not width or op not in ("I", "U", "D") or (op != "I" and values[0] != row_id):
            raise _corrupt(point, where, f"change log row {seq} is not one the triggers write")
        touched = out.setdefault(table, {})
        if row_id not in touched:
            touched[row_id] = None if op == "I" else tuple(values[:width])
    return out


def undo(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], point: PointRow, where: str) -> None:
    """Put every row `rows` (the log after `point`) touched back as it was at the point, in the open transaction
    (foreign keys off). Set-wise, a table at a time, through a temporary table: a statement per row would cost the
    full-text index a flush each (about 0.1 ms a memory)."""
    width = ", ".join(f"v{i}" for i in range(VALUES))
    db.execute(f"CREATE TEMP TABLE IF NOT EXISTS state_undo (k INTEGER PRIMARY KEY, existed INTEGER NOT NULL, {width})")
    try:
        for table, rows_at in before(rows, point, where).items():
            names = ", ".join(f'"{c}"' for c in TRACKED[table])
            values = ", ".join(f"v{i}" for i in range(len(TRACKED[table])))
            db.execute("DELETE FROM temp.state_undo")
            db.executemany(
                f"INSERT INTO temp.state_undo VALUES (?, ?, {', '.join('?' * VALUES)})",
                [(k, v is not None, *(v or ()), *(None,) * (VALUES - len(v or ()))) for k, v in rows_at.items()],
            )
            db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT k FROM temp.state_undo)")
            db.execute(f"INSERT INTO {table}({names}) SELECT {values} FROM temp.state_undo WHERE existed ORDER BY k")
        db.execute("DELETE FROM temp.state_undo")
    except sqlite3.IntegrityError as e:
        raise _corrupt(point, where, f"undoing the change log breaks a rule: {e}") from None
    if db.execute("PRAGMA foreign_key_check").fetchone() is not None:
        raise _corrupt(point, where, "undoing the change log leaves a row that refers to no row")


def restore(copy: sqlite3.Connection, point: PointRow, pending: Sequence[PointRow], where: str, new_id: str) -> None:
    """Turn `copy` (a fresh backup of the store, foreign keys off) into the state at `point`, as a store of its own:
    id `new_id`, no history but one point (the state it holds), remembering `point` as its origin."""
    origin = f"{meta(copy, 'store_id')}.{point.seq}"
    copy.execute("BEGIN")
    try:
        rows = rows_after(copy, point, where)
        verify(copy, point, rows, pending, where)
        undo(copy, rows, point, where)
        copy.execute("DELETE FROM state_log")
        copy.execute("DELETE FROM state_points")
        copy.execute("DELETE FROM state_meta WHERE key IN ('pruned_seq', 'pruned_days')")
        base = PointRow(current_seq(copy), -1, point.digest, point.label, point.created)
        save_points(copy, [base])
        for key, value in (("store_id", new_id), ("origin", origin), ("origin_seq", base.seq)):
            set_meta(copy, key, value)
        copy.execute("COMMIT")
    except BaseException:
        if copy.in_transaction:
            copy.execute("ROLLBACK")
        raise


def rollback(db: sqlite3.Connection, point: PointRow, pending: Sequence[PointRow], where: str) -> PointRow:
    """In the open write transaction (foreign keys off): keep the state now as a point, then undo the log after
    `point`. Returns the point kept."""
    rows = rows_after(db, point, where)
    verify(db, point, rows, pending, where)
    kept = take_point(db, "before rollback", pending)
    save_points(db, [kept])
    undo(db, rows, point, where)
    return kept


def diff(db: sqlite3.Connection, point: PointRow, where: str) -> StateChange:
    """What undoing the log after `point` would change in the live tables (read only)."""
    counts = {table: [0, 0, 0] for table in TRACKED}
    now = db.execute("SELECT current FROM energy WHERE id = 1").fetchone()
    energy = (float(now[0]) if now else 0.0,) * 2
    for table, rows_at in before(rows_after(db, point, where), point, where).items():
        columns = ", ".join(f'"{c}"' for c in TRACKED[table])
        for row_id, then in rows_at.items():
            current = db.execute(f"SELECT {columns} FROM {table} WHERE rowid = ?", (row_id,)).fetchone()
            if then is not None and current is None:
                counts[table][0] += 1
            elif then is None and current is not None:
                counts[table][1] += 1
            elif then is not None and tuple(current) != then:
                counts[table][2] += 1
            if table == "energy" and row_id == 1 and then is not None:
                energy = (energy[0], float(then[1]))
    return StateChange({t: (c[0], c[1], c[2]) for t, c in counts.items()}, energy)


def prune(db: sqlite3.Connection, max_age_days: float) -> tuple[int, int]:
    """In the open write transaction: drop the points older than `max_age_days` and the log rows no point left needs
    (those at or before the oldest kept point; all of them when none is left). Returns (pruned, kept) points."""
    old = "julianday(created) < julianday('now') - ?"
    count = db.execute(f"SELECT count(*) FROM state_points WHERE {old}", (max_age_days,)).fetchone()[0]
    db.execute(f"DELETE FROM state_points WHERE {old}", (max_age_days,))
    kept, oldest = db.execute("SELECT count(*), min(seq) FROM state_points").fetchone()
    cut = current_seq(db) if oldest is None else int(oldest)
    if db.execute("DELETE FROM state_log WHERE seq <= ?", (cut,)).rowcount or count:
        set_meta(db, "pruned_seq", max(cut, int(meta(db, "pruned_seq") or -1)))  # states up to it: pruned
        set_meta(db, "pruned_days", f"{max_age_days:g}")
    return int(count), int(kept)
