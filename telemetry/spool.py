"""The span spool: every span goes to disk first, and leaves the disk only once Phoenix has stored it.

Why not OpenTelemetry's BatchSpanProcessor + OTLPSpanExporter alone: the processor drops what it cannot export
(Phoenix down, restarting, or answering 503 while its ingest queue is full), and Phoenix answers 200 *before* it
writes a span to its database, so even an accepted span vanishes if Phoenix dies a moment later. So:

1. `SpoolExporter.export` (behind a SimpleSpanProcessor: a span is on disk when `end()` returns) encodes each span
   with OpenTelemetry's own OTLP encoder and writes it to a SQLite file under the data dir (state WAITING).
2. The `Sender` thread (`telemetry.sender`) of any cogscope running on that data dir POSTs waiting spans to the
   collector endpoint they were meant for, with backoff while Phoenix is down. Then SENT.
3. The sender asks Phoenix whether the sent spans are stored. Found: deleted from the spool. Not found a while after
   sending (Phoenix died before writing them): WAITING again.

This module is the disk side: the queue (`Spool`) and the exporter that fills it; `telemetry.sender` is the network
side. Sending a span twice is safe: Phoenix inserts spans with `ON CONFLICT (span_id) DO NOTHING` (phoenix.db.
insertion.span), so a repeated span id is ignored and never shows twice. Delivery is therefore at-least-once on the
wire and exactly-once in Phoenix.

Rows are leased by the sender working on them, so two processes on one data dir never send the same rows at once; a
lease ends when its holder finishes, after LEASE_S, or at once when its process is gone (a SIGKILLed cogscope).
The spool is bounded (`max_bytes`): a span that does not fit is dropped, counted per trace and said so on stderr:
never silently.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .errors import TelemetryError

log = logging.getLogger("cogscope.spool")  # the sender logs under the same name: one place to look

SPOOL_FILE = "spool.sqlite"
DEFAULT_MAX_MB = 512
WAITING, SENT, REJECTED = 0, 1, 2
LEASE_S = 45.0  # a lease outlives one send + one confirmation (each bounded by sender.HTTP_TIMEOUT_S)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    project TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    body BLOB NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL,
    sent_at REAL,
    tries INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id);
CREATE INDEX IF NOT EXISTS spans_due ON spans(state, due);
CREATE TABLE IF NOT EXISTS dropped (trace_id TEXT PRIMARY KEY, spans INTEGER NOT NULL);
"""


class SpoolError(TelemetryError):
    pass


@dataclass(frozen=True)
class Row:
    id: int
    endpoint: str
    project: str
    trace_id: str
    span_id: str
    state: int
    sent_at: float | None
    tries: int
    body: bytes


@dataclass(frozen=True)
class SpoolCounts:
    waiting: int  # not yet accepted by Phoenix
    sent: int  # accepted, not yet found stored
    rejected: int  # refused by Phoenix (4xx): kept, never resent
    bytes: int

    @property
    def pending(self) -> int:
        return self.waiting + self.sent


