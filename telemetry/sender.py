"""The sender: the background thread that moves spooled spans into Phoenix (the spool itself is `telemetry.spool`).

Each round it leases the rows whose next action is due, POSTs waiting spans to the collector endpoint they were meant
for (many spans per request: serialized `ExportTraceServiceRequest`s concatenate into one), with backoff while
Phoenix is down and honouring 503/429 (`Retry-After`) back-pressure; then it asks Phoenix (the REST call of its own
client's `spans.get_spans(span_ids=...)`) whether the sent spans are stored: found, deleted from the spool; not found
a while after sending (Phoenix died before writing them), waiting again. See `telemetry.spool` for why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from urllib.parse import quote

import httpx

from .spool import SENT, WAITING, Row, Spool, SpoolCounts, lease_owner_id

log = logging.getLogger("cogscope.spool")

HTTP_TIMEOUT_S = 15.0
MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_REQUEST_SPANS = 500
CONFIRM_CHUNK = 100  # span ids per query (they go in the URL)
RESEND_AFTER_S = 10.0  # a sent span not found in Phoenix this long after sending is sent again (doubling per try)
MAX_BACKOFF_S = 30.0


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(MAX_BACKOFF_S, max(0.1, float(response.headers.get("retry-after", ""))))
    except ValueError:
        return default


def _base_url(endpoint: str) -> str:
    return endpoint[: -len("/v1/traces")] if endpoint.endswith("/v1/traces") else endpoint


class Sender:
    """The background thread that moves spooled spans into Phoenix (see the module's docstring)."""

    def __init__(
        self,
        spool: Spool,
        *,
        headers: dict[str, str] | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.spool = spool
        self.owner = lease_owner_id()
        self.poll_s = poll_s
        self._http = httpx.Client(timeout=HTTP_TIMEOUT_S, headers=headers or {})
        self._blocked: dict[str, float] = {}  # endpoint -> until when it is left alone
        self._backoff: dict[str, float] = {}
        self._down: set[str] = set()  # endpoints said to be down (said once, and again when back)
        self.busy_answers = 0  # 429/503 answers: Phoenix's back-pressure, honoured
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sender:
        self.spool.release_dead_leases()
        self._thread = threading.Thread(target=self._run, name="cogscope-spool-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a daemon: one stuck in a request must not hold up the exit
        self._http.close()

    def drain(self, timeout: float, *, endpoint: str | None = None) -> SpoolCounts:
        """Wait up to `timeout` s until nothing for `endpoint` (default: anything) is left; returns what is left."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.spool.counts(endpoint=endpoint)
            if counts.pending == 0 or time.monotonic() >= deadline:
                return counts
            time.sleep(0.1)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception as e:  # the sender never dies: it tries again later
                log.warning("cogscope: the span sender failed (%s: %s); retrying", type(e).__name__, e)
                busy = False
            if not busy:
                self._stop.wait(self.poll_s)

    def step(self) -> bool:
        """One round: send what waits, check what was sent. Returns whether there was anything to do."""
        now = time.time()
        blocked = [e for e, until in self._blocked.items() if until > now]
        rows = self.spool.claim(self.owner, blocked=blocked)
        if not rows:
            return False
        by_endpoint: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            by_endpoint[row.endpoint].append(row)
        for endpoint, group in by_endpoint.items():
            waiting = [r for r in group if r.state == WAITING]
            sent = [r for r in group if r.state == SENT]
            if waiting:
                self._send(endpoint, waiting)
            if sent:
                self._confirm(endpoint, sent)
        return True

    # -- sending ------------------------------------------------------------------------------
    def _send(self, endpoint: str, rows: list[Row]) -> None:
        chunks: list[list[Row]] = [[]]
        size = 0
        for row in rows:
            if chunks[-1] and (len(chunks[-1]) >= MAX_REQUEST_SPANS or size + len(row.body) > MAX_REQUEST_BYTES):
                chunks.append([])
                size = 0
            chunks[-1].append(row)
            size += len(row.body)
        for number, chunk in enumerate(chunks):
            if not self._post(endpoint, chunk):
                self.spool.release([r.id for c in chunks[number + 1 :] for r in c])  # busy or down: the rest later
                return

    def _post(self, endpoint: str, rows: list[Row]) -> bool:
        ids = [r.id for r in rows]
        try:
            response = self._http.post(
                endpoint, content=b"".join(r.body for r in rows), headers={"Content-Type": "application/x-protobuf"}
            )
        except httpx.HTTPError as e:
            self._pause(endpoint, ids, None, f"{type(e).__name__}: {e}")
            return False
        if response.status_code < 300:
            self.spool.sent(ids)
            self._up(endpoint)
            return True
        if response.status_code in (408, 429) or response.status_code >= 500:
            self._pause(endpoint, ids, response, f"HTTP {response.status_code}")
            return False
        if len(rows) > 1:  # one bad span must not hold back the others: find it
            half = len(rows) // 2
            return self._post(endpoint, rows[:half]) and self._post(endpoint, rows[half:])
        note = f"HTTP {response.status_code}: {response.text[:200]}"
        self.spool.reject(ids, note)
        log.warning(
            "cogscope: Phoenix at %s refused span %s (%s); it stays in %s",
            endpoint,
            rows[0].span_id,
            note,
            self.spool.path,
        )
        return True

    def _pause(self, endpoint: str, ids: list[int], response: httpx.Response | None, why: str) -> None:
        delay = min(MAX_BACKOFF_S, max(0.5, self._backoff.get(endpoint, 0.25) * 2))
        if response is not None:
            delay = _retry_after(response, delay)
        self._backoff[endpoint] = delay
        until = time.time() + delay
        self._blocked[endpoint] = until
        self.spool.later(ids, until)
        busy = response is not None and response.status_code in (429, 503)
        self.busy_answers += busy
        if endpoint not in self._down and not busy:
            self._down.add(endpoint)
            counts = self.spool.counts(endpoint=endpoint)
            log.warning(
                "cogscope: Phoenix at %s does not take spans (%s); %d span(s) wait in the spool %s and are sent "
                "when it is back",
                _base_url(endpoint),
                why,
                counts.pending,
                self.spool.path,
            )

    def _up(self, endpoint: str) -> None:
        self._backoff.pop(endpoint, None)
        self._blocked.pop(endpoint, None)
        if endpoint in self._down:
            self._down.discard(endpoint)
            log.warning("cogscope: Phoenix at %s takes spans again; sending the spooled ones", _base_url(endpoint))

    # -- confirming ---------------------------------------------------------------------------
    def _stored_ids(self, endpoint: str, project: str, span_ids: list[str]) -> set[str] | None:
        """Which of `span_ids` Phoenix has stored (None: it does not answer).

        The same REST call as phoenix.client's `spans.get_spans(span_ids=...)`, made with httpx: importing
        phoenix.client imports the Phoenix server package (~20 s of CPU here), too much for every `cogscope run`.
        """
        url = f"{_base_url(endpoint)}/v1/projects/{quote(project, safe='')}/spans"
        try:
            response = self._http.get(
                url, params={"span_id": span_ids, "limit": len(span_ids)}, headers={"accept": "application/json"}
            )
        except httpx.HTTPError:
            return None
        if response.status_code == 404:  # the project does not exist yet: nothing of it is stored
            return set()
        if response.status_code != 200:
            return None
        try:
            return {span["context"]["span_id"] for span in response.json()["data"]}
        except (ValueError, KeyError, TypeError):
            return None

    def _confirm(self, endpoint: str, rows: list[Row]) -> None:
        by_project: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            by_project[row.project].append(row)
        now = time.time()
        for project, group in by_project.items():
            for start in range(0, len(group), CONFIRM_CHUNK):
                chunk = group[start : start + CONFIRM_CHUNK]
                have = self._stored_ids(endpoint, project, [r.span_id for r in chunk])
                if have is None:  # Phoenix does not answer: ask again later
                    self.spool.later([r.id for r in chunk], now + 2)
                    continue
                self.spool.stored([r.id for r in chunk if r.span_id in have])
                missing = [r for r in chunk if r.span_id not in have]
                lost = [r for r in missing if now - (r.sent_at or now) >= RESEND_AFTER_S * 2 ** min(r.tries - 1, 4)]
                self.spool.resend([r.id for r in lost])
                wait = [r for r in missing if r not in lost]
                if wait:
                    age = now - min(r.sent_at or now for r in wait)
                    self.spool.later([r.id for r in wait], now + (0.3 if age < 2 else 1.0 if age < 10 else 3.0))


def otlp_headers() -> dict[str, str]:
    """Headers for the collector, from the same variables OpenTelemetry's OTLP exporter reads."""
    from opentelemetry.util.re import parse_env_headers

    raw = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or os.environ.get("OTEL_EXPORTER_OTLP_HEADERS") or ""
    return dict(parse_env_headers(raw, liberal=True)) if raw else {}
