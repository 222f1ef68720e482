"""The memory store keeps its history (`agents/state_log.py`): points, restore_copy, diff_to, rollback, prune; on
real SQLite files."""

from __future__ import annotations

import array
import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cogscope.agents import MemoryStore, MemoryStoreError, StateCorrupt, StateError, StateNotKept, StatePoint
from cogscope.agents.state_log import TRACKED, VALUES
from cogscope.agents.store import _MIGRATIONS, _statements

Rows = dict[str, list[tuple[object, ...]]]


def table_rows(path: Path) -> Rows:
    """Every row of every table the history covers, read with a connection of its own."""
    db = sqlite3.connect(path)
    try:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in TRACKED}
    finally:
        db.close()


def fts_is_right(path: Path) -> bool:
    """FTS5's own check that the full-text index matches the memories table."""
    db = sqlite3.connect(path)
    try:
        db.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        db.close()


def cycle(store: MemoryStore, i: int) -> None:
    """What a heartbeat cycle writes: energy, a memory, its cost, now and then a goal or a model revision."""
    store.regenerate()
    store.remember(f"cycle {i} saw a heron by the river", kind="episodic", tags=f"heron,c{i}", salience=0.1 * i)
    store.spend("remember", 2.0 + 0.1 * i, f"c{i}")
    if i % 3 == 0:
        store.add_goal(f"Follow up on cycle {i}", priority=1 + i % 5)
    if i % 4 == 1:
        store.revise_model("user_routine", 0.37, ["morning_focus"], new_basin=f"surprise_{i}")
    if i == 6:
        store.set_goal_status(1, "done")
        store.adjust_energy(-33.3, "a long detour", f"c{i}")


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[MemoryStore, list[StatePoint], list[Rows]]]:
    """A seeded store run through 10 cycles with a point before each: (store, points, the rows at each point)."""
    store = MemoryStore(tmp_path / "live.sqlite")
    store.seed_example()
    points, states = [], []
    for i in range(10):
        points.append(store.checkpoint(f"c{i}"))
        states.append(table_rows(tmp_path / "live.sqlite"))
        cycle(store, i)
    yield store, points, states
    store.close()


def test_restore_copy_gives_the_exact_state_of_every_point_and_reads_the_live_store_only(history, tmp_path):
    store, points, states = history
    live = Path(store.path)
    before, now = live.read_bytes(), table_rows(live)
    assert len({p.id for p in points}) == 10 and all(p.id.startswith(store.store_id + ".") for p in points)

    for i, point in enumerate(points):
        copy = store.restore_copy(point.id, tmp_path / "copies" / f"c{i}.sqlite")
        assert table_rows(copy) == states[i], f"the copy of point {i}"
        assert fts_is_right(copy)

    third = MemoryStore(tmp_path / "copies" / "c3.sqlite")
    assert sorted(m.text for m in third.recall("heron", limit=20)) == [
        f"cycle {i} saw a heron by the river" for i in range(3)
    ]
    assert third.store_id != store.store_id  # a copy is a store of its own ...
    assert third.point(points[3].id).digest == points[3].digest  # ... that answers for the point it was made from
    assert live.read_bytes() == before and table_rows(live) == now
    assert not list(tmp_path.glob("copies/.*.part"))


def test_a_copy_can_be_restored_from_again_and_written_without_touching_the_live_store(history, tmp_path):
    store, points, states = history
    first = MemoryStore(store.restore_copy(points[5].id, tmp_path / "first.sqlite"))
    first.remember("only in the copy")
    again = first.restore_copy(points[5].id, tmp_path / "again.sqlite")
    assert table_rows(again) == states[5]
    assert store.recall("only copy") == [] and table_rows(Path(store.path)) != table_rows(tmp_path / "first.sqlite")


