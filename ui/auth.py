"""Log-ins for an app bound beyond loopback: Gradio's own auth, credentials from a file or a variable.

Credentials never come from the command line (it shows in `ps` and shell history): `--auth-file FILE`
holds one `user:password` per line (blank lines and `#` comments skipped), `--auth-env VAR` names an
environment variable that holds `user:password` (several separated by newlines). Passwords are
compared in constant time and never printed.
"""

from __future__ import annotations

import hmac
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

MIN_PASSWORD = 8


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
