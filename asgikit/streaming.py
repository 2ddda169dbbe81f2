"""``StreamingResponse``: a body produced piece by piece, stopped when the client leaves.

While the body is produced, one task listens on ``receive()`` for
``http.disconnect`` (and marks the connection's shared disconnect state, so
``Request.is_disconnected()`` agrees without reading ``receive()`` itself).
When the client leaves, production is cancelled and the iterator is closed,
so a generator's ``finally`` runs at once.  A ``send`` that raises
``OSError`` (ASGI 2.4: the connection is gone) ends the response the same way.

Server shutdown: servers wait for open responses before they stop.  With
``end_on_shutdown=True`` (for an endless stream: a feed, a log tail) the
response ends cleanly, iterator closed and final message sent, as soon as
the server receives SIGINT or SIGTERM (see ``asgikit._shutdown`` for how
that is seen).  By default a stream is left to finish, since ending a
download early would make a truncated file look complete; the server's
graceful timeout (``uvicorn --timeout-graceful-shutdown``) bounds it, and
when the server then cancels it, the response ends without a traceback in
the log (the connection closes, visibly incomplete).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from asgikit._shutdown import cancel_on_shutdown, cancelled_by_server
from asgikit.background import BackgroundTask
from asgikit.requests import DisconnectState, disconnect_state
from asgikit.responses import Response
from asgikit.types import Message, Receive, Scope, Send

Content = Iterable[Any] | AsyncIterable[Any]


async def iterate_in_threadpool(iterator: Iterable[Any]) -> AsyncIterator[Any]:
    """Step a blocking iterator in a worker thread, one item at a time."""
    it = iter(iterator)
    done = object()
    try:
        while (item := await anyio.to_thread.run_sync(next, it, done)) is not done:
            yield item
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


async def close_iterator(iterator: Any) -> None:
    """Close an async or sync iterator if it can be closed (runs its ``finally``)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()
        return
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def wait_for_disconnect(receive: Receive) -> Message:
    """The ``http.disconnect`` from ``receive``, other messages skipped (forever, if none comes).

    A ``receive`` that answers at once (a wrapper replaying a cached body)
    must not starve the event loop: a checkpoint follows every other
    message after the first (the request's body, most often: a checkpoint
    costs as much as the rest of the watch).  After the last
    ``http.request`` only ``http.disconnect`` may
    come (ASGI HTTP spec); a ``receive`` that gives the body again can never
    tell a disconnect, so it is not called again (``send`` raising
    ``OSError`` still tells one).
    """
    ended = seen = False
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            return message
        if kind == "http.request":
            if ended:
                await anyio.sleep_forever()
            ended = not message.get("more_body", False)
        if seen:
            await anyio.lowlevel.checkpoint()
        seen = True


async def run_until_disconnect(
    scope: Scope, receive: Receive, produce: Callable[[], Awaitable[None]]
) -> bool:
    """Run ``produce()`` while watching for the client's disconnect.

    Returns ``True`` when ``produce`` finished, ``False`` when the client left
    (or ``send`` failed with ``OSError``) and production was cancelled.
    On asyncio the watch is a plain task that cancels a cancel scope around
    ``produce`` (about 10 us, where an anyio task group takes 65 and leaves
    reference cycles of the cancelled task's traceback); elsewhere a task
    group.
    """
    state = disconnect_state(scope)
    if state.disconnected:
        return False
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop in this thread
        task = None
    if task is not None:
        return await _watch_with_a_task(task, state, receive, produce)
    finished = False

    async def listen(stop: anyio.CancelScope) -> None:
        state.listening = True
        try:
            await wait_for_disconnect(receive)
            state.disconnected = True
            stop.cancel()
        finally:
            state.listening = False

    error: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(listen, group.cancel_scope)
        try:
            await produce()
            finished = True
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            # Kept aside and raised after the group, so the caller sees the
            # app's own exception and not an exception group around it.
            error = exc
        finally:
            group.cancel_scope.cancel()
    if error is not None:
        if isinstance(error, OSError):
            state.disconnected = True
            return False
        raise error
    return finished


