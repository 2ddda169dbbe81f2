"""Where an exception raised while answering a request becomes the answer.

An ``exception_handlers`` layer leaves its handler table in its copy of the
scope (``scope["asgikit.exception_handlers"]``, linked to the table of any
layer further out).  The place that catches an exception — a route, an
``HTTPEndpoint``, an ``http_middleware`` function, the router's 404 and 405
— calls :func:`answer_error`, which asks the tables, innermost first, and
answers right there.  So an error answer passes back out through every layer
between the raise and the handler (``cors`` on a mounted API adds its headers
to a 404 from that API), and the handler gets the endpoint's own
``Request``, whose body was already read.

Within one table a status key goes first for an ``HTTPException``, then
the closest class along the exception's MRO.  An ``HTTPException`` no table
matches gets the default answer (``responses.http_exception_response``); any other
exception no table matches goes on, towards ``server_errors`` and the
server, as does whatever a handler itself raises.

Older protocol, still honoured for pieces that follow it (``static_files``):
``scope["asgikit.raise_http_exceptions"]`` asks them to raise an
``HTTPException`` instead of answering it, for the layer to catch.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread

from asgikit.exceptions import ClientDisconnect, HTTPException
from asgikit.requests import Request
from asgikit.responses import http_exception_response
from asgikit.types import ASGIApp, Receive, Scope, Send

#: ``async def handler(request, exc) -> response`` (or a plain function).
ExceptionHandler = Callable[[Request, Any], Awaitable[ASGIApp] | ASGIApp]

HANDLERS_KEY = "asgikit.exception_handlers"
RAISE_KEY = "asgikit.raise_http_exceptions"


def is_async_callable(func: Callable[..., Any]) -> bool:
    """Whether calling ``func`` gives an awaitable (a coroutine function or object)."""
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - objects with an async __call__
    )


class HandlerTable:
    """The handlers of one ``exception_handlers`` layer, checked when it is built."""

    __slots__ = ("by_class", "by_status", "catches_http", "is_async")

    def __init__(self, handlers: Mapping[type[BaseException] | int, ExceptionHandler]) -> None:
        self.by_status: dict[int, ExceptionHandler] = {}
        self.by_class: dict[type[BaseException], ExceptionHandler] = {}
        for key, handler in handlers.items():
            if isinstance(key, int) and not isinstance(key, bool):
                self.by_status[key] = handler
            elif isinstance(key, type) and issubclass(key, Exception):
                self.by_class[key] = handler
            else:
                raise TypeError(f"handler keys are Exception classes or status codes, not {key!r}")
            if not callable(handler):
                raise TypeError(f"the handler for {key!r} is not callable: {handler!r}")
        self.is_async = {
            id(h): is_async_callable(h)
            for h in (*self.by_status.values(), *self.by_class.values())
        }
        # Whether some key could match an HTTPException (or a subclass of it).
        self.catches_http = bool(self.by_status) or any(
            issubclass(HTTPException, cls) or issubclass(cls, HTTPException)
            for cls in self.by_class
        )

    def find(self, exc: BaseException) -> ExceptionHandler | None:
        """The handler for ``exc``: its status key, else its closest class key."""
        if self.by_status and isinstance(exc, HTTPException):
            handler = self.by_status.get(exc.status_code)
            if handler is not None:
                return handler
        if self.by_class:
            for cls in type(exc).__mro__:
                handler = self.by_class.get(cls)
                if handler is not None:
                    return handler
        return None

    async def respond(
        self, handler: ExceptionHandler, request: Request, exc: Exception
    ) -> ASGIApp:
        """Run ``handler`` (a plain function in a worker thread) for its response."""
        if self.is_async[id(handler)]:
            response: ASGIApp = await handler(request, exc)  # type: ignore[misc]
        else:
            response = await anyio.to_thread.run_sync(handler, request, exc)  # type: ignore[arg-type]
        return response


class Handlers:
    """One layer's table in one request's scope, linked to the layers further out."""

    __slots__ = ("outer", "spent", "table")

    def __init__(self, table: HandlerTable, outer: Handlers | None) -> None:
        self.table = table
        self.outer = outer
        # An exception a handler of this layer (or one inside) already failed
        # on: the layer lets it go on instead of handling it a second time.
        self.spent: BaseException | None = None


async def answer_error(
    scope: Scope,
    receive: Receive,
    send: Send,
    exc: Exception,
    request: Request | None = None,
) -> bool:
    """Answer ``exc`` here; ``False`` when it is not answered and should go on.

    ``request`` is the one the endpoint had (its body stays readable).  An
    exception a handler raises propagates from here.
    """
    chain: Handlers | None = scope.get(HANDLERS_KEY)
    entry = chain
    while entry is not None:
        handler = entry.table.find(exc)
        if handler is not None:
            if request is None:
                request = Request(scope, receive)
            try:
                response = await entry.table.respond(handler, request, exc)
                if not callable(response):
                    raise TypeError(_not_a_response(handler, response))
            except ClientDisconnect:
                # The handler read a body whose client left: nobody to answer,
                # and not the application's error to log (as routes do).
                return True
            except BaseException as failure:
                # Raised once, not handled again by each layer further out.
                inner = chain
                while inner is not None:
                    inner.spent = failure
                    inner = None if inner is entry else inner.outer
                raise
            await response(scope, _replaying(request, receive), send)
            _drop_traceback(exc)
            return True
        entry = entry.outer
    if isinstance(exc, HTTPException):
        if chain is None and scope.get(RAISE_KEY):
            return False
        await http_exception_response(scope, exc)(scope, _replaying(request, receive), send)
        _drop_traceback(exc)
        return True
    return False


def _not_a_response(handler: ExceptionHandler, returned: object) -> str:
    name = getattr(handler, "__qualname__", None) or repr(handler)
    return (
        f"the exception handler {getattr(handler, '__module__', '?')}.{name} returned "
        f"{type(returned).__name__} {returned!r:.80}; it must return a response "
        "(an ASGI app, such as JSONResponse(...))"
    )


def _drop_traceback(exc: BaseException) -> None:
    # Answered: its frames are no longer needed.  An exception instance kept
    # and raised again (``raise NOT_FOUND``) would otherwise grow its
    # traceback on every request and keep each request's frames alive.
    exc.__traceback__ = None


def _replaying(request: Request | None, receive: Receive) -> Receive:
    # The request's own receive replays a body that was read; else the server's.
    if request is not None and request._buffer:
        return request.receive
    return receive


__all__ = [
    "HANDLERS_KEY",
    "RAISE_KEY",
    "ExceptionHandler",
    "HandlerTable",
    "Handlers",
    "answer_error",
    "is_async_callable",
]