def test_rollback_puts_the_live_store_back_and_keeps_a_point_to_roll_forward_to(history):
    store, points, states = history
    live = Path(store.path)
    latest = table_rows(live)

    kept = store.rollback(points[3].id)

    assert table_rows(live) == states[3] and fts_is_right(live)
    assert kept.label == "before rollback" and store.points(1)[0] == kept
    assert store.diff_to(kept.id).lines()[:2] == ["memories: 7 added", "goals: 3 added, 1 changed"]
    assert sorted(m.text for m in store.recall("heron", limit=20)) == [
        f"cycle {i} saw a heron by the river" for i in range(3)
    ]

    store.rollback(kept.id)  # roll forward

    assert table_rows(live) == latest and fts_is_right(live)
    store.remember("after the round trip")  # the store goes on as before
    assert store.count() == len(latest["memories"]) + 1


def test_diff_to_says_what_a_rollback_would_change(history):
    store, points, states = history
    energy_now = store.energy().current
    energy_then = states[3]["energy"][0][1]
    change = store.diff_to(points[3].id)

    assert change.tables["memories"] == (0, 7, 0)  # cycles 3..9 each remembered one
    assert change.tables["goals"] == (0, 3, 1)  # goals of cycles 3, 6, 9; goal 1 marked done in cycle 6
    assert change.tables["basins"] == (0, 2, 1)  # surprise_5 and surprise_9 added; morning_focus revised
    assert change.energy == (energy_now, energy_then) and energy_now != energy_then
    assert change.lines() == [
        "memories: 7 removed",
        "goals: 3 removed, 1 changed",
        "action_log: 8 removed",
        "basins: 2 removed, 1 changed",
        "predictors: 2 changed",
        "predictions: 2 removed",
        "resolutions: 2 removed",
        f"energy: {energy_now:g} -> {energy_then:g}",
    ]
    assert store.diff_to(store.checkpoint("now").id).lines() == ["nothing changes"]


def test_a_point_costs_no_write_of_its_own_and_is_saved_with_the_next_write_or_at_close(tmp_path):
    path = tmp_path / "m.sqlite"
    store = MemoryStore(path)
    store.remember("first")
    before = path.read_bytes()
    point = store.checkpoint("c1")
    assert store.checkpoint("c1 again").id == point.id  # the same state keeps its id
    assert path.read_bytes() == before
    store.remember("second")
    assert sqlite3.connect(path).execute("SELECT count(*) FROM state_points").fetchone()[0] == 2

    later = store.checkpoint("c2")
    store.close()
    again = MemoryStore(path)
    assert again.point(later.id) == later and again.point(point.id).seq == point.seq


def test_a_point_never_saved_is_still_a_state_another_store_object_can_restore(tmp_path):
    path = tmp_path / "m.sqlite"
    first = MemoryStore(path)
    first.seed_example()
    point = first.checkpoint("c1")  # waits in `first` for its next write, which never comes
    then = table_rows(path)
    second = MemoryStore(path)
    second.remember("written by another store object")
    second.spend("observe", 0.5, "c2")

    found = second.point(point.id)

    assert (found.id, found.digest, found.label) == (point.id, point.digest, "(not saved)")
    assert table_rows(second.restore_copy(point.id, tmp_path / "copy.sqlite")) == then


def test_a_row_whose_id_changes_is_restored_too(tmp_path):
    path = tmp_path / "m.sqlite"
    store = MemoryStore(path)
    store.seed_example()
    point = store.checkpoint("c1")
    then = table_rows(path)
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE goals SET id = 99, text = 'renumbered' WHERE id = 1")
        db.execute("UPDATE memories SET id = 500 WHERE id = 3")
    db.close()
    assert table_rows(store.restore_copy(point.id, tmp_path / "copy.sqlite")) == then
    store.rollback(point.id)
    assert table_rows(path) == then and fts_is_right(path)