async def _watch_with_a_task(
    task: asyncio.Task[Any],
    state: DisconnectState,
    receive: Receive,
    produce: Callable[[], Awaitable[None]],
) -> bool:
    finished = False
    failure: BaseException | None = None
    with anyio.CancelScope() as stop:

        async def listen() -> None:
            nonlocal failure
            state.listening = True
            try:
                await wait_for_disconnect(receive)
                state.disconnected = True
                stop.cancel()
            except Exception as exc:  # raised in the request's task, below
                failure = exc
                stop.cancel()
            finally:
                state.listening = False

        listener = task.get_loop().create_task(listen())
        try:
            await produce()
            finished = True
        except OSError:  # ASGI 2.4: the client is gone
            state.disconnected = True
        finally:
            listener.cancel()
            state.listening = False
    if failure is not None:
        raise failure
    return finished


class StreamingResponse(Response):
    """A response whose body comes from a sync or async iterable of ``bytes``/``str``.

    A sync iterable is stepped in a worker thread.  The iterator is closed when
    the body ends, when the client disconnects, and on errors.
    ``end_on_shutdown`` ends the body (cleanly, as if the iterator had
    run out) when the server starts shutting down.
    """

    #: End the body when the server starts shutting down.
    end_on_shutdown = False

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        *,
        end_on_shutdown: bool | None = None,
    ) -> None:
        if end_on_shutdown is not None:
            self.end_on_shutdown = end_on_shutdown
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        if isinstance(content, AsyncIterable):
            self.body_iterator: AsyncIterable[Any] = content
        else:
            self.body_iterator = iterate_in_threadpool(content)
        self._raw_headers = self._init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One iterator, closed below: for an iterable that is not its own
        # iterator, closing the iterable would leave the real one open.
        iterator = self.body_iterator.__aiter__()
        try:
            if scope.get("method") == "HEAD":
                await send(self._start_message())
                await send({"type": "http.response.body", "body": b""})
                complete = True
            else:
                complete = await run_until_disconnect(
                    scope, receive, lambda: self._send_body(send, iterator)
                )
        except anyio.get_cancelled_exc_class():
            if not cancelled_by_server():
                raise
            # The server gave up waiting at shutdown and cancelled the task:
            # end here, or it logs a CancelledError traceback per stream.
            return
        finally:
            await close_iterator(iterator)
        if complete and self.background is not None:
            await self.background()

    def _start_message(self) -> Message:
        # A copy of the headers: a response object may be sent more than once.
        return {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": list(self._raw_headers),
        }

    async def _send_body(self, send: Send, iterator: AsyncIterator[Any]) -> None:
        await send(self._start_message())
        with cancel_on_shutdown(self.end_on_shutdown):
            await self._send_chunks(send, iterator)
        await send({"type": "http.response.body", "body": b""})

    async def _send_chunks(self, send: Send, iterator: AsyncIterator[Any]) -> None:
        charset = self.charset
        sent = 0
        async for chunk in iterator:
            if isinstance(chunk, str):
                chunk = chunk.encode(charset)
            elif isinstance(chunk, (bytearray, memoryview)):
                chunk = bytes(chunk)
            elif not isinstance(chunk, bytes):
                # bytes(5) would be five NUL bytes, not an error.
                raise TypeError(f"a body chunk must be bytes or str, not {type(chunk).__name__}")
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += 1
            if sent % 32 == 0:
                # A generator that never awaits, under a server whose send does
                # not yield, would starve the loop: the disconnect listener
                # would never run.  Yield now and then.
                await anyio.lowlevel.checkpoint()


__all__ = [
    "Content",
    "StreamingResponse",
    "close_iterator",
    "iterate_in_threadpool",
    "run_until_disconnect",
    "wait_for_disconnect",
]