def lease_owner_id() -> str:
    """A new lease holder's name: host/pid/random (`_alive` reads the first two back)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _alive(owner: str) -> bool:
    """Whether the process holding a lease may still be working: another host's, or a live pid here."""
    host, _, rest = owner.partition("/")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(rest.partition("/")[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Spool:
    """The on-disk queue of spans not yet stored in Phoenix (one SQLite file, shared by processes)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_MB * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._last_full_warning = 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600)  # prompts and outputs: for this user's eyes only, as the trace key
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # survives a killed process; WAL keeps the file sound
            self._db.executescript(_SCHEMA)
            self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        except (OSError, sqlite3.Error) as e:
            raise SpoolError(
                f"the span spool {self.path} cannot be opened ({e}); set COGSCOPE_DATA_DIR to a writable folder"
            ) from None

    @classmethod
    def in_dir(cls, data_dir: Path, *, max_mb: float = DEFAULT_MAX_MB) -> Spool:
        return cls(Path(data_dir) / SPOOL_FILE, max_bytes=int(max_mb * 1024 * 1024))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _used_bytes(self) -> int:
        pages = (
            self._db.execute("PRAGMA page_count").fetchone()[0]
            - self._db.execute("PRAGMA freelist_count").fetchone()[0]
        )
        return int(pages) * self._page_size

    # -- writing ------------------------------------------------------------------------------
    def put(self, endpoint: str, spans: Sequence[ReadableSpan]) -> int:
        """Store `spans` for `endpoint`; returns how many were stored (the rest did not fit and were counted)."""
        rows = []
        for span in spans:
            context = span.context
            if context is None:
                continue
            project = str((span.resource.attributes if span.resource else {}).get("openinference.project.name", ""))
            body = encode_spans([span]).SerializeToString()
            rows.append((format(context.trace_id, "032x"), format(context.span_id, "016x"), project, body))
        if not rows:
            return 0
        now = time.time()
        stored = 0
        full: dict[str, int] = defaultdict(int)
        with self._tx() as db:
            margin = 8 * self._page_size  # one insert may add a few pages
            room = self.max_bytes - self._used_bytes() - margin
            for trace_id, span_id, project, body in rows:
                # an estimate on the safe side (pages are not full; the indexes grow too), measured again when
                # it says the spool is full: a batch of spans fills the spool to its bound, not past it
                need = len(body) * 3 // 2 + 200
                if need > room:
                    room = self.max_bytes - self._used_bytes() - margin
                if need > room:
                    full[trace_id] += 1
                    continue
                room -= need
                db.execute(
                    "INSERT INTO spans (endpoint, project, trace_id, span_id, body, due) VALUES (?, ?, ?, ?, ?, ?)",
                    (endpoint, project, trace_id, span_id, body, now),
                )
                stored += 1
            for trace_id, count in full.items():
                db.execute(
                    "INSERT INTO dropped (trace_id, spans) VALUES (?, ?) "
                    "ON CONFLICT (trace_id) DO UPDATE SET spans = spans + excluded.spans",
                    (trace_id, count),
                )
        if full and now - self._last_full_warning > 30:
            self._last_full_warning = now
            total = self.dropped_total()
            log.warning(
                "cogscope: the span spool %s is full (%d MB, COGSCOPE_SPOOL_MB): new spans are dropped until Phoenix "
                "takes the waiting ones (%d dropped so far); start Phoenix or raise COGSCOPE_SPOOL_MB",
                self.path,
                self.max_bytes // (1024 * 1024),
                total,
            )
        return stored

    # -- reading ------------------------------------------------------------------------------
    def pending(self, trace_id: str) -> int:
        """Spans of this trace that Phoenix does not have yet (waiting or sent, not confirmed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM spans WHERE trace_id = ? AND state < ?", (trace_id, REJECTED)
            ).fetchone()
        return int(row[0])

    def dropped(self, trace_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT spans FROM dropped WHERE trace_id = ?", (trace_id,)).fetchone()
        return int(row[0]) if row else 0

    def dropped_total(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT total(spans) FROM dropped").fetchone()
        return int(row[0])

    def counts(self, *, endpoint: str | None = None) -> SpoolCounts:
        where, args = ("WHERE endpoint = ?", (endpoint,)) if endpoint else ("", ())
        with self._lock:
            found = dict(self._db.execute(f"SELECT state, count(*) FROM spans {where} GROUP BY state", args).fetchall())
            used = self._used_bytes()
        return SpoolCounts(found.get(WAITING, 0), found.get(SENT, 0), found.get(REJECTED, 0), used)

    # -- the sender's side --------------------------------------------------------------------
    def release_dead_leases(self) -> int:
        """Free rows leased by a process of this host that is gone (e.g. a cogscope killed mid-send)."""
        now = time.time()
        with self._lock:
            owners = [
                o
                for (o,) in self._db.execute(
                    "SELECT DISTINCT lease_owner FROM spans WHERE lease_until > ? AND lease_owner IS NOT NULL", (now,)
                )
            ]
        dead = [o for o in owners if not _alive(o)]
        if not dead:
            return 0
        with self._tx() as db:
            changed = 0
            for owner in dead:
                changed += db.execute(
                    "UPDATE spans SET lease_until = 0, lease_owner = NULL WHERE lease_owner = ?", (owner,)
                ).rowcount
        return changed

    def claim(self, owner: str, *, limit: int = 1000, blocked: Sequence[str] = ()) -> list[Row]:
        """Lease the rows whose next action (send, or check) is due."""
        now = time.time()
        skip = ",".join("?" * len(blocked))
        where = f"AND endpoint NOT IN ({skip})" if blocked else ""
        with self._tx() as db:
            found = db.execute(
                "UPDATE spans SET lease_owner = ?, lease_until = ? WHERE id IN ("
                f" SELECT id FROM spans WHERE state < ? AND due <= ? AND lease_until < ? {where}"
                " ORDER BY state DESC, due LIMIT ?"
                ") RETURNING id, endpoint, project, trace_id, span_id, state, sent_at, tries, "
                "CASE WHEN state = 0 THEN body ELSE x'' END",
                (owner, now + LEASE_S, REJECTED, now, now, *blocked, limit),
            ).fetchall()
        return [Row(*r) for r in found]

    def sent(self, ids: Sequence[int]) -> None:
        now = time.time()
        self._update(ids, "state = 1, sent_at = ?, tries = tries + 1, due = ?", (now, now + 0.3))

    def later(self, ids: Sequence[int], due: float) -> None:
        self._update(ids, "due = ?", (due,))

    def resend(self, ids: Sequence[int]) -> None:
        self._update(ids, "state = 0, due = ?", (time.time(),))

    def reject(self, ids: Sequence[int], note: str) -> None:
        self._update(ids, "state = 2, note = ?", (note[:500],))

    def stored(self, ids: Sequence[int]) -> None:
        if ids:
            with self._tx() as db:
                db.executemany("DELETE FROM spans WHERE id = ?", [(i,) for i in ids])

    def _update(self, ids: Sequence[int], assignments: str, args: tuple[Any, ...]) -> None:
        if not ids:
            return
        with self._tx() as db:
            db.executemany(
                f"UPDATE spans SET {assignments}, lease_until = 0, lease_owner = NULL WHERE id = ?",
                [(*args, i) for i in ids],
            )

    def release(self, ids: Sequence[int]) -> None:
        self._update(ids, "due = due", ())

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SpoolExporter(SpanExporter):
    """An OpenTelemetry exporter that writes to the spool; the Sender does the network part."""

    def __init__(self, spool: Spool, endpoint: str) -> None:
        self.spool = spool
        self.endpoint = endpoint

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.spool.put(self.endpoint, spans)
        except sqlite3.Error as e:
            log.warning("cogscope: could not write %d span(s) to the spool %s: %s", len(spans), self.spool.path, e)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
