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
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import anyio

_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)
_previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
_shutting_down = False


class _Loop:
    """The scopes to cancel in one event loop, and how to reach that loop from a signal."""

    __slots__ = ("call_soon", "key", "scopes")

    def __init__(self, key: object, call_soon: Callable[[Callable[[], None]], Any]) -> None:
        self.key = key
        self.call_soon = call_soon
        self.scopes: set[anyio.CancelScope] = set()

    def cancel_all(self) -> None:
        for scope in tuple(self.scopes):
            scope.cancel()


_loops: dict[object, _Loop] = {}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _shutting_down
    _shutting_down = True
    for loop in tuple(_loops.values()):
        with contextlib.suppress(RuntimeError):  # a loop that has closed
            loop.call_soon(loop.cancel_all)
    previous = _previous.get(signum)
    if previous is not None:
        previous(signum, frame)


def watch_signals() -> bool:
    """Put the shutdown handler in front of the server's; whether it is there."""
    if threading.current_thread() is not threading.main_thread():
        return any(signal.getsignal(sig) is _on_signal for sig in _SIGNALS)
    chained = False
    for sig in _SIGNALS:
        current = signal.getsignal(sig)
        if current is _on_signal:
            chained = True
        elif callable(current):
            _previous[sig] = current
            signal.signal(sig, _on_signal)
            chained = True
        elif sig == signal.SIGINT and current == signal.SIG_IGN:
            # hypercorn's worker processes ignore SIGINT and are told to stop
            # through a pipe, yet Ctrl+C reaches them too: note it, and go
            # on ignoring it.
            _previous.pop(sig, None)
            signal.signal(sig, _on_signal)
            chained = True
    return chained


def _current_loop() -> _Loop | None:
    key: object
    call_soon: Callable[[Callable[[], None]], Any]
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        try:
            import trio
        except ImportError:  # pragma: no cover - neither asyncio nor trio
            return None
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:  # pragma: no cover - no trio run either
            return None
        key, call_soon = token, token.run_sync_soon
    else:
        key, call_soon = running, running.call_soon_threadsafe
    loop = _loops.get(key)
    if loop is None:
        loop = _loops[key] = _Loop(key, call_soon)
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
    # Chained even when not enabled: a server's cancellation at shutdown is
    # then told apart by ``cancelled_by_server``.
    chained = watch_signals()
    loop = _current_loop() if enabled and chained else None
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
            if not loop.scopes:
                _loops.pop(loop.key, None)  # no loop kept alive once idle


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
    """Forget a shutdown (for tests, which raise the signal in-process)."""
    global _shutting_down
    _shutting_down = False


__all__ = ["cancel_on_shutdown", "cancelled_by_server", "shutting_down", "watch_signals"]
