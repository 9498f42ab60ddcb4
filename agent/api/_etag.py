"""ETags on GET responses of the control API, so pollers skip unchanged data.

The console polls every agent every few seconds. With an ETag, a view
whose data did not change costs a 304 with no body instead of the whole
list. The tag is a hash of the body, so the route's work is still done,
but nothing is sent or parsed again.
"""

from __future__ import annotations

import hashlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ETagMiddleware:
    """Add a strong ETag to 200 responses to GET, and return 304 when it matches."""

    def __init__(self, app: ASGIApp, prefix: str = "/api/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._finish(scope, start, bytes(body), send)
                return
            await send(message)

        await self.app(scope, receive, buffer)

    async def _finish(
        self, scope: Scope, start: Message | None, body: bytes, send: Send
    ) -> None:
        assert start is not None
        if start["status"] != 200:
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        tag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'.encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"etag"]
        headers.append((b"etag", tag))
        offered = {
            part.strip()
            for key, value in scope["headers"]
            if key == b"if-none-match"
            for part in value.split(b",")
        }
        if tag in offered:
            bodiless = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            await send(
                {"type": "http.response.start", "status": 304, "headers": bodiless}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
