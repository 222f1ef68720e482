"""Kept starting states of users' own agents: one file per distinct state, named by the SHA-256 of its bytes.

`<data dir>/state-blobs/<sha256>` holds the bytes of one state (telemetry.state_protocol makes them). Identical states
are kept once: keeping one again only marks it used now (its modification time), which is what retention reads:
`prune(days)` removes the states no cycle has started from for longer than that (COGSCOPE_STATE_DAYS), and the
caller says how many went. Reading a state checks its bytes against its name: a file changed since fails its checksum.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from pathlib import Path

from cogscope import defaults

from .errors import AgentStateError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RETAIN_HINT = "replay it against the current live state with --live-state"


class StateBlobMissing(AgentStateError):
    """Not kept here: pruned, never kept on this data dir, or removed."""


class StateBlobCorrupt(AgentStateError):
    """Its bytes are not the ones its name says (changed or truncated since it was kept)."""


class StateBlobs:
    """The content-addressed folder of kept states."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def in_dir(cls, data_dir: Path | None = None) -> StateBlobs:
        return cls((data_dir or defaults.data_dir()) / defaults.STATE_BLOBS_FOLDER)

    def path(self, digest: str) -> Path:
        if not SHA256.match(digest):
            raise AgentStateError(f"{digest[:80]!r} is not a SHA-256 in hex (64 digits 0-9a-f)")
        return self.folder / digest

    def put(self, data: bytes) -> str:
        """Keep `data`; returns its SHA-256 (hex). Bytes kept already are not written again, only marked used now."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            os.utime(target)  # used again now: retention counts from here
            return digest
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f".{digest}.{secrets.token_hex(4)}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # a state may hold what the agent knows
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(part, target)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise AgentStateError(f"cannot keep the starting state in {self.folder}: {e.strerror or e}") from None
        return digest

    def get(self, digest: str, state_id: str | None = None) -> bytes:
        """The bytes kept under `digest` (StateBlobMissing, StateBlobCorrupt: one line naming `state_id`)."""
        name = state_id or digest
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StateBlobMissing(
                f"the state {name} is not kept in {self.folder} (it was pruned after COGSCOPE_STATE_DAYS, or kept on "
                f"another data dir): {_RETAIN_HINT}"
            ) from None
        except OSError as e:
            raise AgentStateError(f"cannot read the state {name} in {self.folder}: {e.strerror or e}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise StateBlobCorrupt(
                f"the state {name} fails its checksum (its file {self.path(digest)} changed since it was kept): "
                f"{_RETAIN_HINT}"
            )
        return data

    def prune(self, max_age_days: float) -> int:
        """Remove the states not used for `max_age_days` (and parts a crash left); returns how many states went."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - max_age_days * 86400
        pruned = 0
        for path in self.folder.iterdir():
            try:
                modified = path.stat().st_mtime
            except FileNotFoundError:
                continue
            if SHA256.match(path.name) and modified < cutoff:
                path.unlink(missing_ok=True)
                pruned += 1
            elif path.name.endswith(".part") and modified < time.time() - 86400:  # a crash's leftover
                path.unlink(missing_ok=True)
        return pruned
