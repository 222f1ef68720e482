"""Starting states that travel with a bundle: written out for an export, kept on import, found again by re-runs.

A cycle's starting state leaves as a store file of its own (`MemoryStore.restore_copy`), scrubbed of secrets first.
An imported cycle's starting state is kept at `<data dir>/states/<state id>.sqlite`; a re-run of a cycle whose state
the live memory store does not hold finds it there (`imported_state`, `copy_imported_state`). Those files are only
read: a re-run works on a copy.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
import tempfile
from pathlib import Path

from cogscope import agents, defaults
from cogscope.telemetry import redact

from .errors import UsageError

STATE_ID = re.compile(r"^m[0-9a-f]{8}\.[0-9]{1,18}$")  # "<store_id>.<seq>" (agents.state_log): it names a file
SCRUB_PASSES = 5  # a scrubbed cell's old value lands in the store's change log, scrubbed by the next pass


def states_folder(data_dir: Path | None = None) -> Path:
    return (data_dir or defaults.data_dir()) / defaults.STATES_FOLDER


def state_path(state_id: str, data_dir: Path | None = None) -> Path:
    """Where the imported starting state `state_id` is kept (UsageError for an id that is not a state id)."""
    if not STATE_ID.match(state_id or ""):
        raise UsageError(f"{state_id[:80]!r} is not a state id (m + 8 hex digits, a dot, a number)")
    return states_folder(data_dir) / f"{state_id}.sqlite"


def imported_state(state_id: str, data_dir: Path | None = None) -> Path | None:
    """The starting state file a bundle brought for `state_id` (None: no bundle brought one)."""
    if not STATE_ID.match(state_id or ""):
        return None
    path = state_path(state_id, data_dir)
    return path if path.is_file() else None


def copy_imported_state(state_id: str, dest: Path, data_dir: Path | None = None) -> bool:
    """Copy the imported starting state `state_id` to `dest` (a re-run's scratch store); False when none was
    imported. The kept file itself is never opened as a store."""
    source = imported_state(state_id, data_dir)
    if source is None:
        return False
    shutil.copyfile(source, dest)
    return True


# -- export ----------------------------------------------------------------------------------------------------------
def scrub_state_file(path: Path) -> int:
    """Blank the secrets (telemetry.redaction) in every text value of a store file that is about to leave, and leave
    none of their bytes behind in free pages or full-text indexes; returns how many values changed. Never run on a
    live store: on the copy a bundle carries."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA secure_delete = ON")
        tables = _plain_tables(db)
        changed = 0
        for _ in range(SCRUB_PASSES):
            changed_now = sum(_scrub_table(db, table) for table in tables)
            changed += changed_now
            if not changed_now:
                break
        if changed:
            for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'"):
                if "fts5" in sql.lower():  # the index still holds the old words: build it again from its content
                    command = "rebuild" if "content=" in sql.replace(" ", "") else "optimize"
                    db.execute(f'INSERT INTO "{name}"("{name}") VALUES (?)', (command,))
            db.execute("VACUUM")
        return changed
    finally:
        db.close()


def _plain_tables(db: sqlite3.Connection) -> list[str]:
    """The store's own tables: not SQLite's, not virtual tables nor their shadow tables."""
    rows = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    virtual = [name for name, sql in rows if str(sql).upper().startswith("CREATE VIRTUAL TABLE")]
    return [name for name, _ in rows if name not in virtual and not any(name.startswith(f"{v}_") for v in virtual)]


def _scrub_table(db: sqlite3.Connection, table: str) -> int:
    changed = 0
    columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
    for column in columns:
        values = [
            v
            for (v,) in db.execute(f'SELECT DISTINCT "{column}" FROM "{table}" WHERE typeof("{column}") = ?', ("text",))
        ]
        for value in values:
            clean = redact(value)
            if clean != value:
                db.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" = ?', (clean, value))
                changed += 1
    return changed


# -- import ----------------------------------------------------------------------------------------------------------
def check_state_file(path: Path, where: str) -> None:
    """UsageError unless `path` is a memory store this cogscope opens (whole, of a schema it knows); `path` itself
    is only read: the check opens a copy."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            whole = db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            version = db.execute("PRAGMA user_version").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        whole, version = False, 0
    if not whole or version < 1:
        raise UsageError(f"the starting state in {where} is not a memory store, or it is damaged; nothing imported")
    with tempfile.TemporaryDirectory(prefix="cogscope-state-check-") as folder:
        probe = Path(folder) / defaults.MEMORY_FILE
        shutil.copyfile(path, probe)
        try:
            agents.MemoryStore(probe).close()
        except agents.AgentsError as e:
            raise UsageError(f"the starting state in {where} cannot be used here ({e}); nothing imported") from None


def keep_imported_state(state_id: str, source: Path, data_dir: Path | None = None) -> tuple[Path, bool]:
    """Keep `source` as the imported starting state `state_id`: (where, whether it was written now). The same state
    kept already is left as it is; another file under the same id is a UsageError, and so is a state that claims to
    be one of this data dir's own memory store (a re-run of one of its cycles whose point was pruned would take it)."""
    target = state_path(state_id, data_dir)
    live = (data_dir or defaults.data_dir()) / defaults.MEMORY_FILE
    if live.is_file() and agents.open_store(str(live)).store_id == state_id.partition(".")[0]:
        raise UsageError(
            f"the bundle's starting state {state_id} names this installation's own memory store ({live}): its cycle "
            "was recorded here; nothing imported: step through and replay it in the Phoenix it was recorded into"
        )
    if target.exists():
        if _same_bytes(target, source):
            return target, False
        raise UsageError(
            f"another starting state with the id {state_id} was imported before ({target}); nothing imported: "
            "remove that file if no imported cycle needs it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        shutil.copyfile(source, part)
        os.chmod(part, 0o600)
        os.replace(part, target)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise UsageError(f"cannot keep the starting state in {target.parent}: {e.strerror or e}") from None
    return target, True


def _same_bytes(a: Path, b: Path) -> bool:
    from cogscope.telemetry import file_sha256

    return a.stat().st_size == b.stat().st_size and file_sha256(a) == file_sha256(b)
