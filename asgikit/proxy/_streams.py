"""Byte streams to an upstream: the transport's timeouts, httpx's exceptions.

Two kinds, one interface (``send``, ``receive``, ``has_spoken``, ``aclose``):

- On asyncio, :class:`AsyncioStream`, an ``asyncio.Protocol`` of its own.
  anyio's socket stream costs a loop pass per ``send`` (its checkpoint) and
  pauses and resumes reading around every ``receive`` (two ``epoll_ctl``
  system calls); a proxy sends and receives twice per request.  Here the
  socket is read as data comes, into a buffer bounded by pausing the
  transport (``_HIGH_WATER``), and a timeout costs a timer only when a call
  actually waits.
- Elsewhere (trio), :class:`AnyioStream`, anyio's socket (or TLS) stream,
  each wait bounded by a cancel scope.

Both raise ``httpx.ReadError``/``WriteError`` when the connection fails,
``httpx.ReadTimeout``/``WriteTimeout`` when a wait runs out, and read
``b""`` at the end of the stream.  A write that fails before any of its
bytes can have left raises :class:`NothingSent` (a ``WriteError``): only
then may a request that is not idempotent be sent again elsewhere.

``has_spoken`` answers the pool's question before it reuses an idle
connection: has the server said anything (closed, reset, sent stray
bytes)?  An idle HTTP/1.1 connection has nothing to say, and stray bytes
would be read as the next client's response.  What the stream has already
read is checked first, then one non-blocking ``poll`` of the socket (a
poller made once per connection) catches what the event loop has not read
yet.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from typing import Any

import anyio
import anyio.abc
import anyio.streams.tls

from asgikit._httpx import httpx

_READ_SIZE = 64 * 1024
_HIGH_WATER = 256 * 1024  # bytes read ahead of the caller before the socket is paused
_FITS_EMPTY_BUFFER = 8 * 1024  # below any TCP send buffer (Linux's default is 16 KiB)
_CONNECTION_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class NothingSent(httpx.WriteError):
    """A write failed before any of its bytes could leave: the server saw none of them."""


class _Poller:
    """One ``poll`` of a socket for readability, set up on first use."""

    __slots__ = ("poller", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.poller: Any = None

    def readable(self) -> bool:
        try:
            poller = self.poller
            if poller is None:
                if self.sock is None:
                    return False  # not a socket (a test's memory stream): nothing to poll
                fileno = self.sock.fileno()
                if fileno < 0:
                    return True
                if not hasattr(select, "poll"):  # Windows
                    return bool(select.select([fileno], [], [], 0)[0])
                poller = self.poller = select.poll()
                poller.register(fileno, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True


def _wake(waiter: asyncio.Future[bool] | None, value: bool = True) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(value)


class AsyncioStream(asyncio.Protocol):
    """A connection read as data comes, for the asyncio event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._eof = False  # the server sent its FIN, or the connection is gone
        self._lost = False  # the connection is gone
        self._error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[bool] | None = None  # for data or the end
        self._drain: asyncio.Future[bool] | None = None  # for room to write
        self._poller: _Poller | None = None

    @classmethod
    async def connect(
        cls, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> AsyncioStream:
        """Open a TCP (or TLS) connection; the caller bounds the wait."""
        loop = asyncio.get_running_loop()
        _, stream = await loop.create_connection(
            lambda: cls(loop),
            host,
            port,
            ssl=ssl_context,
            server_hostname=host if ssl_context is not None else None,
        )
        return stream

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._reading_paused:
            assert self._transport is not None
            self._reading_paused = True
            self._transport.pause_reading()
        _wake(self._waiter)

    def eof_received(self) -> None:
        self._eof = True
        _wake(self._waiter)
        # Returning None lets the transport close itself.

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._lost = True
        if exc is not None:
            self._error = exc
        _wake(self._waiter)
        _wake(self._drain)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._drain)

    # -- the stream ----------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet received."""
        return self._buffered

    async def _wait(self, timeout: float | None, *, drain: bool = False) -> bool:
        # True when woken, False when the timeout ran out first.
        waiter: asyncio.Future[bool] = self._loop.create_future()
        if drain:
            self._drain = waiter
        else:
            self._waiter = waiter
        handle = None if timeout is None else self._loop.call_later(timeout, _wake, waiter, False)
        try:
            return await waiter
        finally:
            if drain:
                self._drain = None
            else:
                self._waiter = None
            if handle is not None:
                handle.cancel()

    async def send(self, data: bytes, timeout: float | None, *, first: bool = False) -> None:
        """Write ``data``; wait (up to ``timeout``) only while the socket's buffer is full."""
        transport = self._transport
        if self._eof or transport is None or transport.is_closing():
            raise NothingSent("sending to the server failed: the connection is closed")
        transport.write(data)
        while self._writing_paused:
            if not await self._wait(timeout, drain=True):
                raise httpx.WriteTimeout("sending to the server timed out")
            if self._lost:
                raise httpx.WriteError(f"sending to the server failed: {self._error!r}")

    async def receive(self, timeout: float | None) -> bytes:
        """The bytes read so far, waiting (up to ``timeout``) for some; ``b""`` at the end."""
        while not self._chunks:
            if self._error is not None:
                raise httpx.ReadError(f"reading from the server failed: {self._error!r}")
            if self._eof:
                return b""
            if not await self._wait(timeout):
                raise httpx.ReadTimeout("the server did not answer in time")
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._reading_paused:
            assert self._transport is not None
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    def has_spoken(self) -> bool:
        """Whether the idle connection has anything to read: EOF, a reset or stray bytes."""
        if self._chunks or self._eof or self._transport is None:
            return True
        if self._poller is None:
            self._poller = _Poller(self._transport.get_extra_info("socket"))
        return self._poller.readable()

    async def aclose(self) -> None:
        """Close now, without waiting (this runs on cancellation paths too)."""
        if self._transport is not None:
            self._transport.abort()


