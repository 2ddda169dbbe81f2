"""Forward one HTTP request to the upstream and stream the answer back.

Both bodies stream: the request body is handed to the transport (or to
httpx) as an iterator that calls ``receive()`` as the upstream takes it (so
an upload never runs ahead of the upstream), and the response body is
relayed chunk by chunk as it is read, raw (``Content-Encoding`` untouched,
nothing decompressed).

On the proxy's own transport the request goes as plain values (method,
target, header list, body): no ``httpx.Request``, ``URL`` or ``Response``
per request.  It is framed and its target written as httpx would (a target
httpx would change goes through httpx's ``URL``).  On asyncio the waits are
bounded with the light scopes of :mod:`asgikit.proxy._scopes`.

Once the request body is all read, a watcher listens for ``http.disconnect``
and cancels the exchange, which closes the upstream connection and frees its
slot in the pool (while the body is still coming, its own ``receive()`` sees
a disconnect).  On asyncio the watcher is a bare task cancelled on the way
out: an anyio task group per request costs several times more, and the
watcher has nothing to report back.  On trio it runs in a nursery.

Slow clients are bounded: the wait for each chunk of the request body ends
after ``body_timeout``, and the whole request phase (the body, then the
upstream's answer) at the ``deadline``; a client cut off gets a ``408``
and its upstream connection is closed, so stalled uploads cannot hold the
pool.  Failures are answers: an upstream that cannot be reached is a
``502``, one that is too slow a ``504``, a pool with no free connection in
time a ``503``, a request whose framing is ambiguous a ``400``.  Once the
response has started there is no status left to change, so a failure then
ends the exchange without completing the response; the server closes the
connection and the client sees a truncated body (never a short body that
looks whole).

Not done here: trailers, ``Via`` (RFC 9110 §7.6.3; add it with a header
layer if wanted), HTTP/2 to the upstream, retries (the transport retries a
request on a dead kept-alive connection when that is safe).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

import anyio

from asgikit._httpx import httpx
from asgikit.exceptions import ClientDisconnect
from asgikit.proxy._config import ProxyOptions, UnsafeTarget
from asgikit.proxy._headers import (
    RawHeaders,
    RefusedRequest,
    check_request_framing,
    drop_hop_by_hop,
    upstream_request_headers,
)
from asgikit.proxy._scopes import cancel_scope
from asgikit.proxy._transport import ProxyTransport, ResponseBody
from asgikit.requests import DisconnectState, disconnect_state
from asgikit.types import Message, Receive, Scope, Send

_STALLED = "Request Timeout: the request body did not come in time"
_GRACE = 0.05  # seconds an exchange runs before its disconnect listener starts (asyncio)


async def forward_http(
    scope: Scope,
    receive: Receive,
    send: Send,
    client: httpx.AsyncClient,
    options: ProxyOptions,
    transport: ProxyTransport | None = None,
    timeouts: dict[str, float | None] | None = None,
) -> None:
    """Forward the request in ``scope`` and relay the response to ``send``.

    With ``transport`` (the one inside ``client``, when the proxy made the
    client) the request goes straight to it: the client has no hooks, auth,
    cookies or redirects to apply, and ``client.send`` costs more per request
    than the transport itself.  Otherwise it goes through ``client.send``.
    ``timeouts`` (httpx's ``connect``/``read``/``write``/``pool``) go with
    each request, and win over the client's own; without them, the
    client's apply.
    """
    state = disconnect_state(scope)
    if state.disconnected:
        return
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:  # trio
        loop = None
    limits = _Limits(options, anyio.current_time if loop is None else loop.time)
    with cancel_scope(loop, limits.next_chunk()) as waiting:
        first = await receive()
    if waiting.cancelled_caught:
        await _answer(send, 408, _STALLED)
        return
    if first["type"] == "http.disconnect":
        state.disconnected = True
        return
    upstream = options.upstream
    try:
        check_request_framing(scope.get("headers", ()))
    except RefusedRequest as exc:
        await _answer(send, 400, f"Bad Request: {exc}", close=True)
        return
    headers = upstream_request_headers(
        scope,
        upstream.host_header,
        preserve_host=options.preserve_host,
        add_forwarded=options.add_forwarded,
    )
    try:
        target = options.target(scope)
        url = None if transport is not None else _upstream_url(options, target)
        raw_target = _raw_target(options, target) if transport is not None else b""
    except (httpx.InvalidURL, UnsafeTarget):
        await _answer(send, 400, "Bad Request: the path cannot be forwarded")
        return
    watch = _Watch(receive, state, loop)
    body: bytes = first.get("body", b"")
    content: bytes | _RequestBody = body
    if first.get("more_body", False):
        content = _RequestBody(body, receive, state, watch, limits)
    send_request: Callable[[], Awaitable[_Answer]]
    if transport is not None:
        # Framed as httpx frames a body: a Content-Length for a whole one
        # (none when empty), chunked for a streamed one without a length.
        if isinstance(content, bytes):
            if content and not _has(headers, b"content-length"):
                headers.append((b"content-length", str(len(content)).encode("ascii")))
        elif not _has(headers, b"content-length"):
            headers.append((b"transfer-encoding", b"chunked"))
        send_request = _via_transport(
            transport,
            upstream.origin,
            scope["method"],
            raw_target,
            headers,
            content,
            timeouts if timeouts is not None else client.timeout.as_dict(),
        )
    else:
        assert url is not None
        # Built directly, not with ``client.build_request``, which would add
        # the client's default headers (an ``Accept-Encoding`` the client
        # never sent among them).  httpx frames the body as above.
        request = httpx.Request(scope["method"], url, headers=headers, content=content)
        if timeouts is not None:
            request.extensions["timeout"] = timeouts
        send_request = _via_client(client, request)
    exchange = _exchange(send_request, send, state, watch, limits, content)
    if loop is not None:
        with watch.cancel:
            if not isinstance(content, _RequestBody):
                watch.start()
            try:
                await exchange
            finally:
                watch.stop()
        return
    error: Exception | None = None
    with watch.cancel:
        async with anyio.create_task_group() as group:
            watch.spawn = group.start_soon
            if not isinstance(content, _RequestBody):
                watch.start()
            try:
                await exchange
            except Exception as exc:
                # Raised after the group, so callers see it and not a group around it.
                error = exc
            finally:
                group.cancel_scope.cancel()
    if error is not None:
        raise error


# What httpx leaves as it is in a path and a query: a target made only of
# these needs no URL parsed to be sent as httpx would send it.
_PLAIN_TARGET = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?"
)


def _raw_target(options: ProxyOptions, target: str) -> bytes:
    if target.startswith("/") and "/." not in target and _PLAIN_TARGET.issuperset(target):
        return target.encode("ascii")
    # Anything else (escapes, characters httpx escapes, dot segments) goes
    # through httpx's URL, so that the upstream sees what httpx would send.
    return _upstream_url(options, target).raw_path


def _upstream_url(options: ProxyOptions, target: str) -> httpx.URL:
    upstream = options.upstream
    if target.startswith("/"):
        # Parsing one string is the cheaper way to an httpx.URL; the result
        # is the same as from the components (the target is ASCII already).
        return httpx.URL(f"{upstream.scheme}://{upstream.host_header.decode('ascii')}{target}")
    return httpx.URL(
        scheme=upstream.scheme,
        host=upstream.host,
        port=upstream.port,
        raw_path=target.encode("ascii"),
    )


def _has(headers: RawHeaders, name: bytes) -> bool:
    return any(key == name for key, _ in headers)


class _Answer:
    """The upstream's response: its head, and its body still to be read."""

    __slots__ = ("body", "chunks", "headers", "response", "status")

    def __init__(
        self,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        chunks: AsyncIterator[bytes],
        body: ResponseBody | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.chunks = chunks
        self.body = body  # the transport's, which knows when its end is in
        self.response = response  # httpx's, when it came through a client

    async def aclose(self) -> None:
        if self.body is not None:
            await self.body.aclose()  # the transport's close never waits
        elif self.response is not None:
            with anyio.CancelScope(shield=True):
                await self.response.aclose()


def _via_transport(
    transport: ProxyTransport,
    origin: tuple[bytes, bytes, int],
    method: str,
    target: bytes,
    headers: RawHeaders,
    content: bytes | _RequestBody,
    timeouts: dict[str, float | None],
) -> Callable[[], Awaitable[_Answer]]:
    async def send_request() -> _Answer:
        head, body = await transport.send_head(origin, method, target, headers, content, timeouts)
        return _Answer(head.status_code, head.headers.raw_items(), body, body)

    return send_request


def _via_client(
    client: httpx.AsyncClient, request: httpx.Request
) -> Callable[[], Awaitable[_Answer]]:
    async def send_request() -> _Answer:
        response = await client.send(request, stream=True)
        return _Answer(
            response.status_code, response.headers.raw, response.aiter_raw(), None, response
        )

    return send_request


class _Watch:
    """Listens for ``http.disconnect`` and cancels the exchange when it comes.

    On asyncio the listener starts only once the exchange has run for
    ``_GRACE`` seconds: most exchanges are over by then and never pay for a
    task, and a client that leaves early is noticed that much later.
    """

    __slots__ = ("cancel", "handle", "loop", "receive", "spawn", "started", "state", "task")

    def __init__(
        self, receive: Receive, state: DisconnectState, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.receive = receive
        self.state = state
        self.loop = loop
        self.cancel = cancel_scope(loop)
        self.spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], object] | None = None
        self.started = False
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start listening (once the request body is read: ``receive()`` is free)."""
        if self.started:
            return
        self.started = True
        if self.loop is not None:
            self.handle = self.loop.call_later(_GRACE, self._start_task)
        elif self.spawn is not None:
            self.spawn(self.listen)

    def _start_task(self) -> None:
        assert self.loop is not None
        self.handle = None
        self.task = self.loop.create_task(self.listen())

    def stop(self) -> None:
        """Stop listening (asyncio; on trio the nursery does it)."""
        if self.handle is not None:
            self.handle.cancel()
        if self.task is not None:
            # Not awaited: it only waits in receive() and reports nothing.
            self.task.cancel()

    async def listen(self) -> None:
        state = self.state
        state.listening = True
        try:
            while True:
                # Body messages left when the upstream answered without
                # reading the whole body are read and dropped.
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    state.disconnected = True
                    self.cancel.cancel()
                    return
        except Exception:  # a failing receive() is the server's to report
            return
        finally:
            state.listening = False


class _Limits:
    """The two bounds on the request phase of one exchange (see ``reverse_proxy``)."""

    __slots__ = ("body_timeout", "clock", "deadline")

    def __init__(self, options: ProxyOptions, clock: Callable[[], float]) -> None:
        # ``clock`` is anyio's (the loop's own time on asyncio, without
        # anyio's look-up of the running library).
        self.clock = clock
        self.body_timeout = options.body_timeout
        self.deadline = math.inf
        if options.deadline is not None:
            self.deadline = clock() + options.deadline

    def next_chunk(self) -> float:
        """When the wait for the client's next body chunk must end."""
        if self.body_timeout is None:
            return self.deadline
        return min(self.deadline, self.clock() + self.body_timeout)


class _BodyStalled(Exception):
    """The client's body stopped coming (``body_timeout``) or ran past the ``deadline``."""


class _RequestBody:
    """The request body, read from ``receive()`` as httpx asks for it."""

    def __init__(
        self,
        first: bytes,
        receive: Receive,
        state: DisconnectState,
        watch: _Watch,
        limits: _Limits,
    ) -> None:
        self.first: bytes | None = first
        self.receive = receive
        self.state = state
        self.watch = watch
        self.limits = limits
        self.done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.first:
            first, self.first = self.first, None
            return first
        while not self.done:
            with cancel_scope(self.watch.loop, self.limits.next_chunk()) as waiting:
                message = await self.receive()
            if waiting.cancelled_caught:
                raise _BodyStalled
            if message["type"] == "http.disconnect":
                self.state.disconnected = True
                raise ClientDisconnect
            if message["type"] == "http.request":
                if not message.get("more_body", False):
                    self.done = True
                    self.watch.start()
                chunk: bytes = message.get("body", b"")
                if chunk:
                    return chunk
        raise StopAsyncIteration


async def _exchange(
    send_request: Callable[[], Awaitable[_Answer]],
    send: Send,
    state: DisconnectState,
    watch: _Watch,
    limits: _Limits,
    content: bytes | _RequestBody,
) -> None:
    try:
        with cancel_scope(watch.loop, limits.deadline) as waiting:
            answer = await send_request()
        if waiting.cancelled_caught:
            # Cancelled inside the transport, which closed the connection.
            if isinstance(content, _RequestBody) and not content.done:
                raise _BodyStalled
            raise httpx.ReadTimeout("the upstream did not answer before the deadline")
    except _BodyStalled:
        await _answer(send, 408, _STALLED)
        return
    except httpx.LocalProtocolError:
        # The request could not be written as its headers framed it (a body
        # longer or shorter than its Content-Length, a header h11 refuses).
        await _answer(
            send, 400, "Bad Request: the request cannot be forwarded as framed", close=True
        )
        return
    except httpx.PoolTimeout:
        await _answer(send, 503, "Service Unavailable: no upstream connection free")
        return
    except httpx.TimeoutException:
        await _answer(send, 504, "Gateway Timeout: the upstream did not answer in time")
        return
    except (httpx.TransportError, httpx.InvalidURL):
        await _answer(send, 502, "Bad Gateway: the upstream could not be reached")
        return
    except ClientDisconnect:
        return
    # The upstream answered before reading the whole body, if it did not.
    watch.start()
    # The transport's body knows when its end is already in: the last chunk
    # then goes with ``more_body: False``, one ``send`` fewer.
    body = answer.body
    try:
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": drop_hop_by_hop(answer.headers),
            }
        )
        ended = False
        async for chunk in answer.chunks:
            if chunk:
                ended = body is not None and body.complete()
                await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except httpx.TransportError:
        return  # left incomplete on purpose: see the module docstring
    except OSError:
        state.disconnected = True  # ASGI 2.4: send raises OSError once the client is gone
    finally:
        await answer.aclose()


async def _answer(send: Send, status: int, text: str, *, close: bool = False) -> None:
    body = text.encode("ascii")
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
        ],
    }
    if close or status == 408:
        # The rest of the body will not be read, or its framing is in doubt:
        # the connection cannot carry another request (RFC 9110 §15.5.9,
        # RFC 9112 §6.3 item 3).
        start["headers"].append((b"connection", b"close"))
    try:
        await send(start)
        await send({"type": "http.response.body", "body": body})
    except OSError:
        pass


__all__ = ["forward_http"]
