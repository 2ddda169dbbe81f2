"""Forward one HTTP request to the upstream and stream the answer back.

Both bodies stream: the request body is handed to httpx as an async
generator fed by ``receive()``, and the response body is relayed chunk by
chunk as httpx reads it, raw (``Content-Encoding`` untouched, nothing
decompressed).  One listener task owns ``receive()`` for the whole exchange:
it feeds the request body through a channel without a buffer, so an
upload never runs ahead of the upstream, and on ``http.disconnect`` it
cancels the exchange, which closes the upstream response and returns its
connection slot to the pool.

Failures are answers: an upstream that cannot be reached is a ``502``, one
that is too slow a ``504``, a pool with no free connection in time a
``503``.  Once the response has started there is no status left to change,
so a failure then ends the exchange without completing the response; the
server closes the connection and the client sees a truncated body (never a
short body that looks whole).

Not done here: trailers, ``Via`` (RFC 9110 §7.6.3; add it with a header
layer if wanted), HTTP/2 to the upstream, retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

import anyio
import anyio.abc
import httpx

from asgikit.proxy._config import ProxyOptions
from asgikit.proxy._headers import drop_hop_by_hop, upstream_request_headers
from asgikit.requests import DisconnectState, disconnect_state
from asgikit.types import Message, Receive, Scope, Send


async def forward_http(
    scope: Scope, receive: Receive, send: Send, client: httpx.AsyncClient, options: ProxyOptions
) -> None:
    """Forward the request in ``scope`` with ``client`` and relay the response to ``send``."""
    state = disconnect_state(scope)
    if state.disconnected:
        return
    first = await receive()
    if first["type"] == "http.disconnect":
        state.disconnected = True
        return
    upstream = options.upstream
    headers = upstream_request_headers(
        scope,
        upstream.host_header,
        preserve_host=options.preserve_host,
        add_forwarded=options.add_forwarded,
    )
    try:
        url = httpx.URL(
            scheme=upstream.scheme,
            host=upstream.host,
            port=upstream.port,
            raw_path=options.target(scope).encode("ascii"),
        )
    except httpx.InvalidURL:
        await _answer(send, 400, "Bad Request: the path cannot be forwarded")
        return
    body: bytes = first.get("body", b"")
    chunks: anyio.abc.ObjectSendStream[bytes] | None = None
    content: bytes | AsyncIterator[bytes]
    if first.get("more_body", False):
        chunks, source = anyio.create_memory_object_stream[bytes](0)
        content = _stream_body(body, source)
    else:
        content = body
    # Built directly, not with ``client.build_request``, which would add the
    # client's default headers (an ``Accept-Encoding`` the client never sent
    # among them).  A body that came whole gets a Content-Length (none when
    # empty); a streamed one keeps the client's, or goes chunked without one.
    request = httpx.Request(scope["method"], url, headers=headers, content=content)
    await _run_watched(state, receive, chunks, _exchange(client, request, send, state))


async def _stream_body(
    first: bytes, source: anyio.abc.ObjectReceiveStream[bytes]
) -> AsyncIterator[bytes]:
    async with source:
        if first:
            yield first
        async for chunk in source:
            yield chunk


async def _run_watched(
    state: DisconnectState,
    receive: Receive,
    chunks: anyio.abc.ObjectSendStream[bytes] | None,
    exchange: Awaitable[None],
) -> None:
    # Like ``asgikit.streaming.run_until_disconnect``, but the listener also
    # carries the rest of the request body, since both need ``receive()``.
    error: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_listen, receive, state, chunks, group.cancel_scope)
        try:
            await exchange
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            # Raised after the group, so callers see it and not a group around it.
            error = exc
        finally:
            group.cancel_scope.cancel()
    if error is not None:
        raise error


async def _listen(
    receive: Receive,
    state: DisconnectState,
    chunks: anyio.abc.ObjectSendStream[bytes] | None,
    stop: anyio.CancelScope,
) -> None:
    state.listening = True
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "http.disconnect":
                state.disconnected = True
                stop.cancel()
                return
            if chunks is not None and kind == "http.request":
                data: bytes = message.get("body", b"")
                if data:
                    try:
                        await chunks.send(data)
                    except anyio.BrokenResourceError:
                        # The upstream answered without reading the whole
                        # body; the rest is read and dropped.
                        chunks = None
                        continue
                if not message.get("more_body", False):
                    await chunks.aclose()
                    chunks = None
    finally:
        state.listening = False
        if chunks is not None:
            await chunks.aclose()


async def _exchange(
    client: httpx.AsyncClient, request: httpx.Request, send: Send, state: DisconnectState
) -> None:
    try:
        response = await client.send(request, stream=True)
    except httpx.PoolTimeout:
        await _answer(send, 503, "Service Unavailable: no upstream connection free")
        return
    except httpx.TimeoutException:
        await _answer(send, 504, "Gateway Timeout: the upstream did not answer in time")
        return
    except (httpx.TransportError, httpx.InvalidURL):
        await _answer(send, 502, "Bad Gateway: the upstream could not be reached")
        return
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": drop_hop_by_hop(response.headers.raw),
            }
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except httpx.TransportError:
        return  # left incomplete on purpose: see the module docstring
    except OSError:
        state.disconnected = True  # ASGI 2.4: send raises OSError once the client is gone
    finally:
        with anyio.CancelScope(shield=True):
            await response.aclose()


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode("ascii")
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
        ],
    }
    try:
        await send(start)
        await send({"type": "http.response.body", "body": body})
    except OSError:
        pass


__all__ = ["forward_http"]
