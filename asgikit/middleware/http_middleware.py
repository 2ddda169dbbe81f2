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
- a context variable set before ``call_next`` is seen by the endpoint;
- a body ``func`` read (``await request.body()``) is replayed to the app.

How: ``call_next`` runs the app in a task of its own, which never outlives
the request (an anyio task group under trio; under asyncio a plain task with
an anyio cancel scope, which costs far less).  The task starts with a copy of
the caller's context, which is why context variables set before
``call_next`` reach the endpoint.  Once ``func``'s response has sent the
start, the app's task sends its body itself, chunk by chunk, to where the
start went: no hand-off between tasks per chunk.

What it cannot do, that a pure ASGI middleware (wrapping ``send``) can:

- see WebSocket or lifespan traffic (those scopes pass straight through);
- change the response body, or the request body as it streams;
- see a context variable the endpoint sets (it is set in another task);
- send the first byte before ``func`` returns: the response start waits for it;
- be free: the per-request task and its two hand-offs (the start to
  ``func``, the body back to the app) cost about four times the whole of a
  small JSON request under asyncio (a ``wrap_send`` layer: a seventh).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, overload

import anyio

from asgikit._errors import answer_error
from asgikit.composition import middleware
from asgikit.exceptions import ClientDisconnect
from asgikit.requests import Request
from asgikit.responses import Response
from asgikit.types import ASGIApp, Layer, Message, Receive, Scope, Send

CallNext = Callable[[Request], Awaitable["StreamedResponse"]]
DispatchFunction = Callable[[Request, CallNext], Awaitable[ASGIApp]]


