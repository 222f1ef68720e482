"""The state protocol of users' own agents: how an agent hands cogscope the state it keeps between cycles.

An agent keeps state cogscope can give back to its re-runs when its factory takes a `state_dir` argument
(`defaults.STATE_DIR_OPTION`): cogscope calls `factory(models, state_dir=FOLDER, **options)` and the agent keeps
everything it reads and writes between cycles under FOLDER. A live cycle gets the agent's live folder; a re-run
(replay, fork, stub) gets a new empty scratch folder, filled with the state the cycle started from, and removed when
the re-run ends. A re-run's agent is never given the live folder, so it cannot write it: that holds by construction,
whatever the agent's tools do with the folder they are given.

How the state is taken, right before each cycle's root span opens:
- by default, cogscope archives the folder's regular files (`pack_folder`: a tar in a fixed member order, times and
  owners zeroed, gzip'd with no time stamp, so an unchanged folder gives the same bytes; SQLite's `-shm` files, which
  SQLite rebuilds, and symbolic links are left out). State id `files-<sha256>`. A re-run unpacks it into its scratch
  folder before the factory is called.
- an agent that has both `snapshot() -> bytes` and `restore(data: bytes) -> None` takes its state itself (a consistent
  SQLite backup while other threads write, a compact form, state held in memory): state id `snapshot-<sha256>`. A
  re-run calls the factory with an empty scratch folder, then `restore(data)` on the new agent, so what `restore`
  writes lands in the scratch folder (or the new agent's memory).

The bytes are kept once per distinct state (telemetry.state_blobs) and the id goes on the cycle's root span
(`cogscope.state`). A factory without `state_dir` keeps no state cogscope knows of: its cycles run and re-run as
before, whatever methods its agent has.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cogscope import defaults

from .errors import AgentStateError
from .state_blobs import StateBlobs

STATE_DIR = defaults.STATE_DIR_OPTION
FILES, SNAPSHOT = "files", "snapshot"  # how a state was taken: cogscope archived the folder, or the agent's snapshot()
STATE_ID = re.compile(r"^(files|snapshot)-([0-9a-f]{64})$")
SKIPPED_SUFFIXES = ("-shm",)  # SQLite's shared-memory index: rebuilt from the database and its WAL when opened
MAX_BYTES = defaults.STATE_SNAPSHOT_MAX_MB * 1_000_000

log = logging.getLogger("cogscope.state")


class StateProtocolError(AgentStateError):
    """An agent's state that cannot be taken or given back; the message says what and what to do."""


def parse_state_id(state_id: str | None) -> tuple[str, str] | None:
    """(how it was taken, its SHA-256) of an own agent's state id; None for any other id (a memory store's point)."""
    match = STATE_ID.match(state_id or "")
    return (match.group(1), match.group(2)) if match else None


def takes_own_snapshot(agent: Any) -> bool:
    """Whether the agent takes and gives back its state itself: it has both `snapshot()` and `restore(data)`."""
    return callable(getattr(agent, "snapshot", None)) and callable(getattr(agent, "restore", None))


# -- the folder as bytes ---------------------------------------------------------------------------------------------
def _members(folder: Path) -> list[tuple[str, Path, os.stat_result]]:
    """(name in the archive, path, stat) of the folder's sub-folders and regular files, in a fixed order."""
    found: list[tuple[str, Path, os.stat_result]] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        base = Path(root)
        for name in [*dirs, *sorted(files)]:
            path = base / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode) or name.endswith(SKIPPED_SUFFIXES):
                continue
            if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
                found.append((path.relative_to(folder).as_posix(), path, info))
    return sorted(found, key=lambda member: member[0])