def test_prune_drops_old_points_and_their_log_and_says_so(history, tmp_path, caplog):
    store, points, states = history
    db = sqlite3.connect(store.path)
    with db:
        db.execute(
            "UPDATE state_points SET created = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-40 days') WHERE seq <= ?",
            (points[4].seq,),
        )
    with caplog.at_level(logging.INFO, logger="cogscope.state"):
        assert store.prune(30) == 5

    assert [r.getMessage() for r in caplog.records if r.name == "cogscope.state"] == [
        f"pruned 5 state points older than 30 days from the memory store {store.path} (5 kept)"
    ]
    with pytest.raises(StateNotKept, match=r"pruned .*\(kept COGSCOPE_STATE_DAYS=30 days\); replay .* --live-state"):
        store.point(points[2].id)
    assert db.execute("SELECT count(*) FROM state_log WHERE seq <= ?", (points[5].seq,)).fetchone()[0] == 0
    assert table_rows(store.restore_copy(points[5].id, tmp_path / "c5.sqlite")) == states[5]
    assert store.prune(30) == 0
    db.close()


def test_a_changed_log_row_fails_the_checksum_and_nothing_is_written(history, tmp_path):
    store, points, states = history
    live = Path(store.path)
    db = sqlite3.connect(live)
    with db:  # forge the energy one cycle had: a row between points 5 and 6
        db.execute(
            "UPDATE state_log SET v1 = 99 WHERE seq = "
            "(SELECT min(seq) FROM state_log WHERE tbl = 'energy' AND seq > ?)",
            (points[5].seq,),
        )
    db.close()
    before = live.read_bytes()

    with pytest.raises(StateCorrupt, match=r"fails its checksum .*altered.*; .*--live-state$"):
        store.restore_copy(points[3].id, tmp_path / "c3.sqlite")
    with pytest.raises(StateCorrupt, match="fails its checksum"):
        store.rollback(points[3].id)

    assert live.read_bytes() == before and not list(tmp_path.glob("*c3.sqlite*"))
    assert table_rows(store.restore_copy(points[7].id, tmp_path / "c7.sqlite")) == states[7]  # after it: still fine


def test_a_missing_log_row_fails_the_checksum(history, tmp_path):
    store, points, _ = history
    db = sqlite3.connect(store.path)
    with db:
        db.execute("DELETE FROM state_log WHERE seq = ?", (store.points(1)[0].seq,))  # after the newest point
    db.close()
    with pytest.raises(StateCorrupt, match="1 change log rows are missing"):
        store.restore_copy(points[8].id, tmp_path / "c8.sqlite")


def test_unknown_malformed_and_other_stores_states_are_not_kept(history, tmp_path):
    store, points, _ = history
    other = MemoryStore(tmp_path / "other.sqlite")
    foreign = other.checkpoint("elsewhere")

    with pytest.raises(StateNotKept, match=r"belongs to another memory store .*; run with that store .*--live-state"):
        store.point(foreign.id)
    with pytest.raises(StateNotKept, match=rf"{store.store_id}\.999999 is unknown to the memory store .*--live-state"):
        store.restore_copy(f"{store.store_id}.999999", tmp_path / "x.sqlite")
    with pytest.raises(StateNotKept, match="'not-a-state' is not a state id"):
        store.diff_to("not-a-state")
    with pytest.raises(StateNotKept, match="another memory store"):
        store.rollback(foreign.id)
    assert not (tmp_path / "x.sqlite").exists()
    for error in (StateNotKept, StateCorrupt):
        assert issubclass(error, StateError) and issubclass(error, MemoryStoreError)


def test_restore_copy_never_overwrites_a_file(history, tmp_path):
    store, points, _ = history
    taken = tmp_path / "taken.sqlite"
    taken.write_text("mine")
    with pytest.raises(StateError, match="exists already; choose a path that does not"):
        store.restore_copy(points[1].id, taken)
    assert taken.read_text() == "mine"
    with pytest.raises(StateError, match=r"^cannot write the state copy .*copy.sqlite: .*; choose a writable folder$"):
        store.restore_copy(points[1].id, taken / "copy.sqlite")  # a folder that is a file
    assert taken.read_text() == "mine" and not list(tmp_path.glob("**/.copy.sqlite.*"))


