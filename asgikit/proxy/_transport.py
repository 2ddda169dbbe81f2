"""A lean HTTP/1.1 keep-alive transport for httpx, made for a proxy's hot path.

httpx's default transport (httpcore) checks every idle connection of its pool
with a socket probe on every request, so its cost grows with the pool.  This
one speaks HTTP/1.1 with h11 over the streams of :mod:`asgikit.proxy._streams`, on
the lean pool of :mod:`asgikit.proxy._pool`: LIFO idle lists per origin, no
probe on the hot path.

- A connection found dead on reuse (the server closed it while it was idle)
  is retried once on a new one when that is safe (RFC 9112 §9.3.1, RFC 9110
  §9.2.2): nothing of the request was written, or the method is idempotent
  and the body can be sent again.
- The request body streams from its iterator (``request.stream`` through
  httpx, the proxy's body as it is read otherwise); the response body streams
  as the caller reads it, and the connection goes back to the pool at the end
  of the message, or is closed when the response is closed before its end, or
  either side asked for ``Connection: close``.
- httpx's timeouts (``request.extensions["timeout"]``) bound the connect, each
  write, each read and the wait for the pool, and raise httpx's exceptions.
- Header names and values are checked against h11's grammar in two matches
  (see :func:`request_head`), before h11 takes the head.

Not done: HTTP/2, going through an HTTP proxy, ``Expect: 100-continue``,
protocol upgrades, trailers.  Response header names come back lower-cased.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import h11

from asgikit._httpx import httpx
from asgikit.proxy._pool import MAX_HEAD, Connection, Origin, Pool
from asgikit.proxy._streams import NothingSent

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_BODILESS = frozenset({204, 304})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

RequestBody = bytes | AsyncIterable[bytes]


# h11's own grammar (RFC 9110 §5.1, §5.5), matched once over all the names
# and once over all the values, each joined by a newline (which neither may
# hold), rather than twice per header as h11 does.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_CONTENT = rb"[^\x00\s]+(?:[ \t]+[^\x00\s]+)*"
#: h11's private ``_parsed`` keyword (skip the per-header checks done here):
#: used only where this h11 still takes it; without it h11 checks them itself.
_H11_PARSED = "_parsed" in inspect.signature(h11.Request).parameters
_NAMES = re.compile(rb"%s(?:\n%s)*" % (_TOKEN, _TOKEN))
_VALUES = re.compile(rb"(?:%s)?(?:\n(?:%s)?)*" % (_FIELD_CONTENT, _FIELD_CONTENT))


def request_head(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> h11.Request:
    """h11's ``Request`` for these values, the header grammar checked in two matches.

    Headers that fail the check go to h11 as they are, to be refused with
    its own ``LocalProtocolError``.
    """
    try:
        names = b"\n".join([name for name, _ in headers])
        values = b"\n".join([value for _, value in headers])
    except TypeError:  # not bytes: h11 converts or refuses them
        names = values = b"\x00"
    # A newline inside a name or a value would pass for a separator: the
    # counts tell it apart.
    separators = len(headers) - 1
    if (
        _H11_PARSED
        and names.count(b"\n") == separators
        and values.count(b"\n") == separators
        and _NAMES.fullmatch(names)
        and _VALUES.fullmatch(values)
    ):
        # Checked as h11 checks them: ``_parsed`` skips its per-header matches
        # (h11 still checks the method, the target, Host and the framing).
        try:
            return h11.Request(
                method=method.encode("ascii"), target=target, headers=headers, _parsed=True
            )
        except AssertionError:
            # A bytearray or memoryview (the join takes them) that h11's
            # parsed path asserts away: its own path converts them.
            pass
    return h11.Request(method=method, target=target, headers=headers)


class _Stale(Exception):
    """A reused connection died before any byte of the response arrived."""

    def __init__(self, nothing_written: bool) -> None:
        super().__init__("the server closed the kept-alive connection")
        self.nothing_written = nothing_written


class ProxyTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport``: HTTP/1.1 over a lean keep-alive pool.

    ``limits`` is read as httpx reads it (``max_connections`` in all,
    ``max_keepalive_connections`` idle ones kept, ``keepalive_expiry`` seconds
    an idle one is kept); ``verify`` is httpx's TLS setting for ``https``.
    Besides httpx's entry point, :meth:`send_head` takes a request as plain
    values, which is how the proxy calls it: no ``httpx.Request``, ``URL`` or
    ``Response`` to build per request.
    """

    def __init__(self, *, limits: httpx.Limits | None = None, verify: Any = True) -> None:
        self._pool = Pool(limits or httpx.Limits(), verify)

    # -- one request ---------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its response, with the body still to be read."""
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"cannot send a request over {url.scheme!r}")
        origin = (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])
        stream = request.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise RuntimeError("an async transport needs an async request body")
        content: RequestBody = stream
        if isinstance(stream, httpx.ByteStream):
            content = b"".join([chunk async for chunk in stream])
        head, body = await self.send_head(
            origin,
            request.method,
            url.raw_path,
            request.headers.raw,
            content,
            request.extensions.get("timeout", {}),
        )
        return httpx.Response(
            head.status_code,
            headers=list(head.headers),
            stream=body,
            request=request,
            extensions={
                "http_version": b"HTTP/" + head.http_version,
                "reason_phrase": head.reason,
            },
        )

    async def send_head(
        self,
        origin: Origin,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        content: RequestBody,
        timeouts: dict[str, float | None],
    ) -> tuple[h11.Response, ResponseBody]:
        """Send a request and read its response's head; the body is left to read.

        ``headers`` frame ``content`` as h11 reads them: a ``Content-Length``
        or ``Transfer-Encoding: chunked``, or neither for no body.  Bytes are
        written with the head, and sent again on a new connection when the
        kept-alive one turns out dead and the method is idempotent.
        """
        try:
            head = request_head(method, target, headers)
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        replayable = isinstance(content, bytes)
        retry = True
        while True:
            connection = await self._pool.acquire(origin, timeouts)
            try:
                return await self._exchange(connection, method, head, content, timeouts)
            except _Stale as stale:
                await self._pool.discard(connection)
                safe = stale.nothing_written or (replayable and method in _IDEMPOTENT)
                if not (retry and safe):
                    raise httpx.RemoteProtocolError(str(stale)) from None
                retry = False
            except BaseException:
                await self._pool.discard(connection)
                raise

    async def _exchange(
        self,
        connection: Connection,
        method: str,
        head: h11.Request,
        content: RequestBody,
        timeouts: dict[str, float | None],
    ) -> tuple[h11.Response, ResponseBody]:
        conn = connection.h11
        stream = connection.stream
        write_timeout = timeouts.get("write")
        data = conn.send(head) or b""
        written = False
        try:
            if isinstance(content, bytes):
                # One write for the head and a whole body.
                if content:
                    data += conn.send(h11.Data(data=content)) or b""
                data += conn.send(h11.EndOfMessage()) or b""
                await stream.send(data, write_timeout, first=True)
            else:
                await stream.send(data, write_timeout, first=True)
                written = True
                chunks = aiter(content)
                try:
                    async for chunk in chunks:
                        if chunk:
                            data = conn.send(h11.Data(data=chunk)) or b""
                            await stream.send(data, write_timeout)
                finally:
                    # httpx's body is an async generator: close it here, not
                    # in the garbage collector, even when left half-way.
                    aclose = getattr(chunks, "aclose", None)
                    if aclose is not None:
                        await aclose()
                await stream.send(conn.send(h11.EndOfMessage()) or b"", write_timeout)
        except h11.LocalProtocolError as exc:
            # The body does not match its framing (more or less than its
            # Content-Length): the request is the caller's fault.
            raise httpx.LocalProtocolError(str(exc)) from exc
        except (httpx.WriteError, httpx.WriteTimeout) as exc:
            if connection.reused and not written and isinstance(exc, NothingSent):
                raise _Stale(nothing_written=True) from exc
            # Bytes may have left, so only an idempotent request may go again
            # (RFC 9110 §9.2.2), as for a connection that dies while read.
            # The server may also have answered early (say, a 413) and
            # closed: its answer is still worth reading.
            if isinstance(exc, httpx.WriteTimeout):
                raise
        return await self._read_head(connection, method, timeouts.get("read"))

    async def _read_head(
        self, connection: Connection, method: str, timeout: float | None
    ) -> tuple[h11.Response, ResponseBody]:
        conn = connection.h11
        received = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is h11.NEED_DATA:
                try:
                    data = await connection.stream.receive(timeout)
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
                received += len(data)
                conn.receive_data(data)
                continue
            # h11 bounds a head only while it is incomplete: one that came
            # whole in a single read (the asyncio stream hands over up to
            # 256 KiB) is measured here, as what was read less what is left,
            # interim (1xx) answers included.
            if received > MAX_HEAD and received - len(conn.trailing_data[0]) > MAX_HEAD:
                raise httpx.RemoteProtocolError(
                    f"the server's response head is larger than {MAX_HEAD} bytes"
                )
            if type(event) is h11.Response:
                body = ResponseBody(self._pool, connection, timeout)
                if event.status_code in _BODILESS or method == "HEAD":
                    # RFC 9110 §6.4.1: these responses end with their head.
                    # Bytes already here after it are a body the server
                    # should not have sent: the whole exchange is suspect.
                    try:
                        body._next = conn.next_event()
                    except h11.RemoteProtocolError as exc:
                        raise httpx.RemoteProtocolError(str(exc)) from exc
                    if conn.trailing_data[0]:
                        raise httpx.RemoteProtocolError(
                            f"the server sent a body with a {event.status_code} answer to {method}"
                        )
                return event, body
            elif type(event) is not h11.InformationalResponse:
                raise httpx.RemoteProtocolError(
                    f"unexpected {type(event).__name__} from the server"
                )

    async def aclose(self) -> None:
        """Close every idle connection; busy ones are closed when released."""
        await self._pool.aclose()


class ResponseBody(httpx.AsyncByteStream):
    """The response body as it arrives; gives the connection back at its end."""

    def __init__(self, pool: Pool, connection: Connection, timeout: float | None) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._timeout = timeout
        self._next: Any = None  # an h11 event read ahead by ``complete()``
        self._closed_by_peer = False

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
                    data = await connection.stream.receive(self._timeout)
                    # A body that ends with the connection (no length, not
                    # chunked) leaves h11 "DONE", but the connection is gone.
                    self._closed_by_peer = not data
                    conn.receive_data(data)
                elif type(event) is h11.Data:
                    return bytes(event.data)
                elif type(event) is h11.EndOfMessage:
                    self._connection = None
                    reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                    # A byte past the end of the response (a body on HEAD,
                    # 204 or 304, more than Content-Length) would be read as
                    # the next client's response: such a connection is never
                    # reused (nginx: "upstream sent more data than specified").
                    if reusable and not self._closed_by_peer and not conn.trailing_data[0]:
                        conn.start_next_cycle()
                        await self._pool.release(connection)
                    else:
                        await self._pool.discard(connection)
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
            await self._pool.discard(connection)


__all__ = ["ProxyTransport", "RequestBody", "ResponseBody", "request_head"]
