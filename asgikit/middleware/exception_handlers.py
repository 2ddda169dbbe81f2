"""``exception_handlers``: turn exceptions from the apps inside into responses.

``exception_handlers(app, {ValueError: on_value_error, 404: not_found_page})``.
A class key matches its subclasses too, the closest class in the exception's
MRO winning (``HTTPException`` subclasses included); an ``int`` key matches an
``HTTPException`` with that status code and goes before the class keys.  A
handler is ``async def (request, exc) -> response`` (a plain function runs in
a worker thread).

Where the handler runs: the layer leaves its table in the scope, and the
route (or ``HTTPEndpoint``, ``http_middleware`` function, or the router's
404/405) that catches an exception answers it right there, with the
endpoint's own ``Request``.  So the answer passes out through every layer in
between: ``cors`` on a mounted API keeps its headers on a 404 from that API.
An exception raised elsewhere inside (by a middleware, or an app that is not
asgikit's) is caught by the layer itself and answered here, outside the
layers it crossed.  With several layers, the innermost one with a matching
key wins.  An ``HTTPException`` no key matches gets the default answer;
anything else no key matches, whatever a handler raises, and anything after
the response started goes on unchanged (towards ``server_errors``, which, as
in Starlette, answers outside the layers the exception crossed).

The layer also sets ``scope["asgikit.raise_http_exceptions"]`` (when some key
could match an ``HTTPException``), so that pieces that answer their own
errors (``static_files``) raise them for it instead.  For a WebSocket the
handlers do not run (there is no response to give); an ``HTTPException``
before the handshake was answered refuses it with its status.
"""

from __future__ import annotations

from collections.abc import Mapping

from asgikit._errors import (
    HANDLERS_KEY,
    RAISE_KEY,
    ExceptionHandler,
    Handlers,
    HandlerTable,
    answer_error,
)
from asgikit._send import SentWatch
from asgikit.composition import middleware
from asgikit.exceptions import HTTPException
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.requests import shared_body
from asgikit.routes import deny_websocket
from asgikit.types import ASGIApp, Receive, Scope, Send

_HANDSHAKE_ANSWERS = frozenset(
    {"websocket.accept", "websocket.close", "websocket.http.response.start"}
)


@middleware
def exception_handlers(
    app: ASGIApp,
    handlers: Mapping[type[BaseException] | int, ExceptionHandler] | None = None,
    *,
    exclude: Exclude = None,
) -> ASGIApp:
    """Answer the exceptions listed in ``handlers`` with their handler's response.

    As a layer for ``stack()``, give the mapping by name:
    ``exception_handlers(handlers={...})``.
    """
    table = HandlerTable(handlers or {})
    skip = compile_exclude(exclude)

    async def http_app(scope: Scope, receive: Receive, send: Send) -> None:
        entry = Handlers(table, scope.get(HANDLERS_KEY))
        if table.catches_http:
            scope = {**scope, HANDLERS_KEY: entry, RAISE_KEY: True}
        else:
            scope = {**scope, HANDLERS_KEY: entry}
        shared_body(scope)  # so a handler's Request gets the body the app read
        watch = SentWatch(send, ("http.response.start",))
        try:
            await app(scope, receive, watch)
        except Exception as exc:
            if watch.sent or exc is entry.spent:
                raise
            if not await answer_error(scope, receive, send, exc):
                raise

    async def websocket_app(scope: Scope, receive: Receive, send: Send) -> None:
        watch = SentWatch(send, _HANDSHAKE_ANSWERS)
        try:
            await app(scope, receive, watch)
        except HTTPException as exc:
            if watch.sent:
                raise
            await deny_websocket(scope, receive, send, exc.status_code, exc.detail or "")

    async def exception_handlers_app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if skip is not None and skip(scope):
            await app(scope, receive, send)
        elif kind == "http":
            await http_app(scope, receive, send)
        elif kind == "websocket":
            await websocket_app(scope, receive, send)
        else:
            await app(scope, receive, send)

    return exception_handlers_app


__all__ = ["ExceptionHandler", "exception_handlers"]
