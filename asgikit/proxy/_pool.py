"""The connection pool behind :class:`~asgikit.proxy._transport.ProxyTransport`.

Per origin, a LIFO list of idle HTTP/1.1 connections: a burst reuses the
warm ones and the rest age out (``keepalive_expiry``).  ``max_connections``
bounds the connections open, idle or busy; a request that finds none free
waits, first come first served, for one to be released or closed.

Only the connection about to be reused is checked, never the whole pool:
what its stream has read already, then one non-blocking ``poll`` of its own
socket (see :mod:`asgikit.proxy._streams`).  An idle HTTP/1.1 connection
has nothing to say, so anything to read means the server closed it
(gunicorn after 2 s idle, uvicorn after 5 s), reset it, or sent bytes past
the end of its last response; any of these closes it, because stray bytes
would be read as the next client's response.  The transport retries a
request on a connection that dies after the check, when that is safe.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any

import anyio
import h11

from asgikit._httpx import httpx
from asgikit.proxy._streams import AnyioStream, AsyncioStream, UpstreamStream

Origin = tuple[bytes, bytes, int]  # scheme, host, port

MAX_HEAD = 100 * 1024  # a response head larger than this is refused (h11's default is 16 KiB)
_CONNECTION_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class Connection:
    """One HTTP/1.1 connection: its stream, its h11 state, where it goes."""

    __slots__ = ("h11", "idle_since", "origin", "reused", "stream")

    def __init__(self, stream: UpstreamStream, origin: Origin) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.origin = origin
        self.idle_since = 0.0
        self.reused = False

    def has_spoken(self) -> bool:
        """Whether the idle connection has anything to read: EOF, a reset or stray bytes."""
        return self.stream.has_spoken()


class _Waiter:
    __slots__ = ("connection", "event", "origin", "slot")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.event = anyio.Event()
        self.connection: Connection | None = None
        self.slot = False  # handed the right to open a connection


class Pool:
    """Idle connections per origin, and the bound on all of them."""

    def __init__(self, limits: httpx.Limits, verify: Any) -> None:
        self._max_connections = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = None
        self._idle: dict[Origin, list[Connection]] = {}
        self.idle_count = 0
        self._open = 0  # connections open or being opened, idle or not
        self._waiters: deque[_Waiter] = deque()
        self._closed = False

    async def acquire(self, origin: Origin, timeouts: dict[str, float | None]) -> Connection:
        """A connection to ``origin``: an idle one, a new one, or the next one released."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        idle = self._idle.get(origin)
        if idle:
            now = time.monotonic()
            while idle:
                connection = idle.pop()
                self.idle_count -= 1
                age = now - connection.idle_since
                if self._expiry is not None and age > self._expiry:
                    # LIFO: everything older has expired as well.
                    await self.discard(connection)
                    while idle:
                        self.idle_count -= 1
                        await self.discard(idle.pop())
                    break
                if connection.has_spoken():
                    await self.discard(connection)
                    continue
                return connection
        if self._max_connections is None or self._open < self._max_connections:
            self._open += 1
            return await self._connect(origin, timeouts.get("connect"))
        if self.idle_count:
            # All slots taken, some by idle connections to other origins.
            await self._close_oldest_idle()
            return await self._connect(origin, timeouts.get("connect"))
        return await self._wait(origin, timeouts)

    async def _wait(self, origin: Origin, timeouts: dict[str, float | None]) -> Connection:
        waiter = _Waiter(origin)
        self._waiters.append(waiter)
        try:
            with anyio.fail_after(timeouts.get("pool")):
                await waiter.event.wait()
        except TimeoutError:
            if not waiter.event.is_set():
                self._waiters.remove(waiter)
                raise httpx.PoolTimeout("no connection free in time") from None
        except BaseException:
            if waiter.event.is_set():
                await self._pass_on(waiter)
            else:
                self._waiters.remove(waiter)
            raise
        if waiter.connection is not None:
            return waiter.connection
        return await self._connect(origin, timeouts.get("connect"))

    async def _pass_on(self, waiter: _Waiter) -> None:
        # A waiter served but cancelled before it could use what it got.
        if waiter.connection is not None:
            await self.release(waiter.connection)
        else:
            self._free_slot()

    async def _connect(self, origin: Origin, timeout: float | None) -> Connection:
        scheme, host, port = origin
        hostname = host.decode("ascii")
        context = self._context() if scheme == b"https" else None
        try:
            asyncio.get_running_loop()
            kind: type[AsyncioStream | AnyioStream] = AsyncioStream
        except RuntimeError:  # trio
            kind = AnyioStream
        try:
            with anyio.fail_after(timeout):
                stream = await kind.connect(hostname, port, context)
        except BaseException as exc:
            self._free_slot()
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"connecting to {hostname}:{port} timed out") from exc
            if isinstance(exc, _CONNECTION_ERRORS):
                raise httpx.ConnectError(f"cannot connect to {hostname}:{port}: {exc}") from exc
            raise
        return Connection(stream, origin)

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            verify = self._verify
            if isinstance(verify, ssl.SSLContext):
                self._ssl_context = verify  # the caller's, used as it is
            else:
                context = httpx.create_ssl_context(verify=verify, trust_env=False)
                context.set_alpn_protocols(["http/1.1"])
                self._ssl_context = context
        return self._ssl_context

    async def release(self, connection: Connection) -> None:
        """Give back a connection whose last exchange ended cleanly."""
        connection.reused = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.origin == connection.origin:
                waiter.connection = connection
                waiter.event.set()
                return
            # Another origin waits: this connection makes room for its own.
            waiter.slot = True
            waiter.event.set()
            await _close(connection)
            return
        if self._closed or (self._max_idle is not None and self.idle_count >= self._max_idle):
            await self.discard(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self.idle_count += 1

    async def discard(self, connection: Connection) -> None:
        """Close a connection (busy or just taken off the idle list) and free its slot."""
        self._free_slot()
        await _close(connection)

    def _free_slot(self) -> None:
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.slot = True
            waiter.event.set()
        else:
            self._open -= 1

    async def _close_oldest_idle(self) -> None:
        oldest = min(
            (idle for idle in self._idle.values() if idle), key=lambda idle: idle[0].idle_since
        )
        self.idle_count -= 1
        await _close(oldest.pop(0))

    async def aclose(self) -> None:
        """Close every idle connection; busy ones are closed when released."""
        self._closed = True
        for idle in self._idle.values():
            while idle:
                self.idle_count -= 1
                await self.discard(idle.pop())


async def _close(connection: Connection) -> None:
    # Forcefully: this runs on cancellation paths too and must not wait.
    await connection.stream.aclose()


__all__ = ["MAX_HEAD", "Connection", "Origin", "Pool"]
