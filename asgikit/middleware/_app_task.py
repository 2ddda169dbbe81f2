"""``http_middleware``'s task path: the app in a task of its own, kept inside the request's.

Used when ``func`` holds a cancel scope of its own around ``call_next``
(see ``_inline_app`` for why the app cannot then share ``func``'s task).
``call_next`` returns once the app has sent ``http.response.start``; once
``func``'s response sent the start on, the app's task sends its body itself,
chunk by chunk, to where the start went: no hand-off between tasks per
chunk.  The task never outlives the request: an anyio task group under
trio; under asyncio a plain task with an anyio cancel scope, which costs
far less.  It starts with a copy of the caller's context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import anyio
import anyio.abc

from asgikit.requests import Request
from asgikit.types import ASGIApp, Message, Receive, Scope, Send


class Dropped(OSError):
    """What the app's ``send`` raises once ``func`` answered with another response."""

    def __init__(self) -> None:
        super().__init__("the response was not sent on: the middleware dropped it")


def only_dropped(error: BaseException | None) -> bool:
    """``error`` is ``Dropped``, alone or in exception groups: the app's sends failing, no more."""
    group = getattr(error, "exceptions", None)  # an exception group (or its 3.10 backport)
    if isinstance(group, tuple) and group:
        return all(only_dropped(inner) for inner in group)
    return isinstance(error, Dropped)


class _Event(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[object]: ...


_AppTask = Callable[[Scope, Receive], Coroutine[Any, Any, None]]


class _AnyioChild:
    """The app's task in the request's anyio task group: any backend (trio)."""

    def __init__(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group
        self.event: Callable[[], _Event] = anyio.Event

    async def close(self, interrupt: BaseException | None) -> None:
        return None  # the task group, left by the request, waits for the task

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

    An anyio task group costs about half of this path under asyncio, for
    what one task needs: it is cancelled when the request's task leaves (an
    error, or a cancellation, which anyio delivers to the request's task)
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

    async def close(self, interrupt: BaseException | None) -> None:
        """Wait for the task (cancelled if still running); raise what it let through."""
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
        if interrupt is None and not task.cancelled():
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


class TaskRunner:
    """Runs the app in a task; once func's response sent the start, the app sends on itself."""

    def __init__(self, app: ASGIApp, send: Send, task_group: anyio.abc.TaskGroup | None) -> None:
        self._app = app
        self._send = send  # the server's, for messages before the response start
        self._child = _AsyncioChild() if task_group is None else _AnyioChild(task_group)
        event = self._child.event
        self._ready = event()  # the response started, or the app returned
        self._go = event()  # the start was sent: the app may send its body
        self._finished = event()
        self._start: Message | None = None
        # Where the app's messages after the start go: the send the response
        # was called with, set just before _go is.
        self._relay_send: Send | None = None
        self._dropped = False  # func answered with another response
        self._sending = False  # relay was called: the response goes out once
        self._send_error: Exception | None = None
        self.error: BaseException | None = None

    async def start(self, request: Request) -> Message:
        """Run the app; its response start, once sent (its error, raised unchanged)."""
        # The task copies the current context: context variables set by func
        # before call_next are visible in the app.
        self._child.start_soon(self._run, request.scope, request.receive)
        await self._ready.wait()
        if self._start is None:
            error, self.error = self.error, None
            if error is not None:
                try:
                    raise error
                finally:
                    error = None  # its traceback holds this frame: no cycle
            raise RuntimeError("the app returned without sending a response")
        return self._start

    async def _run(self, scope: Scope, receive: Receive) -> None:
        try:
            await self._app(scope, receive, self._app_send)
        except Exception as exc:
            # Handed to the request's own task, so it is raised there unchanged
            # rather than wrapped in an ExceptionGroup by the task group.
            self.error = exc
        except BaseException as exc:
            # KeyboardInterrupt and the like too (raised there, as they are);
            # a cancellation is the task's own.
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            self.error = exc
        finally:
            self._finished.set()
            self._ready.set()

    async def _app_send(self, message: Message) -> None:
        if self._start is None:
            if message["type"] == "http.response.start":
                # A copy: the app runs on at once, and may reuse its dict and
                # header list before func has read them.
                self._start = {**message, "headers": list(message.get("headers", ()))}
                self._ready.set()
            else:
                # Not part of the response proper (an extension's message
                # before the start): nothing for func to change, so pass it on.
                await self._send(message)
            return
        if self._relay_send is None:
            await self._go.wait()
        if self._dropped or self._relay_send is None:
            raise Dropped()
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

    async def relay(self, send: Send, start: Message) -> None:
        """Send ``start``; let the app send the rest of its response on ``send``; wait for it."""
        if self._sending:
            raise RuntimeError("the app's response can be sent only once")
        self._sending = True
        await send(start)
        self._relay_send = send
        self._go.set()
        await self._finished.wait()
        failure = self._send_error or self.error  # a failed send first
        self._send_error = self.error = None
        if failure is not None:
            try:
                raise failure
            finally:
                failure = None  # its traceback holds this frame: no cycle

    async def finish(self, interrupt: BaseException | None) -> Exception | None:
        """After the answer: stop a still-running app; an app error nobody saw yet."""
        if self._relay_send is None:
            self._dropped = True
            self._go.set()
        if not self._finished.is_set():
            self._child.cancel()
        await self._child.close(interrupt)
        error, self.error = self.error, None
        if interrupt is not None:
            raise interrupt
        if error is not None and not isinstance(error, Exception):
            raise error
        return None if only_dropped(error) else error
