"""A small real reverse proxy on loopback, set up as the README's nginx example: for the tests of an app behind one.

It does what these nginx lines do, and nothing else:

    proxy_pass http://127.0.0.1:7860;
    proxy_set_header Host $host;                        # the name the browser asked for, without its port
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_buffering off;                                # Gradio streams its events
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import uvicorn

from .helpers import wait_until

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)


class ReverseProxy:
    """Forwards every HTTP request on 127.0.0.1:`port` to `upstream`, streaming the answer back."""

    def __init__(self, upstream: str, port: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="test-reverse-proxy", daemon=True)

    def __enter__(self) -> ReverseProxy:
        self._thread.start()
        wait_until(
            lambda: self._server.started, timeout=10, interval=0.05, what="the test's reverse proxy did not start"
        )
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http", scope["type"]
        incoming = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        host = dict(incoming).get(b"host", b"").decode("latin-1")
        headers = [(k, v) for k, v in incoming if k not in (b"host", b"x-forwarded-for", b"x-forwarded-proto")]
        headers += [
            (b"host", _without_port(host).encode("latin-1")),
            (b"x-forwarded-for", scope["client"][0].encode()),
            (b"x-forwarded-proto", scope["scheme"].encode()),
        ]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        url = self.upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        async with httpx.AsyncClient(timeout=None) as client:
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP],
                    }
                )
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            except OSError:  # the client went away mid-stream (uvicorn's ClientDisconnected)
                pass
            finally:
                await response.aclose()


def _without_port(host: str) -> str:
    """nginx's $host: the Host header's name, without the port."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host
