"""A lean HTTP/1.1 keep-alive transport for httpx, made for a proxy's hot path.

httpx's default transport (httpcore) checks every idle connection of its pool
with a socket probe on every request, so its cost grows with the pool.  This
one keeps, per origin, a LIFO list of idle connections (a burst reuses the
warm ones, the rest age out) and speaks HTTP/1.1 with h11 over anyio streams,
so it runs on asyncio and trio alike.

- A request takes the most recently used idle connection of its origin, or
  opens one while fewer than ``max_connections`` exist, or waits for one to
  be released (``pool`` timeout: ``httpx.PoolTimeout``).
- No probe on the hot path.  Servers close idle connections after a few
  seconds (gunicorn 2 s, uvicorn 5 s), so a connection idle for longer than
  ``_PROBE_AFTER`` gets one non-blocking poll of its own socket before reuse.
  One that still turns out closed is retried once on a new connection when
  that is safe (RFC 9112 §9.3.1, RFC 9110 §9.2.2): nothing of the request was
  written, or the method is idempotent and the body can be sent again.
- The request body streams from ``request.stream``; the response body streams
  as the caller reads it, and the connection goes back to the pool at the end
  of the message, or is closed when the response is closed before its end, or
  either side asked for ``Connection: close``.
- httpx's timeouts (``request.extensions["timeout"]``) bound the connect, each
  write, each read and the wait for the pool, and raise httpx's exceptions.

Not done: HTTP/2, going through an HTTP proxy, ``Expect: 100-continue``,
protocol upgrades, trailers.  Response header names come back lower-cased.
"""

from __future__ import annotations

import select
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import h11
import httpx

Origin = tuple[bytes, bytes, int]

_READ_SIZE = 64 * 1024
_FITS_EMPTY_BUFFER = 8 * 1024  # below any TCP send buffer (Linux's default is 16 KiB)
_PROBE_AFTER = 1.0  # seconds idle before a connection is checked on reuse
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_CONNECTION_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class _Stale(Exception):
    """A reused connection died before any byte of the response arrived."""

    def __init__(self, nothing_written: bool) -> None:
        super().__init__("the server closed the kept-alive connection")
        self.nothing_written = nothing_written


class _Connection:
    __slots__ = ("h11", "idle_since", "origin", "reused", "stream")

    def __init__(self, stream: anyio.abc.ByteStream, origin: Origin) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.origin = origin
        self.idle_since = 0.0
        self.reused = False

    def looks_closed(self) -> bool:
        # An idle HTTP/1.1 connection has nothing to say: a readable socket
        # means EOF, a reset or junk, and is not worth a request.  TLS is not
        # checked (a session ticket may arrive at any time).
        if self.origin[0] != b"http":
            return False
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if sock is None:
            return False
        try:
            fileno = sock.fileno()
            if fileno < 0:
                return True
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(fileno, select.POLLIN)
                return bool(poller.poll(0))
            return bool(select.select([fileno], [], [], 0)[0])
        except (OSError, ValueError):
            return True


class _Waiter:
    __slots__ = ("connection", "event", "origin", "slot")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.event = anyio.Event()
        self.connection: _Connection | None = None
        self.slot = False  # handed the right to open a connection


class ProxyTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport``: HTTP/1.1 over a lean keep-alive pool.

    ``limits`` is read as httpx reads it (``max_connections`` in all,
    ``max_keepalive_connections`` idle ones kept, ``keepalive_expiry`` seconds
    an idle one is kept); ``verify`` is httpx's TLS setting for ``https``.
    """

    def __init__(self, *, limits: httpx.Limits | None = None, verify: Any = True) -> None:
        limits = limits or httpx.Limits()
        self._max_connections = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = None
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0  # connections open or being opened, idle or not
        self._waiters: deque[_Waiter] = deque()
        self._closed = False

    # -- one request ---------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its response, with the body still to be read."""
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"cannot send a request over {url.scheme!r}")
        origin = (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        try:
            head = h11.Request(
                method=request.method, target=url.raw_path, headers=request.headers.raw
            )
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        replayable = isinstance(request.stream, httpx.ByteStream)
        retry = True
        while True:
            connection = await self._acquire(origin, timeouts)
            try:
                return await self._exchange(connection, request, head, timeouts)
            except _Stale as stale:
                await self._discard(connection)
                safe = stale.nothing_written or (replayable and request.method in _IDEMPOTENT)
                if not (retry and safe):
                    raise httpx.RemoteProtocolError(str(stale)) from None
                retry = False
            except BaseException:
                await self._discard(connection)
                raise

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        head: h11.Request,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        conn = connection.h11
        stream = connection.stream
        write_timeout = timeouts.get("write")
        body = request.stream
        if not isinstance(body, httpx.AsyncByteStream):
            raise RuntimeError("an async transport needs an async request body")
        data = conn.send(head) or b""
        written = False
        try:
            if isinstance(body, httpx.ByteStream):
                # One write for the head and a whole body.
                async for chunk in body:
                    if chunk:
                        data += conn.send(h11.Data(data=chunk)) or b""
                data += conn.send(h11.EndOfMessage()) or b""
                await _write(stream, data, write_timeout, first=True)
            else:
                await _write(stream, data, write_timeout, first=True)
                written = True
                chunks = aiter(body)
                try:
                    async for chunk in chunks:
                        if chunk:
                            data = conn.send(h11.Data(data=chunk)) or b""
                            await _write(stream, data, write_timeout)
                finally:
                    # httpx's body is an async generator: close it here, not
                    # in the garbage collector, even when left half-way.
                    aclose = getattr(chunks, "aclose", None)
                    if aclose is not None:
                        await aclose()
                await _write(stream, conn.send(h11.EndOfMessage()) or b"", write_timeout)
        except (httpx.WriteError, httpx.WriteTimeout) as exc:
            if connection.reused and not written:
                raise _Stale(nothing_written=True) from exc
            # The server may have answered early (say, a 413) and closed:
            # its answer is still worth reading.
            if isinstance(exc, httpx.WriteTimeout):
                raise
        return await self._read_head(connection, request, timeouts.get("read"))

    async def _read_head(
        self, connection: _Connection, request: httpx.Request, timeout: float | None
    ) -> httpx.Response:
        conn = connection.h11
        received = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is h11.NEED_DATA:
                try:
                    data = await _read(connection.stream, timeout)
                except httpx.ReadError:
                    if connection.reused and not received:
                        raise _Stale(nothing_written=False) from None
                    raise
                if not data:
                    if connection.reused and not received:
                        raise _Stale(nothing_written=False)
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection without a response"
                    )
                received = True
                conn.receive_data(data)
            elif type(event) is h11.Response:
                body = ResponseBody(self, connection, timeout)
                return httpx.Response(
                    event.status_code,
                    headers=list(event.headers),
                    stream=body,
                    request=request,
                    extensions={
                        "http_version": b"HTTP/" + event.http_version,
                        "reason_phrase": event.reason,
                    },
                )
            elif type(event) is not h11.InformationalResponse:
                raise httpx.RemoteProtocolError(
                    f"unexpected {type(event).__name__} from the server"
                )

    # -- the pool ------------------------------------------------------------

    async def _acquire(self, origin: Origin, timeouts: dict[str, float | None]) -> _Connection:
        if self._closed:
            raise RuntimeError("the transport is closed")
        idle = self._idle.get(origin)
        if idle:
            now = time.monotonic()
            while idle:
                connection = idle.pop()
                self._idle_count -= 1
                age = now - connection.idle_since
                if self._expiry is not None and age > self._expiry:
                    # LIFO: everything older has expired as well.
                    await self._discard(connection)
                    while idle:
                        self._idle_count -= 1
                        await self._discard(idle.pop())
                    break
                if age > _PROBE_AFTER and connection.looks_closed():
                    await self._discard(connection)
                    continue
                return connection
        if self._max_connections is None or self._open < self._max_connections:
            self._open += 1
            return await self._connect(origin, timeouts.get("connect"))
        if self._idle_count:
            # All slots taken, some by idle connections to other origins.
            await self._close_oldest_idle()
            return await self._connect(origin, timeouts.get("connect"))
        return await self._wait(origin, timeouts)

    async def _wait(self, origin: Origin, timeouts: dict[str, float | None]) -> _Connection:
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
            await self._release(waiter.connection)
        else:
            self._free_slot()

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        hostname = host.decode("ascii")
        context = self._context() if scheme == b"https" else None
        try:
            with anyio.fail_after(timeout):
                if context is None:
                    stream: anyio.abc.ByteStream = await anyio.connect_tcp(hostname, port)
                else:
                    stream = await anyio.connect_tcp(
                        hostname,
                        port,
                        ssl_context=context,
                        tls_hostname=hostname,
                        tls_standard_compatible=False,
                    )
        except BaseException as exc:
            self._free_slot()
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"connecting to {hostname}:{port} timed out") from exc
            if isinstance(exc, _CONNECTION_ERRORS):
                raise httpx.ConnectError(f"cannot connect to {hostname}:{port}: {exc}") from exc
            raise
        return _Connection(stream, origin)

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            verify = self._verify
            context = (
                verify
                if isinstance(verify, ssl.SSLContext)
                else httpx.create_ssl_context(verify=verify, trust_env=False)
            )
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    async def _release(self, connection: _Connection) -> None:
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
        if self._closed or (self._max_idle is not None and self._idle_count >= self._max_idle):
            await self._discard(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1

    async def _discard(self, connection: _Connection) -> None:
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
        self._idle_count -= 1
        await _close(oldest.pop(0))

    async def aclose(self) -> None:
        """Close every idle connection; busy ones are closed when released."""
        self._closed = True
        for idle in self._idle.values():
            while idle:
                self._idle_count -= 1
                await self._discard(idle.pop())


class ResponseBody(httpx.AsyncByteStream):
    """The response body as it arrives; gives the connection back at its end."""

    def __init__(
        self, transport: ProxyTransport, connection: _Connection, timeout: float | None
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._timeout = timeout
        self._next: Any = None  # an h11 event read ahead by ``complete()``

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        conn = connection.h11
        try:
            while True:
                event, self._next = self._next or conn.next_event(), None
                if event is h11.NEED_DATA:
                    conn.receive_data(await _read(connection.stream, self._timeout))
                elif type(event) is h11.Data:
                    return bytes(event.data)
                elif type(event) is h11.EndOfMessage:
                    self._connection = None
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                        await self._transport._release(connection)
                    else:
                        await self._transport._discard(connection)
                    raise StopAsyncIteration
                else:
                    raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} in a body")
        except h11.RemoteProtocolError as exc:
            await self.aclose()
            raise httpx.RemoteProtocolError(str(exc)) from exc
        except BaseException:
            await self.aclose()
            raise

    def complete(self) -> bool:
        """Whether the body is known to end here, without waiting for more of it."""
        connection = self._connection
        if connection is None:
            return True
        if self._next is None:
            try:
                self._next = connection.h11.next_event()
            except h11.RemoteProtocolError:
                return False  # raised again by the next read
        return type(self._next) is h11.EndOfMessage

    async def aclose(self) -> None:
        """Close the connection unless the body was read to its end."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._transport._discard(connection)


async def _close(connection: _Connection) -> None:
    # Forcefully: this runs on cancellation paths too and must not wait.
    # Both backends close the socket before their first checkpoint, and no
    # TLS close_notify is owed (``tls_standard_compatible=False``).
    await anyio.aclose_forcefully(connection.stream)


async def _write(
    stream: anyio.abc.ByteStream, data: bytes, timeout: float | None, *, first: bool = False
) -> None:
    try:
        if timeout is None or (first and len(data) <= _FITS_EMPTY_BUFFER):
            # The first write of an exchange finds the socket's send buffer
            # empty (the last response acknowledged everything), and a
            # small one fits whole: it cannot wait, so it needs no deadline.
            await stream.send(data)
            return
        with anyio.CancelScope(deadline=anyio.current_time() + timeout):
            await stream.send(data)
            return
    except _CONNECTION_ERRORS as exc:
        raise httpx.WriteError(f"sending to the server failed: {exc!r}") from exc
    raise httpx.WriteTimeout("sending to the server timed out")


async def _read(stream: anyio.abc.ByteStream, timeout: float | None) -> bytes:
    try:
        if timeout is None:
            return await stream.receive(_READ_SIZE)
        # A bare scope: what ``fail_after`` does, without its generator.
        with anyio.CancelScope(deadline=anyio.current_time() + timeout):
            return await stream.receive(_READ_SIZE)
    except anyio.EndOfStream:
        return b""
    except _CONNECTION_ERRORS as exc:
        raise httpx.ReadError(f"reading from the server failed: {exc!r}") from exc
    raise httpx.ReadTimeout("the server did not answer in time")


__all__ = ["ProxyTransport", "ResponseBody"]