class AnyioStream:
    """anyio's byte stream (trio), each wait bounded by a cancel scope."""

    def __init__(self, stream: anyio.abc.ByteStream, tls: bool) -> None:
        self.stream = stream
        self._tls = tls
        self._poller: _Poller | None = None

    @classmethod
    async def connect(
        cls, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> AnyioStream:
        """Open a TCP (or TLS) connection; the caller bounds the wait."""
        if ssl_context is None:
            return cls(await anyio.connect_tcp(host, port), tls=False)
        stream = await anyio.connect_tcp(
            host,
            port,
            ssl_context=ssl_context,
            tls_hostname=host,
            tls_standard_compatible=False,  # no close_notify owed: closing never waits
        )
        return cls(stream, tls=True)

    async def send(self, data: bytes, timeout: float | None, *, first: bool = False) -> None:
        """Write ``data`` within ``timeout``."""
        try:
            if timeout is None or (first and len(data) <= _FITS_EMPTY_BUFFER):
                # The first write of an exchange finds the socket's send buffer
                # empty (the last response acknowledged everything), and a
                # small one fits whole: it cannot wait, so it needs no deadline.
                await self.stream.send(data)
                return
            with anyio.CancelScope(deadline=anyio.current_time() + timeout):
                await self.stream.send(data)
                return
        except _CONNECTION_ERRORS as exc:
            message = f"sending to the server failed: {exc!r}"
            if first and len(data) <= _FITS_EMPTY_BUFFER:
                # Into an empty send buffer a small write goes whole or not at all.
                raise NothingSent(message) from exc
            # A larger one may have failed part-way, after bytes left.
            raise httpx.WriteError(message) from exc
        raise httpx.WriteTimeout("sending to the server timed out")

    async def receive(self, timeout: float | None) -> bytes:
        """Up to 64 KiB, waiting at most ``timeout``; ``b""`` at the end."""
        try:
            if timeout is None:
                return await self.stream.receive(_READ_SIZE)
            # A bare scope: what ``fail_after`` does, without its generator.
            with anyio.CancelScope(deadline=anyio.current_time() + timeout):
                return await self.stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            return b""
        except _CONNECTION_ERRORS as exc:
            raise httpx.ReadError(f"reading from the server failed: {exc!r}") from exc
        raise httpx.ReadTimeout("the server did not answer in time")

    def has_spoken(self) -> bool:
        """Whether the idle connection has anything to read: EOF, a reset or stray bytes.

        Over TLS a readable socket may also be a late session ticket; the
        connection is closed all the same (a new one costs a handshake; a
        misread one costs another client's response).
        """
        if self._tls:
            ssl_object = self.stream.extra(anyio.streams.tls.TLSAttribute.ssl_object)
            # Decrypted bytes left in the TLS object, or records read off the
            # socket but not yet decrypted (anyio keeps them in its read BIO).
            read_bio = getattr(self.stream, "_read_bio", None)
            if ssl_object.pending() or (read_bio is not None and read_bio.pending):
                return True
        if self._poller is None:
            sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
            self._poller = _Poller(sock)
        return self._poller.readable()

    async def aclose(self) -> None:
        """Close now, without waiting (this runs on cancellation paths too).

        Both of anyio's backends close the socket before their first
        checkpoint, and no TLS close_notify is owed (see ``connect``).
        """
        await anyio.aclose_forcefully(self.stream)


UpstreamStream = AsyncioStream | AnyioStream

__all__ = ["AnyioStream", "AsyncioStream", "NothingSent", "UpstreamStream"]
