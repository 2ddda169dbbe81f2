"""``http_middleware``: middleware written as ``async def func(request, call_next)``.

The shape of Starlette's ``@app.middleware("http")``::

    @http_middleware
    async def timing(request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Response-Time"] = f"{time.perf_counter() - started:.4f}"
        return response

    app = stack(timing, router(...))      # or timing(app), or http_middleware(func, app)

``func`` may also answer on its own without calling ``call_next``.  What it
returns is any ASGI app (a response).  Unlike Starlette's
``BaseHTTPMiddleware``:

- the response is not buffered: ``call_next`` returns as soon as the app has
  sent ``http.response.start``, and each body chunk goes to the client as the
  app produces it (the app's next chunk waits until the client got this one);
- the app's background tasks run strictly after the last byte was sent;
- an exception from the app comes out unchanged (never in an
  ``ExceptionGroup``): from ``call_next`` if the response had not started,
  otherwise from the middleware while the body streams;
- an exception ``func`` raises itself is answered where it is raised by an
  ``exception_handlers`` layer outside (so the layers between pass the
  answer back out), an ``HTTPException`` by default;
- a client that leaves while ``func`` or the app reads the body
  (``ClientDisconnect``) ends the request quietly, as in a route: no answer,
  no traceback;
- a context variable set before ``call_next`` is seen by the endpoint (and
  its tasks);
- a body ``func`` read (``await request.body()``) is replayed to the app.

How: when ``func`` holds no cancel scope of its own around ``call_next``
(the usual case), the app runs in ``func``'s own task: ``call_next`` drives
its coroutine by hand until it sends the start, and calling the response
drives it on (``_inline_app``): no task, no event, no hand-off.
When ``func`` holds a cancel scope, a timeout or a task group around
``call_next``, the app runs in a task of its own (``_app_task``), which
never outlives the request.  Either way the app runs in a copy of the
caller's context taken at ``call_next``, and its body goes straight to
where the start went, chunk by chunk.

What it cannot do, that a pure ASGI middleware (wrapping ``send``) can:

- see WebSocket or lifespan traffic (those scopes pass straight through);
- change the response body, or the request body as it streams;
- see a context variable the endpoint sets (the app runs in a copy);
- send the first byte before ``func`` returns: the response start waits for it;
- take a start the app sends from another of its tasks, when ``func``
  holds no cancel scope: a clear ``RuntimeError`` (open an
  ``anyio.CancelScope()`` around ``call_next`` to run the app in a task);
- keep ``func`` out of a cancel scope the app holds open at its start
  (``StreamingResponse``'s disconnect watch): if that scope is cancelled
  while ``func`` holds the response, ``func`` is cancelled with it, and the
  app's scope catches the cancellation;
- be free: ``func``'s ``Request``, the response object and the app driven by
  hand cost about four fifths of a small JSON request under asyncio, and a
  header set through ``response.headers`` a third more (a ``wrap_send``
  layer: a seventh in all); when ``func`` holds a cancel scope around
  ``call_next``, the app's task costs about four times the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, overload

import anyio
import anyio.abc

from asgikit._errors import answer_error
from asgikit.composition import middleware
from asgikit.exceptions import ClientDisconnect
from asgikit.middleware._inline_app import AppCaller, Probe, Runner, scope_probe, trio_scope
from asgikit.requests import Request
from asgikit.responses import Response
from asgikit.types import ASGIApp, Layer, Message, Receive, Scope, Send

CallNext = Callable[[Request], Awaitable["StreamedResponse"]]
DispatchFunction = Callable[[Request, CallNext], Awaitable[ASGIApp]]


class StreamedResponse(Response):
    """The app's response as ``call_next`` gives it: started, with its body to come.

    ``status_code``, ``headers`` (live, editable), ``set_cookie`` and
    ``background`` (run after the app's own) can be changed before it is
    returned.  Calling it sends the start and streams the app's body, which
    is never held here: unlike other responses it has no ``body`` attribute.
    """

    def __init__(self, runner: Runner, start: Message) -> None:
        # No super().__init__: there is no body to render, only one to relay.
        self._runner = runner
        self._start = start
        self.status_code = int(start["status"])
        self._raw_headers = list(start.get("headers", ()))  # (name, value) byte pairs
        self.background = None

    # Starlette's call_next response has these: a clear error instead.
    # (Properties, not __getattr__, which would slow every attribute read.)
    @property
    def body(self) -> bytes:  # type: ignore[override]
        """Never held: raises ``AttributeError`` (read the body by wrapping ``send``)."""
        raise _no_body("body")

    @property
    def body_iterator(self) -> Any:
        """Never held: raises ``AttributeError`` (read the body by wrapping ``send``)."""
        raise _no_body("body_iterator")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {**self._start, "status": self.status_code, "headers": self._raw_headers}
        await self._runner.relay(send, start)
        if self.background is not None:
            await self.background()


def _no_body(name: str) -> AttributeError:
    return AttributeError(
        f"http_middleware streams the app's body, never held: there is no "
        f"response.{name}; to read or change the body, wrap send "
        f"(asgikit.composition.wrap_send) in a pure ASGI middleware"
    )


async def _serve(
    app: ASGIApp,
    dispatch: DispatchFunction,
    scope: Scope,
    receive: Receive,
    send: Send,
    request: Request,
    probe: Probe,
    task_group: anyio.abc.TaskGroup | None,
) -> Exception | None:
    """One request through func; the error to raise once the app's task (if any) is done."""
    call_next = AppCaller(app, send, probe, task_group, StreamedResponse)
    failure: Exception | None = None
    interrupt: BaseException | None = None
    try:
        try:
            response = await dispatch(request, call_next)
        except ClientDisconnect:
            raise
        except Exception as exc:
            # The app's own error propagates unchanged: whatever could
            # answer it inside already had its chance.
            if exc is call_next.raised or not await answer_error(
                scope, request.receive, send, exc, request
            ):
                raise
        else:
            # The app's response reads nothing: no replaying receive for it.
            streamed = type(response) is StreamedResponse
            if not streamed and not callable(response):
                raise TypeError(
                    f"http_middleware: func returned {response!r}, not a response "
                    "(an ASGI app): return what call_next gave, or another response"
                )
            await response(scope, receive if streamed else request.receive, send)
    except ClientDisconnect:
        # The client left mid-body: nobody is there to answer, and it is
        # not the application's error to report (as in a route).
        pass
    except Exception as exc:
        failure = exc
    except BaseException as exc:  # a cancellation: the app (if it waits) sees it first
        interrupt = exc
    try:
        if interrupt is not None or not call_next.done:
            leftover = await call_next.finish(interrupt)  # raises the interrupt if it goes on
            failure = failure or leftover
        return None if isinstance(failure, ClientDisconnect) else failure
    finally:
        # The error's traceback holds this frame: kept in its locals (or by
        # call_next), it would make a cycle of every failed request.
        failure = leftover = interrupt = call_next.raised = None


@middleware
def _function_middleware(app: ASGIApp, *, dispatch: DispatchFunction) -> ASGIApp:
    async def function_middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request = Request(scope, receive)
        probe = scope_probe()
        if probe is trio_scope:
            # For the task path, if func takes it (under asyncio it makes a
            # plain task instead).
            stopped: BaseException | None = None
            async with anyio.create_task_group() as task_group:
                # Raised outside the task group, so it is not wrapped.
                try:
                    failure = await _serve(
                        app, dispatch, scope, receive, send, request, probe, task_group
                    )
                except anyio.get_cancelled_exc_class():
                    raise
                except BaseException as exc:  # KeyboardInterrupt and the like
                    stopped = exc
            if stopped is not None:
                try:
                    raise stopped
                finally:
                    stopped = None  # not kept by a frame its traceback holds (a cycle)
        else:
            failure = await _serve(app, dispatch, scope, receive, send, request, probe, None)
        if failure is not None:
            try:
                raise failure
            finally:
                failure = None  # not kept by a frame its traceback holds (a cycle)

    return function_middleware


@overload
def http_middleware(func: DispatchFunction) -> Layer: ...
@overload
def http_middleware(func: DispatchFunction, app: ASGIApp) -> ASGIApp: ...
def http_middleware(func: DispatchFunction, app: ASGIApp | None = None) -> Layer | ASGIApp:
    """Middleware from ``async def func(request, call_next) -> response``.

    ``http_middleware(func)`` is a layer (for ``stack``, or as a decorator);
    ``http_middleware(func, app)`` and ``http_middleware(func)(app)`` wrap
    ``app``.  Only ``http`` scopes reach ``func``.
    """
    if not callable(func):
        raise TypeError("http_middleware() takes the function first")
    layer: Layer = _function_middleware(dispatch=func)
    return layer if app is None else layer(app)


__all__ = ["CallNext", "DispatchFunction", "StreamedResponse", "http_middleware"]
