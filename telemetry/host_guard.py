"""Refuse what a web page of another site sends to a server on this machine: a foreign Host, a foreign Origin.

A page cannot read or drive a server of another origin, unless its own name is made to point at that server (DNS
rebinding: the browser then sends the page's name as Host) or the server accepts requests it makes across origins
(its Origin header says so). One ASGI guard, used twice: around cogscope's app (`ui.web_access`) and around the
Phoenix cogscope starts, which loads this very file through Phoenix's own setting PHOENIX_FASTAPI_MIDDLEWARE_PATHS
(`telemetry.phoenix_server`). So this file imports nothing of cogscope's, and no dataclass (Phoenix loads it without
registering it as a module).

- **Host**: a loopback name (`localhost`, 127.0.0.0/8, `::1`) on any port (an ssh tunnel changes the port), a name
  given in `names` (the public name behind a reverse proxy), and, for a server that listens beyond loopback, any IP
  address (a rebound page's Host is its own name, never an address). Anything else, or none: 403.
- **Origin**, when a request has one (browsers send it on every request a page makes but same-origin reads): the
  request's own (`scheme://` + its Host) or one in `origins`. Anything else, `null` included: 403, whatever the
  method. Requests without an Origin (a typed URL, scripts, OTLP exporters) pass.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost"})
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
REFUSED = 403


def split_host(host: str) -> tuple[str, str]:
    """`Host` header -> (name, port): `[::1]:7860` -> (`::1`, `7860`); the name lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest.removeprefix(":")
    name, _, port = host.partition(":") if host.count(":") == 1 else (host, "", "")
    return name, port


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normal_origin(origin: str) -> str:
    """`HTTPS://Name.example:443/` -> `https://name.example`: how two origins compare."""
    parts = urlsplit(origin.strip())
    name, port = split_host(parts.netloc)
    scheme = parts.scheme.lower()
    bracketed = f"[{name}]" if ":" in name else name
    return f"{scheme}://{bracketed}" + (f":{port}" if port and port != DEFAULT_PORTS.get(scheme) else "")


def shown(text: str, limit: int = 100) -> str:
    """A header's value, safe to echo in a one-line answer."""
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


class HostRules:
    """Which Host and Origin headers a server accepts; `what`, `served_as` and `fix` word its refusals."""

    def __init__(
        self,
        *,
        what: str,
        served_as: str,
        fix: str,
        names: tuple[str, ...] = (),
        origins: tuple[str, ...] = (),
        any_ip: bool = False,
    ) -> None:
        self.what, self.served_as, self.fix = what, served_as, fix
        self.names = frozenset(n.lower() for n in names if n)
        self.origins = frozenset(normal_origin(o) for o in origins if o)
        self.any_ip = any_ip

    def host_allowed(self, name: str) -> bool:
        return is_loopback_name(name) or name in self.names or (self.any_ip and _is_ip(name))

    def problem(self, headers: dict[bytes, bytes]) -> str | None:
        """Why a request with these headers is refused (one line), or None."""
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.host_allowed(split_host(host)[0]):
            return f"{self.what} is served as {self.served_as}, not as {shown(host)}; {self.fix}"
        origin = headers.get(b"origin")
        if origin is None:
            return None
        text = origin.decode("latin-1")
        if text.strip() != "null" and "://" in text:
            own = {normal_origin(f"{s}://{host}") for s in ("http", "https")}  # TLS may end at a proxy
            if normal_origin(text) in own | self.origins:
                return None
        return (
            f"{self.what} refuses requests a page of another origin makes (origin {shown(text)}); open it as "
            f"{self.served_as} itself"
        )


class HostGuard:
    """ASGI middleware: refuse (403, one line of text) every HTTP request and websocket `rules` refuses."""

    def __init__(self, app: Any, rules: HostRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = self.rules.problem(dict(scope.get("headers") or ()))
            if problem is not None:
                await plain_answer(scope, send, REFUSED, problem)
                return
        await self.app(scope, receive, send)


async def plain_answer(
    scope: MutableMapping[str, Any], send: Any, status: int, line: str, headers: tuple[Any, ...] = ()
) -> None:
    """Answer with `status` and `line` (text): an HTTP response; a websocket is closed before it opens."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = (line + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- the Phoenix cogscope starts: Phoenix builds this class itself (PHOENIX_FASTAPI_MIDDLEWARE_PATHS) ---------------
def phoenix_rules(environ: Any = None) -> HostRules:
    """The rules of the Phoenix serving on $PHOENIX_HOST:$PHOENIX_PORT (set by cogscope when it starts it)."""
    env = os.environ if environ is None else environ
    host, port = env.get("PHOENIX_HOST", "127.0.0.1"), env.get("PHOENIX_PORT", "6006")
    served = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    return HostRules(
        what="this Phoenix (started by cogscope)",
        served_as=served,
        fix=f"open it as {served}",
        names=(host,),
        any_ip=not is_loopback_name(host),
    )


PHOENIX_GUARD = "PhoenixGuard"  # the class Phoenix builds: made on first use (Starlette is imported only then)


def _phoenix_guard_class() -> type:
    from starlette.middleware.base import BaseHTTPMiddleware

    class PhoenixGuard(BaseHTTPMiddleware):
        """HostGuard with `phoenix_rules()`. Phoenix takes only BaseHTTPMiddleware subclasses, built with the app
        alone; this one is a plain ASGI middleware under that name (BaseHTTPMiddleware lets websockets through)."""

        def __init__(self, app: Any) -> None:
            self.app = app
            self._guard = HostGuard(app, phoenix_rules())

        async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            await self._guard(scope, receive, send)

    return PhoenixGuard


def __getattr__(name: str) -> Any:
    if name == PHOENIX_GUARD:
        return _phoenix_guard_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
