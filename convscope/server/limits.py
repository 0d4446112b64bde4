"""The request-body cap: a body is refused (413) once its bytes pass :data:`MAX_BODY_BYTES`,
whether its length is stated up front or it arrives in chunks (``Transfer-Encoding: chunked``),
so no body larger than the cap is ever read whole."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

MAX_BODY_BYTES = 16 * 1024 * 1024  # a 512x512 RGB drawing is about 3 MB of JSON


def _too_large(size: int, limit: int) -> str:
    return f"the request body has {size:,} bytes or more; at most {limit:,} are accepted"


class BodyLimit:
    """ASGI middleware: refuse a stated ``Content-Length`` over ``limit`` before reading, and
    stop a streamed body as soon as the bytes received pass it (HTTPException 413, answered by
    the app's error handlers)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stated = dict(scope["headers"]).get(b"content-length", b"")
        if stated.isdigit() and int(stated) > self.limit:
            await error_response(413, _too_large(int(stated), self.limit))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, _too_large(received, self.limit))
            return message

        await self.app(scope, counted, send)
