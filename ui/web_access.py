"""Who reaches the app over HTTP: the names it is served as, the operator's token, and the public URL.

- **Host and Origin** (`telemetry.host_guard`): the app answers its loopback names on any port, the name of
  `--public-url` (behind a reverse proxy), and, bound beyond loopback, IP addresses and this machine's name; it
  refuses requests pages of other origins make. A page whose name is made to point at 127.0.0.1 (DNS rebinding)
  gets one line of refusal, and nothing runs.
- **The operator's token** (as Jupyter's): an app with no log-ins (bound to loopback) serves only browsers that
  opened the link `cogscope ui` printed. The link (`http://127.0.0.1:7860/?token=...`) sets a cookie (HttpOnly,
  SameSite=Strict, derived from the token, never the token itself) and redirects to the clean URL; scripts send
  `Authorization: token ...` instead. A new token is made at every start and is shown nowhere but in that link.
  Everything else is refused: reaching a loopback port is not enough to run agent files and commands as the
  operator (another user of the machine, a page of another site).
- **A public URL** (`--public-url`, COGSCOPE_PUBLIC_URL): behind a reverse proxy every visitor arrives from
  loopback, so the app then asks for log-ins, as one bound beyond loopback does, and treats everyone as a remote user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cogscope.telemetry import HostGuard, HostRules, is_loopback_name, plain_answer

from .errors import UsageError

TOKEN_PARAMETER = "token"
STARTUP_PATH = "/gradio_api/startup-events"  # Gradio calls it itself, once, while it starts; it does nothing after


def check_public_url(url: str | None) -> str | None:
    """`https://cogscope.example.com/` -> `https://cogscope.example.com`; None when none is set; UsageError if bad."""
    url = (url or "").strip().rstrip("/")
    if not url:
        return None
    form = "give it as https://NAME or https://NAME:PORT, the address people open"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise UsageError(f"--public-url {url[:200]!r} has a bad port; {form}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--public-url {url[:200]!r} is not a URL; {form}")
    if parts.path or parts.query or parts.fragment or parts.username:
        raise UsageError(f"--public-url {url[:200]!r} has more than a scheme, name and port; {form} (the app is "
                         "served at the root of that name)")  # fmt: skip
    return f"{parts.scheme}://{parts.netloc.lower()}"


def app_rules(host: str, port: int, public_url: str | None) -> HostRules:
    """The Host and Origin headers the app accepts, bound to `host`:`port`, served as `public_url` too."""
    bare = host.strip().strip("[]").lower()
    wide = not is_loopback_name(bare)
    names = [bare] + ([socket.gethostname()] if wide else [])
    if public_url:
        names.append(urlsplit(public_url).hostname or "")
    local = f"http://{'[' + bare + ']' if ':' in bare else bare}:{port}"
    served = public_url or (f"http://{socket.gethostname()}:{port} or an IP address of this machine" if wide else local)
    return HostRules(
        what="this app",
        served_as=served,
        fix="open it by that address; behind a reverse proxy, start cogscope with --public-url https://NAME "
        "(README: Security)",
        names=tuple(names),
        origins=(public_url,) if public_url else (),
        any_ip=wide,
    )


class OperatorToken:
    """The secret in the printed link; compared in constant time, never logged (repr hides it)."""

    def __init__(self, port: int) -> None:
        self._token = secrets.token_urlsafe(32)
        self.cookie = f"cogscope-operator-{port}"  # cookies are per host, not per port: one name per app
        self._cookie_value = hmac.new(self._token.encode(), b"cogscope operator cookie", hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"OperatorToken(cookie={self.cookie!r})"

    def link(self, base: str) -> str:
        return f"{base.rstrip('/')}/?{TOKEN_PARAMETER}={self._token}"

    def is_token(self, value: str) -> bool:
        return hmac.compare_digest(value.encode("utf-8", "replace"), self._token.encode())

    def is_cookie(self, value: str) -> bool:
        return hmac.compare_digest(value.encode("utf-8", "replace"), self._cookie_value.encode())

    def set_cookie(self, secure: bool) -> bytes:
        flags = "; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
        return f"{self.cookie}={self._cookie_value}{flags}".encode()


class RequireToken:
    """ASGI middleware: only requests carrying the operator's token (its cookie, or `Authorization: token ...`)
    reach the app; the printed link trades the token for the cookie."""

    REFUSAL = (
        "cogscope: open the link cogscope printed when it started (http://127.0.0.1:PORT/?token=...): this app "
        "serves only browsers that opened it, and the token in it changes with every start"
    )

    def __init__(self, app: Any, token: OperatorToken) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") == STARTUP_PATH:
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = [v for k, v in query if k == TOKEN_PARAMETER]
        if offered and scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            await self._trade(scope, send, offered[0], [(k, v) for k, v in query if k != TOKEN_PARAMETER])
            return
        if self._carries_token(scope):
            await self.app(scope, receive, send)
            return
        await plain_answer(scope, send, 401, self.REFUSAL)

    async def _trade(self, scope: dict[str, Any], send: Any, offered: str, rest: list[tuple[str, str]]) -> None:
        """The printed link: its token for the cookie, and a redirect to the same page without the token."""
        if not self.token.is_token(offered):
            await plain_answer(scope, send, 401, self.REFUSAL)
            return
        location = (scope.get("path") or "/") + (f"?{urlencode(rest)}" if rest else "")
        await plain_answer(
            scope,
            send,
            303,
            "cogscope: opening the app",
            ((b"location", location.encode()), (b"set-cookie", self.token.set_cookie(scope.get("scheme") == "https"))),
        )

    def _carries_token(self, scope: dict[str, Any]) -> bool:
        headers = scope.get("headers") or []
        for name, value in headers:
            if name == b"cookie" and any(
                key == self.token.cookie and self.token.is_cookie(val) for key, val in cookie_pairs(value)
            ):
                return True
            if name == b"authorization":
                scheme, _, credential = value.decode("latin-1").strip().partition(" ")
                if scheme.lower() == "token" and self.token.is_token(credential.strip()):
                    scope["headers"] = [(n, v) for n, v in headers if n != b"authorization"]  # not handed on
                    return True
        return False


def cookie_pairs(header: bytes) -> list[tuple[str, str]]:
    """A Cookie header's name=value pairs; tolerant of what other apps on 127.0.0.1 (any port) leave there."""
    pairs = []
    for part in header.decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            pairs.append((name.strip(), value.strip().strip('"')))
    return pairs


def app_middleware(*, host: str, port: int, public_url: str | None, token: OperatorToken | None) -> list[Any]:
    """The app's own middleware, outermost first: the Host/Origin guard, then the token (apps with no log-ins)."""
    from starlette.middleware import Middleware

    middleware = [Middleware(HostGuard, rules=app_rules(host, port, public_url))]
    if token is not None:
        middleware.append(Middleware(RequireToken, token=token))
    return middleware