class _Event(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[object]: ...


_AppTask = Callable[[Scope, Receive], Coroutine[Any, Any, None]]


class _AnyioChild:
    """The app's task in an anyio task group: any backend (trio)."""

    def __init__(self) -> None:
        self._task_group = anyio.create_task_group()
        self.event: Callable[[], _Event] = anyio.Event

    async def __aenter__(self) -> _AnyioChild:
        await self._task_group.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._task_group.__aexit__(*exc_info)

    def start_soon(self, func: _AppTask, scope: Scope, receive: Receive) -> None:
        self._task_group.start_soon(func, scope, receive)

    def cancel(self) -> None:
        self._task_group.cancel_scope.cancel()


class _Signal:
    """A one-shot event for asyncio, lighter than ``asyncio.Event`` (each waits at most once)."""

    __slots__ = ("_is_set", "_waiters")

    def __init__(self) -> None:
        self._is_set = False
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        self._is_set = True
        for waiter in self._waiters:
            if not waiter.done():  # a cancelled waiter's future is done
                waiter.set_result(None)

    def is_set(self) -> bool:
        return self._is_set

    async def wait(self) -> None:
        if not self._is_set:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


class _AsyncioChild:
    """The app's task as a plain asyncio task, kept inside the request's.

    An anyio task group costs about half of this middleware under asyncio,
    for what one task needs: it is cancelled when the request's task leaves
    (an error, or a cancellation, which anyio delivers to the request's task)
    and waited for before it does, and an error it let through is raised
    here.  It is cancelled through an anyio cancel scope of its own, never
    ``Task.cancel()``, which would pierce the app's shielded cancel scopes.
    anyio cancels an asyncio task whatever it awaits, so plain asyncio
    events work in cancel scopes, and they do not ask which event loop runs
    on each ``anyio.Event()``.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._cancel_scope: anyio.CancelScope | None = None
        self._cancelled = False
        self.event: Callable[[], _Event] = _Signal

    async def __aenter__(self) -> _AsyncioChild:
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        task = self._task
        if task is None:
            return
        cancelled: BaseException | None = None
        if not task.done():
            self.cancel()
            while not task.done():
                try:
                    await asyncio.wait((task,))
                except asyncio.CancelledError as error:
                    # The request itself is cancelled: still wait for the app.
                    cancelled = error
        if cancelled is not None:
            raise cancelled
        if exc is None and not task.cancelled():
            leaked = task.exception()  # only a BaseException: _run keeps every Exception
            if leaked is not None:
                raise leaked

    def start_soon(self, func: _AppTask, scope: Scope, receive: Receive) -> None:
        # create_task copies the current context, as anyio's start_soon does.
        self._task = asyncio.get_running_loop().create_task(self._guarded(func, scope, receive))

    async def _guarded(self, func: _AppTask, scope: Scope, receive: Receive) -> None:
        with anyio.CancelScope() as cancel_scope:
            self._cancel_scope = cancel_scope
            if self._cancelled:  # before the task first ran: it stops at its first wait
                cancel_scope.cancel()
            await func(scope, receive)

    def cancel(self) -> None:
        self._cancelled = True
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()


def _child() -> _AnyioChild | _AsyncioChild:
    try:
        on_asyncio = asyncio.current_task() is not None
    except RuntimeError:  # no asyncio loop runs at all
        on_asyncio = False
    # A trio guest run on an asyncio loop has a loop but no current asyncio task.
    return _AsyncioChild() if on_asyncio else _AnyioChild()


class StreamedResponse(Response):
    """The app's response as ``call_next`` gives it: started, with its body to come.

    ``status_code``, ``headers`` (live, editable), ``set_cookie`` and
    ``background`` (run after the app's own) can be changed before it is
    returned.  Calling it sends the start and streams the app's body, which
    is never held here: unlike other responses it has no ``body`` attribute.
    """

    def __init__(self, runner: _AppRunner, start: Message) -> None:
        # No super().__init__: there is no body to render, only one to relay.
        self._runner = runner
        self._start = start
        self.status_code = int(start["status"])
        self._raw_headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", ())]
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({**self._start, "status": self.status_code, "headers": self._raw_headers})
        await self._runner.relay(send)
        if self.background is not None:
            await self.background()


class _AppRunner:
    """Runs the app in a task; once func's response sent the start, the app sends on itself."""

    def __init__(self, app: ASGIApp, send: Send, child: _AnyioChild | _AsyncioChild) -> None:
        self._app = app
        self._send = send  # the server's, for messages before the response start
        self._child = child
        self._event = child.event
        self._start: Message | None = None
        # Where the app's messages after the start go: the send the response
        # was called with, set just before _go is.
        self._relay_send: Send | None = None
        self._dropped = False  # func answered with another response
        self._send_error: Exception | None = None
        self.error: Exception | None = None
        self.raised: Exception | None = None  # the app's error, once call_next raised it
        self.called = False

    async def call_next(self, request: Request) -> StreamedResponse:
        if self.called:
            raise RuntimeError("call_next() can be called only once per request")
        self.called = True
        # Made here, not in __init__: a func that answers on its own costs none.
        self._ready = self._event()  # the response started, or the app returned
        self._go = self._event()  # the start was sent: the app may send its body
        self._finished = self._event()
        # start_soon copies the current context: context variables set by func
        # before this call are visible in the app.
        self._child.start_soon(self._run, request.scope, request.receive)
        await self._ready.wait()
        if self._start is None:
            error, self.error = self.error, None
            if error is not None:
                self.raised = error
                raise error
            raise RuntimeError("the app returned without sending a response")
        return StreamedResponse(self, self._start)

    async def _run(self, scope: Scope, receive: Receive) -> None:
        try:
            await self._app(scope, receive, self._app_send)
        except Exception as exc:
            # Handed to the request's own task, so it is raised there unchanged
            # rather than wrapped in an ExceptionGroup by the task group.
            self.error = exc
        finally:
            self._finished.set()
            self._ready.set()

    async def _app_send(self, message: Message) -> None:
        if self._start is None:
            if message["type"] == "http.response.start":
                self._start = message
                self._ready.set()
            else:
                # Not part of the response proper (an extension's message
                # before the start): nothing for func to change, so pass it on.
                await self._send(message)
            return
        if self._relay_send is None:
            await self._go.wait()
        if self._dropped or self._relay_send is None:
            raise OSError("the response was not sent on: the middleware dropped it")
        if self._send_error is not None:
            raise OSError("the response could not be sent: the client is gone")
        # Sent from the app's own task, straight to where the start went: no
        # hand-off per chunk, and the app's next step (its next chunk, or its
        # background tasks after the last) follows the send by construction.
        try:
            await self._relay_send(message)
        except Exception as exc:
            # Also raised from the middleware, even if the app swallows it.
            self._send_error = exc
            raise

    async def relay(self, send: Send) -> None:
        """Let the app send the rest of its response on ``send``, then wait for it."""
        self._relay_send = send
        self._go.set()
        await self._finished.wait()
        error, self.error = self.error, None
        send_error, self._send_error = self._send_error, None
        if send_error is not None:
            raise send_error
        if error is not None:
            raise error

    def stop(self) -> Exception | None:
        """After the answer: an app error nobody saw yet; a still-running app is cancelled."""
        if not self.called:
            return None
        if self._relay_send is None:
            self._dropped = True
            self._go.set()
        if not self._finished.is_set():
            self._child.cancel()
        error, self.error = self.error, None
        return error


@middleware
def _function_middleware(app: ASGIApp, *, dispatch: DispatchFunction) -> ASGIApp:
    async def function_middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        failure: BaseException | None = None
        async with _child() as child:
            runner = _AppRunner(app, send, child)
            request = Request(scope, receive)
            try:
                try:
                    response = await dispatch(request, runner.call_next)
                except ClientDisconnect:
                    raise
                except Exception as exc:
                    # The app's own error propagates unchanged: whatever could
                    # answer it inside already had its chance.
                    if exc is runner.raised or not await answer_error(
                        scope, request.receive, send, exc, request
                    ):
                        raise
                else:
                    await response(scope, request.receive, send)
            except ClientDisconnect:
                # The client left mid-body: nobody is there to answer, and it
                # is not the application's error to report (as in a route).
                child.cancel()
            except Exception as exc:
                # Raised below, outside the task group, so it is not wrapped.
                failure = exc
                child.cancel()
            finally:
                leftover = runner.stop()
            failure = failure or leftover
        if failure is not None and not isinstance(failure, ClientDisconnect):
            raise failure

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
