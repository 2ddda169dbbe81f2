"""``exception_handlers``: turn exceptions from the apps inside into responses.

``exception_handlers(app, {ValueError: on_value_error, 404: not_found_page})``.
A class key matches its subclasses too, the closest class in the exception's
MRO winning; an ``int`` key matches an ``HTTPException`` with that status code
and goes before the class keys.  A handler is ``async def (request, exc) ->
response`` (a plain function runs in a worker thread).

So that the router's 404 and 405 and an endpoint's ``HTTPException`` reach it,
the layer sets ``scope["asgikit.raise_http_exceptions"]`` on its copy of the
scope (only when some key could match an ``HTTPException``); an
``HTTPException`` no key matches is answered as the router would have.
Anything no key matches, or that comes after the response started, goes on
unchanged.  For a WebSocket the handlers do not run (there is no response to
give); an ``HTTPException`` before the handshake was answered refuses it with
its status.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread

from asgikit._send import SentWatch
from asgikit.composition import middleware
from asgikit.exceptions import HTTPException
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.requests import Request
from asgikit.responses import http_exception_response
from asgikit.routes import deny_websocket
from asgikit.types import ASGIApp, Receive, Scope, Send

#: ``async def handler(request, exc) -> response`` (or a plain function).
ExceptionHandler = Callable[[Request, Any], Awaitable[ASGIApp] | ASGIApp]

_RAISE_KEY = "asgikit.raise_http_exceptions"
_HANDSHAKE_ANSWERS = frozenset(
    {"websocket.accept", "websocket.close", "websocket.http.response.start"}
)


def _is_async(handler: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__
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
    by_status: dict[int, ExceptionHandler] = {}
    by_class: dict[type[BaseException], ExceptionHandler] = {}
    for key, handler in (handlers or {}).items():
        if isinstance(key, int) and not isinstance(key, bool):
            by_status[key] = handler
        elif isinstance(key, type) and issubclass(key, Exception):
            by_class[key] = handler
        else:
            raise TypeError(f"handler keys are Exception classes or status codes, not {key!r}")
    is_async = {id(h): _is_async(h) for h in (*by_status.values(), *by_class.values())}
    catches_http = bool(by_status) or any(issubclass(HTTPException, c) for c in by_class)
    skip = compile_exclude(exclude)

    def find(exc: Exception) -> ExceptionHandler | None:
        if by_status and isinstance(exc, HTTPException):
            handler = by_status.get(exc.status_code)
            if handler is not None:
                return handler
        for cls in type(exc).__mro__:
            handler = by_class.get(cls)
            if handler is not None:
                return handler
        return None

    async def respond(handler: ExceptionHandler, request: Request, exc: Exception) -> ASGIApp:
        if is_async[id(handler)]:
            response: ASGIApp = await handler(request, exc)  # type: ignore[misc]
        else:
            response = await anyio.to_thread.run_sync(handler, request, exc)  # type: ignore[arg-type]
        return response

    async def http_app(scope: Scope, receive: Receive, send: Send) -> None:
        if catches_http:
            scope = {**scope, _RAISE_KEY: True}
        watch = SentWatch(send, ("http.response.start",))
        try:
            await app(scope, receive, watch)
        except Exception as exc:
            if watch.sent:
                raise
            handler = find(exc)
            if handler is not None:
                response = await respond(handler, Request(scope, receive), exc)
            elif catches_http and isinstance(exc, HTTPException):
                response = http_exception_response(scope, exc)
            else:
                raise
            await response(scope, receive, send)

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
