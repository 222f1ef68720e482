"""The page's second wall: a Content-Security-Policy on every response of the app.

Text from models, tools and traces is made inert where it is rendered (ui.render's `fence` and `inline`); should
anything slip through, the browser still loads no image, media, font or plug-in from anywhere but the app itself
(`data:` and `blob:` URLs are Gradio's own), and no form posts elsewhere. Links open only when clicked, as ever.
Scripts and styles are left to Gradio (its page needs inline ones).
"""

from __future__ import annotations

from typing import Any

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "font-src 'self' data:",
        "object-src 'none'",
        "form-action 'self'",
        "base-uri 'self'",
    )
)
_HEADER = b"content-security-policy"

Scope = dict[str, Any]
Receive = Any
Send = Any


class ContentSecurityPolicy:
    """ASGI middleware: sets CONTENT_SECURITY_POLICY on every HTTP response (replacing one the app set)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, CONTENT_SECURITY_POLICY.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_policy)
