"""Log-ins for an app bound beyond loopback: Gradio's own auth, credentials from a file or a variable.

Credentials never come from the command line (it shows in `ps` and shell history): `--auth-file FILE`
holds one `user:password` per line (blank lines and `#` comments skipped), `--auth-env VAR` names an
environment variable that holds `user:password` (several separated by newlines). Passwords are
compared in constant time and never printed.

Guessing is slowed down: after `PER_USER` failed log-ins for one user name, or `PER_ADDRESS` from one address,
within `WINDOW_S`, every further try for that name or from that address (the right password too) is answered
429 "too many failed log-ins; wait N s" until the oldest of those failures is `WINDOW_S` old.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import stat
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from starlette.types import Receive

MIN_PASSWORD = 8
PER_USER = 5  # failed log-ins for one user name within the window
PER_ADDRESS = 20  # failed log-ins from one client address within the window
WINDOW_S = 300.0
LOGIN_PATHS = ("/login", "/login/")
MAX_LOGIN_FORM = 64 * 1024  # a log-in form is a name and a password


@dataclass(frozen=True)
class Credentials:
    _passwords: dict[str, str] = field(repr=False)

    @property
    def users(self) -> list[str]:
        return sorted(self._passwords)

    def check(self, user: str, password: str) -> bool:
        """Gradio's auth callable: True when the user exists and the password matches."""
        expected = self._passwords.get(user or "")
        # compare even for an unknown user, so the answer takes as long either way
        ok = hmac.compare_digest((password or "").encode(), (expected or "\0" * 32).encode())
        return bool(expected) and ok


def _parse(text: str, where: str) -> Credentials:
    passwords: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        user = user.strip()
        if not sep or not user:
            raise UsageError(f"{where} line {number} is not user:password; write one user:password per line")
        if len(password) < MIN_PASSWORD:
            raise UsageError(
                f"{where} line {number}: the password of {user!r} is shorter than {MIN_PASSWORD} characters; "
                "use a longer one"
            )
        passwords[user] = password
    if not passwords:
        raise UsageError(f"{where} holds no user:password line; add one")
    return Credentials(passwords)


def load_credentials(*, file: str | None = None, env_var: str | None = None) -> Credentials | None:
    """The log-ins the operator named, or None when none was named; UsageError on anything malformed."""
    if file and env_var:
        raise UsageError("give log-ins with --auth-file or --auth-env, not both")
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise UsageError(f"--auth-env {env_var}: the variable is not set; export {env_var}=user:password")
        return _parse(value, f"${env_var}")
    if file:
        path = Path(file).expanduser()
        try:
            text = path.read_text()
        except OSError as e:
            raise UsageError(f"cannot read --auth-file {path}: {e.strerror}; give a readable file") from None
        except UnicodeDecodeError:
            raise UsageError(f"--auth-file {path} is not text; write one user:password per line") from None
        credentials = _parse(text, f"--auth-file {path}")
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = 0
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            print(f"cogscope: warning: {path} is readable by other users; chmod 600 {path}", file=sys.stderr)
        return credentials
    return None


# -- every route behind the log-in ---------------------------------------------------------------
# Gradio checks the log-in on its page data and API routes, but a few (cancel, reset, startup events,
# run history, ...) answer anyone. This middleware closes them all: without a valid session cookie only
# the log-in page and the files it is drawn with are served.
PUBLIC_PATHS = frozenset(
    {
        "/",
        "/login",
        "/login/",
        "/favicon.ico",
        "/manifest.json",
        "/robots.txt",
        "/theme.css",
        "/gradio_api/theme.css",
        "/gradio_api/login_check",
        "/gradio_api/login_check/",
        "/gradio_api/app_id",
        "/gradio_api/app_id/",
        "/gradio_api/startup-events",  # Gradio calls it itself once at launch; it does nothing after
    }
)
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")


class RequireLogin:
    """ASGI middleware for Gradio's App: with auth on, every route but the log-in page needs a session."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b'{"detail":"Not authenticated: log in first"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _allowed(scope: dict[str, Any]) -> bool:
        gradio_app = scope.get("app")
        if getattr(gradio_app, "auth", None) is None:
            return True  # no log-in configured (loopback)
        path = scope.get("path", "")
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return True
        cookies = _cookies(scope)
        cookie_id = getattr(gradio_app, "cookie_id", "")
        tokens = getattr(gradio_app, "tokens", {}) or {}
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            token = cookies.get(name)
            if token and token in tokens:
                return True
        return False


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header: no session
                return {}
    return {key: morsel.value for key, morsel in jar.items()}


# -- guessing passwords ---------------------------------------------------------------------------------------------
class LoginLimit:
    """Failed log-ins per user name and per client address, within a sliding window."""

    MAX_KEYS = 10_000  # names and addresses remembered at most (a spray of made-up names cannot grow it further)

    def __init__(
        self,
        *,
        per_user: int = PER_USER,
        per_address: int = PER_ADDRESS,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.window_s = window_s
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, user: str, address: str) -> float:
        """Seconds until `user` may try again from `address` (0.0: now)."""
        now = self.clock()
        with self._lock:
            waits = [0.0]
            for key in (("user", user), ("address", address)):
                times = self._recent(key, now)
                limit = self.limits[key[0]]
                if len(times) >= limit:  # free again once the limit-th latest failure leaves the window
                    waits.append(times[len(times) - limit] + self.window_s - now)
            return max(waits)

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (("user", user), ("address", address)):
                self._recent(key, now).append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(("user", user), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque(maxlen=max(self.limits.values())))
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times


class LimitLogins:
    """ASGI middleware around Gradio's log-in route: refuses tries past the limit, counts the failures."""

    def __init__(self, app: Any, limit: LoginLimit | None = None) -> None:
        self.app = app
        self.limit = limit or LoginLimit()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in LOGIN_PATHS:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, MAX_LOGIN_FORM)
        if body is None:
            await _json(send, 413, "the log-in form is too large")
            return
        user = await _form_user(scope, body)
        address = (scope.get("client") or ("?", 0))[0]
        wait = self.limit.wait(user, address)
        if wait > 0:
            seconds = math.ceil(wait)
            await _json(send, 429, f"too many failed log-ins; wait {seconds} s and try again", seconds)
            return
        status: list[int] = []

        async def replay() -> dict[str, Any]:
            if not status:
                status.append(0)
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[:] = [message["status"]]
            await send(message)

        await self.app(scope, replay, watch)
        if status == [400]:
            self.limit.failed(user, address)
        elif status == [200]:
            self.limit.succeeded(user)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return body


async def _form_user(scope: dict[str, Any], body: bytes) -> str:
    """The user name in a log-in form (urlencoded or multipart, as Gradio's page sends it)."""
    from starlette.requests import Request

    async def once() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, once).form()
        return str(form.get("username") or "").strip()
    except Exception:  # a malformed form: Gradio answers it; counted under no name
        return ""


async def _json(send: Any, status: int, detail: str, retry_after: int | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