def pack_folder(folder: Path, *, max_bytes: int = MAX_BYTES) -> bytes:
    """The folder's files as one gzip'd tar: the same files give the same bytes (module docstring)."""
    members = _members(folder)
    size = sum(info.st_size for _, _, info in members if stat.S_ISREG(info.st_mode))
    if size > max_bytes:
        raise StateProtocolError(
            f"the state folder {folder} holds {size / 1e6:,.0f} MB, more than the {max_bytes / 1e6:,.0f} MB cogscope "
            "keeps per cycle: keep less there, or give the agent snapshot() and restore() that keep what matters"
        )
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, path, info in members:
            entry = tarfile.TarInfo(name)
            entry.mtime, entry.uid, entry.gid, entry.uname, entry.gname = 0, 0, 0, "", ""
            if stat.S_ISDIR(info.st_mode):
                entry.type, entry.mode = tarfile.DIRTYPE, 0o700
                archive.addfile(entry)
                continue
            data = path.read_bytes()
            entry.size, entry.mode = len(data), 0o600
            archive.addfile(entry, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def unpack_folder(data: bytes, folder: Path, *, state_id: str, max_bytes: int = MAX_BYTES) -> None:
    """Unpack a `pack_folder` archive into `folder` (an empty scratch folder): only files and folders inside it."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = archive.getmembers()
            if sum(m.size for m in members) > max_bytes or not all(m.isfile() or m.isdir() for m in members):
                raise tarfile.TarError("members other than files and folders, or too large")
            archive.extractall(folder, filter="data")  # refuses absolute names, `..` and anything outside `folder`
    except (tarfile.TarError, OSError, EOFError) as e:
        raise StateProtocolError(
            f"the state {state_id} is not a state folder this cogscope unpacks ({e}): replay it against the current "
            "live state with --live-state"
        ) from None


# -- taking a state --------------------------------------------------------------------------------------------------
def take_state(agent: Any, folder: Path, *, max_bytes: int = MAX_BYTES) -> tuple[str, bytes]:
    """(how, bytes) of the state the agent has now: its own `snapshot()`, else its folder's files."""
    if not takes_own_snapshot(agent):
        return FILES, pack_folder(folder, max_bytes=max_bytes)
    data = agent.snapshot()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StateProtocolError(
            f"the agent's snapshot() returned {type(data).__name__}, not bytes: return the state as bytes"
        )
    data = bytes(data)
    if len(data) > max_bytes:
        raise StateProtocolError(
            f"the agent's snapshot() returned {len(data) / 1e6:,.0f} MB, more than the {max_bytes / 1e6:,.0f} MB "
            "cogscope keeps per cycle"
        )
    return SNAPSHOT, data


def keep_state(agent: Any, folder: Path, blobs: StateBlobs) -> str:
    """Take the agent's state and keep it (once per distinct state); returns its id, `files-...`/`snapshot-...`."""
    how, data = take_state(agent, folder)
    return f"{how}-{blobs.put(data)}"


def state_checkpoint(agent: Any, folder: Path, blobs: StateBlobs) -> Callable[[str], str | None]:
    """A cycle's checkpoint (telemetry `Cycle(checkpoint=...)`) that keeps the agent's state before the cycle."""

    def checkpoint(cycle_id: str) -> str | None:
        return keep_state(agent, folder, blobs)

    return checkpoint


# -- giving a state back ---------------------------------------------------------------------------------------------
def restore_into(state_id: str, blobs: StateBlobs, folder: Path) -> Callable[[Any], None]:
    """Give the kept state `state_id` back to a re-run whose agent is built on `folder` (a new, empty scratch folder):
    a `files-...` state is unpacked into it now; returns what to call with the new agent once the factory has built it
    (a `snapshot-...` state: its `restore(data)`). AgentStateError, one line: not such an id, not kept here (pruned,
    another data dir's), failing its checksum, or not unpackable."""
    parsed = parse_state_id(state_id)
    if parsed is None:
        raise StateProtocolError(
            f"{state_id[:80]!r} is not the id of an agent's own state (files-... or snapshot-...): replay it against "
            "the current live state with --live-state"
        )
    how, digest = parsed
    data = blobs.get(digest, state_id)
    if how == FILES:
        unpack_folder(data, folder, state_id=state_id)
        return lambda agent: None

    def restore(agent: Any) -> None:
        if not takes_own_snapshot(agent):
            raise StateProtocolError(
                f"the state {state_id} was taken by the agent's snapshot(), and the agent has no snapshot() and "
                "restore() now: give it both again, or replay against the current live state with --live-state"
            )
        agent.restore(data)

    return restore


_warned: set[str] = set()


def warn_unused_methods(agent: Any, name: str) -> None:
    """One warning line (once per agent and process) for an agent that has snapshot()/restore() but whose factory
    takes no `state_dir`."""
    if takes_own_snapshot(agent) and name not in _warned:
        _warned.add(name)
        log.warning(
            "cogscope: agent %s has snapshot() and restore(), but its factory takes no %s argument: cogscope keeps "
            'no state for it (add the argument; README "Your own agent\'s state")',
            name,
            STATE_DIR,
        )