def set_immutable(path: Path, on: bool) -> None:
    """`chattr +i` / `-i` (ioctl FS_IOC_SETFLAGS): a file nobody can write, root included."""
    flags = array.array("l", [0])
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, 0x80086601, flags, True)  # FS_IOC_GETFLAGS
        flags[0] = flags[0] | 0x10 if on else flags[0] & ~0x10  # FS_IMMUTABLE_FL
        fcntl.ioctl(fd, 0x40086602, flags)  # FS_IOC_SETFLAGS
    finally:
        os.close(fd)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    """A store file that cannot be written, even by root."""
    path = tmp_path / "m.sqlite"
    store = MemoryStore(path)
    store.seed_example()
    store.checkpoint("c0")
    store.remember("a memory after the point")
    store.close()
    try:
        set_immutable(path, True)
    except OSError as e:
        pytest.skip(f"cannot make a file immutable here: {e}")
    yield path
    set_immutable(path, False)


def test_a_read_only_store_is_a_one_line_error_and_unchanged(immutable, tmp_path):
    before = immutable.read_bytes()
    store = MemoryStore(immutable)
    point = store.points(1)[0]
    for act in (lambda: store.rollback(point.id), lambda: store.prune(0)):
        with pytest.raises(MemoryStoreError, match=r"^cannot write the memory store .*readonly.*writable[^\n]*$"):
            act()
    assert table_rows(store.restore_copy(point.id, tmp_path / "copy.sqlite"))["memories"][-1][1] != (
        "a memory after the point"
    )  # reading it still works
    store.close()
    assert immutable.read_bytes() == before


def test_a_locked_store_is_a_one_line_error_and_unchanged(history):
    store, points, _ = history
    before = table_rows(Path(store.path))
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    store._db.execute("PRAGMA busy_timeout = 50")  # not the 5 s a store waits
    try:
        for act in (lambda: store.rollback(points[2].id), lambda: store.prune(0), lambda: store.checkpoint("c")):
            with pytest.raises(MemoryStoreError, match=r"^cannot (write|read) the memory store .*locked[^\n]*$"):
                act()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert table_rows(Path(store.path)) == before


def test_a_schema_version_2_store_migrates_and_keeps_its_data(tmp_path):
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for version in (1, 2):
        for statement in _statements(_MIGRATIONS[version]):
            db.execute(statement)
    db.execute("INSERT INTO memories(text, tags) VALUES ('The user walks the dog at seven', 'routine')")
    db.execute("INSERT INTO goals(text, priority) VALUES ('Walk the dog', 4)")
    db.execute("UPDATE energy SET current = 42")
    db.execute("PRAGMA user_version = 2")
    db.close()
    old = table_rows(path)

    store = MemoryStore(path)

    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3
    assert table_rows(path) == old and store.recall("dog")[0].text == "The user walks the dog at seven"
    assert sqlite3.connect(path).execute("SELECT count(*) FROM state_log").fetchone()[0] == 0
    point = store.checkpoint("first")
    store.remember("The dog prefers the park")
    assert table_rows(store.restore_copy(point.id, tmp_path / "copy.sqlite")) == old


def test_the_change_log_covers_every_table_and_column_of_the_store(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite")
    db = sqlite3.connect(store.path)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    kept_apart = {"memories_fts", "sqlite_sequence", "state_log", "state_points", "state_meta"}
    assert set(TRACKED) == {n for n in names if n not in kept_apart and not n.startswith("memories_fts_")}
    for table, columns in TRACKED.items():
        assert tuple(r[1] for r in db.execute(f"PRAGMA table_info({table})")) == columns
        assert len(columns) <= VALUES
    db.close()
