"""A cap on the size of request bodies: ``413 Content Too Large`` (RFC 9110 §15.5.14).

A ``Content-Length`` over ``max_size`` is refused before the app runs and
before a byte of the body is read.  A body without one (chunked, HTTP/2
streams) is counted as the app reads it: the read that crosses the limit
raises :class:`RequestBodyTooLarge`, an ``HTTPException(413)`` — an asgikit
route answers it as such, and if it reaches this middleware unanswered, the
middleware sends the 413 itself (when no response has started yet).  A
malformed ``Content-Length`` gets ``400``.

``body_limit`` wraps an ASGI app, so it can guard one route as well as a
whole stack: ``route("/upload", body_limit(upload_app, max_size=...))``
where ``upload_app`` is an ASGI app (a class, a ``router``, a response),
or ``mount("/upload", body_limit(router(route("/", upload)), max_size=...))``
for a request handler function.  Handing it a handler function directly is
a ``TypeError``.  WebSocket and lifespan scopes pass through.
"""

from __future__ import annotations

import inspect
from typing import Any

from asgikit._send import wrap_send
from asgikit.composition import middleware
from asgikit.exceptions import HTTPException
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._http import text_response
from asgikit.types import ASGIApp, Message, Receive, Scope, Send


class RequestBodyTooLarge(HTTPException):
    """The request body grew past ``body_limit``'s ``max_size`` while it was read."""

    def __init__(self, max_size: int) -> None:
        super().__init__(413, f"Request body larger than {max_size} bytes")
        self.max_size = max_size


def _looks_like_request_handler(app: Any) -> bool:
    if not inspect.isfunction(app):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = inspect.signature(app).parameters.values()
    return sum(1 for p in parameters if p.kind in kinds and p.default is p.empty) == 1


@middleware
def body_limit(app: ASGIApp, *, max_size: int, exclude: Exclude = None) -> ASGIApp:
    """Refuse request bodies larger than ``max_size`` bytes with ``413``."""
    if max_size < 0:
        raise ValueError("max_size must not be negative")
    if _looks_like_request_handler(app):
        raise TypeError(
            "body_limit wraps an ASGI app, not a request handler: wrap a router "
            "(mount('/path', body_limit(router(route('/', handler)), max_size=...))) "
            "or read with request.body(max_size=...)"
        )
    excluded = compile_exclude(exclude)
    too_large = f"Request body larger than {max_size} bytes"

    async def body_limit_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (excluded is not None and excluded(scope)):
            await app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                value = value.strip()
                if not value.isdigit():
                    await text_response(scope, receive, send, 400, "Invalid Content-Length")
                    return
                # A length with more digits than any max_size needs no int().
                if len(value) > 18 or int(value) > max_size:
                    await text_response(scope, receive, send, 413, too_large)
                    return
                break

        received = 0
        raised: RequestBodyTooLarge | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, raised
            if raised is not None:
                raise raised
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_size:
                    raised = RequestBodyTooLarge(max_size)
                    raise raised
            return message

        async def on_start(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await app(scope, limited_receive, wrap_send(send, {"http.response.start": on_start}))
        except RequestBodyTooLarge as exc:
            if exc is not raised:
                raise  # another body_limit's, further in
            if started:
                raise
            await text_response(scope, receive, send, 413, too_large)

    return body_limit_app


__all__ = ["RequestBodyTooLarge", "body_limit"]
