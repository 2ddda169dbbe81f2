"""A cap on the size of request bodies: ``413 Content Too Large`` (RFC 9110 §15.5.14).

A ``Content-Length`` over ``max_size`` is refused before the app runs and
before a byte of the body is read.  A body without one (chunked, HTTP/2
streams) is counted as the app reads it: the read that crosses the limit
raises :class:`RequestBodyTooLarge`, an ``HTTPException(413)`` — an asgikit
route answers it as such, and if it reaches this middleware unanswered, the
middleware sends the 413 itself (when no response has started yet).  A
malformed ``Content-Length`` gets ``400``.

Some frameworks answer *any* exception from inside with a generic 500
(Litestar's per-route exception middleware, Django's handler): when the
body crossed the limit and the app then starts a 500, that answer is
replaced by the 413 it stands for.

It guards one route as well as a whole stack:
``route("/upload", body_limit(upload, max_size=...))`` takes an ASGI app or
an ``async def upload(request)`` handler (a function with one required
positional parameter is taken as a handler and run as a route would run
it), and ``body_limit(max_size=...)`` as a layer decorates either.
WebSocket and lifespan scopes pass through.
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
    """Refuse request bodies larger than ``max_size`` bytes with ``413``.

    ``app`` is an ASGI app or a request handler (``async def (request) ->
    response``), so a single route can have its own limit.
    """
    if max_size < 0:
        raise ValueError("max_size must not be negative")
    if _looks_like_request_handler(app):
        from asgikit.routes import request_handler_app

        app = request_handler_app(app)  # type: ignore[arg-type]
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
        replaced = False

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
            nonlocal started, replaced
            started = True
            if raised is not None and message["status"] == 500:
                # A framework inside turned our exception into a generic 500.
                replaced = True
                await text_response(scope, receive, send, 413, too_large)
                return
            await send(message)

        async def on_body(message: Message) -> None:
            if not replaced:
                await send(message)

        limited_send = wrap_send(
            send, {"http.response.start": on_start, "http.response.body": on_body}
        )
        try:
            await app(scope, limited_receive, limited_send)
        except RequestBodyTooLarge as exc:
            if exc is not raised:
                raise  # another body_limit's, further in
            if started:
                raise
            await text_response(scope, receive, send, 413, too_large)

    return body_limit_app


__all__ = ["RequestBodyTooLarge", "body_limit"]
