"""The server's shutdown, as long-lived responses and WebSockets see it.

ASGI has no message that says "the server is stopping": uvicorn and
hypercorn send ``lifespan.shutdown`` only after every connection has
closed, so a stream that waits for it waits for ever, and the server with
it ("Waiting for connections to close").  What does come first is the
signal, SIGINT (Ctrl+C) or SIGTERM, and the servers handle it in Python:
uvicorn with ``signal.signal``, hypercorn with ``loop.add_signal_handler``
(which leaves a Python handler in place and wakes the loop through the
wakeup fd), trio with its own ``signal.signal`` handler.

So asgikit *chains* a handler in front of the server's: it notes that the
server is shutting down, cancels the scopes that open streams and
WebSocket receives registered (each in its own event loop, through the
loop's thread- and signal-safe ``call_soon_threadsafe`` or trio's
``run_sync_soon``), then calls the server's handler exactly as before.
It is chained lazily, when the first long-lived response starts (the
server has installed its handler by then), only from the main thread, and
only in front of a Python handler: a signal left to its default action
is left alone, and an ignored one stays ignored (an ignored SIGINT, as in
hypercorn's worker processes, is still noted: Ctrl+C reaches the whole
process group).  Where it cannot be chained (the server runs in a thread,
handles signals outside Python as granian does, or tells its workers to
stop through a pipe, as hypercorn's parent does on SIGTERM), nothing
changes and the server's graceful timeout ends the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

import anyio

_T = TypeVar("_T")

_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)
_previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
_shutting_down = False
_watching = False
# A cancellation message of our own, to tell our task.cancel() from others.
_SHUTDOWN = "asgikit: the server is shutting down"


class _Loop:
    """What to wake in one event loop at shutdown.

    ``scopes`` are cancel scopes to cancel; ``tasks`` are asyncio tasks
    waiting in a WebSocket's ``receive`` or a subscriber's ``get``
    (cancelled natively: a cancel scope per message would cost more than
    the receive itself).  It holds no reference to its loop, so that the
    weak mapping below can forget a finished loop.
    """

    __slots__ = ("cancelled", "scopes", "tasks")

    def __init__(self) -> None:
        self.scopes: set[anyio.CancelScope] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.cancelled: set[asyncio.Task[Any]] = set()

    def cancel_all(self) -> None:
        for scope in tuple(self.scopes):
            scope.cancel()
        for task in tuple(self.tasks):
            self.cancelled.add(task)
            task.cancel(_SHUTDOWN)


# Keyed by the asyncio loop or the trio token, so a finished loop is forgotten.
_loops: weakref.WeakKeyDictionary[Any, _Loop] = weakref.WeakKeyDictionary()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _shutting_down
    _shutting_down = True
    for key, loop in tuple(_loops.items()):
        # Both are thread- and signal-safe: asyncio's call_soon_threadsafe
        # and trio's TrioToken.run_sync_soon.
        call_soon = getattr(key, "call_soon_threadsafe", None) or key.run_sync_soon
        with contextlib.suppress(RuntimeError):  # a loop that has closed
            call_soon(loop.cancel_all)
    previous = _previous.get(signum)
    if previous is not None:
        previous(signum, frame)


def watch_signals() -> bool:
    """Put the shutdown handler in front of the server's; whether it is there.

    Cheap after the first success: the handler stays chained until the
    server restores its own handlers, when it exits.
    """
    global _watching
    if _watching:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False  # only the main thread may set handlers
    for sig in _SIGNALS:
        current = signal.getsignal(sig)
        if current is _on_signal:
            _watching = True
        elif callable(current):
            _previous[sig] = current
            signal.signal(sig, _on_signal)
            _watching = True
        elif sig == signal.SIGINT and current == signal.SIG_IGN:
            # hypercorn's worker processes ignore SIGINT and are told to stop
            # through a pipe, yet Ctrl+C reaches them too: note it, and go
            # on ignoring it.
            _previous.pop(sig, None)
            signal.signal(sig, _on_signal)
            _watching = True
    return _watching


def _asyncio_loop() -> _Loop | None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return None
    loop = _loops.get(running)
    if loop is None:
        loop = _loops[running] = _Loop()
    return loop


def _current_loop() -> _Loop | None:
    loop = _asyncio_loop()
    if loop is not None:
        return loop
    try:
        import trio
    except ImportError:  # pragma: no cover - neither asyncio nor trio
        return None
    try:
        token = trio.lowlevel.current_trio_token()
    except RuntimeError:  # pragma: no cover - no trio run either
        return None
    loop = _loops.get(token)
    if loop is None:
        loop = _loops[token] = _Loop()
    return loop


def shutting_down() -> bool:
    """Whether the server was told to stop (SIGINT or SIGTERM reached the process)."""
    return _shutting_down


@contextlib.contextmanager
def cancel_on_shutdown(enabled: bool = True) -> Iterator[anyio.CancelScope]:
    """A cancel scope that is cancelled when the server starts shutting down.

    ``scope.cancelled_caught`` tells afterwards whether the shutdown ended
    the block.  With ``enabled=False`` it is a plain scope (and the signal
    is still watched, for :func:`cancelled_by_server`).
    """
    # Watched even when not enabled: a server's cancellation at shutdown is
    # then told apart by ``cancelled_by_server``.
    watching = watch_signals()
    loop = _current_loop() if enabled and watching else None
    with anyio.CancelScope() as scope:
        if loop is None:
            yield scope
            return
        if _shutting_down:
            scope.cancel()
        loop.scopes.add(scope)
        try:
            yield scope
        finally:
            loop.scopes.discard(scope)


async def unless_shutdown(wait: Callable[[], Awaitable[_T]]) -> tuple[bool, _T | None]:
    """``(True, await wait())``, or ``(False, None)`` once the server starts shutting down.

    For waits that happen often (a WebSocket's ``receive``, a broadcast
    subscriber's next message): on asyncio the waiting task is registered,
    and cancelled natively at shutdown, which costs next to nothing; on
    trio a cancel scope does it.
    """
    if not watch_signals():
        return True, await wait()
    if _shutting_down:
        return False, None
    loop = _asyncio_loop()
    if loop is None:
        result: _T | None = None
        with cancel_on_shutdown() as scope:
            result = await wait()
        return not scope.cancelled_caught, result
    task = asyncio.current_task()
    assert task is not None
    loop.tasks.add(task)
    try:
        return True, await wait()
    except asyncio.CancelledError:
        if task not in loop.cancelled:
            raise
        loop.cancelled.discard(task)
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        return False, None
    finally:
        loop.tasks.discard(task)


def cancelled_by_server() -> bool:
    """Inside ``except`` a cancellation: whether it is the server's, at shutdown.

    A server that gives up waiting (uvicorn's ``--timeout-graceful-shutdown``,
    a second Ctrl+C, ``asyncio.run`` cancelling what is left) cancels the
    task itself, from outside any cancel scope; an anyio scope that was
    cancelled shows as a deadline of minus infinity and is never mistaken
    for it.
    """
    return _shutting_down and anyio.current_effective_deadline() != -math.inf


def _reset() -> None:
    """Forget a shutdown and the chaining (for tests, which raise the signal in-process)."""
    global _shutting_down, _watching
    _shutting_down = _watching = False


__all__ = [
    "cancel_on_shutdown",
    "cancelled_by_server",
    "shutting_down",
    "unless_shutdown",
    "watch_signals",
]
