"""Forward a WebSocket session to the upstream, message by message (RFC 6455).

The upstream side speaks through the ``websockets`` library's sans-I/O
``ClientProtocol`` over an anyio TCP stream, so it runs on asyncio and trio
alike.  The client is accepted only once the upstream has accepted: the
client's subprotocols and end-to-end headers (cookies, ``Authorization``,
``Origin``...) go up, the chosen subprotocol and the upstream's extra
response headers come back.  An upstream that refuses is refused in turn
(``deny_websocket``, with the upstream's 4xx status, else ``502``), one
that cannot be reached is a ``502``, one too slow to answer a ``504``.

Then messages flow both ways until one side closes; the close code and
reason are passed on.  An upstream that breaks the protocol or goes away
without a closing handshake is reported to the client as ``1014`` (Bad
Gateway, RFC 6455 §7.4 / IANA registry).  Pings are answered here and not
relayed (ASGI has no ping message).  Extensions (compression) are not
negotiated with the upstream: each hop negotiates its own.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI

from asgikit.proxy._config import ProxyOptions, UnsafeTarget
from asgikit.proxy._headers import (
    RefusedRequest,
    check_request_framing,
    drop_hop_by_hop,
    upstream_request_headers,
)
from asgikit.routes import deny_websocket
from asgikit.types import Message, Receive, Scope, Send

# Handshake fields each hop makes for itself, never relayed (RFC 6455 §4).
_HANDSHAKE = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    }
)
# The server writing the client's handshake response adds its own.
_ACCEPT_DROP = _HANDSHAKE | {b"date", b"server", b"content-length"}
_BAD_GATEWAY = 1014
# How long the upstream gets to answer our closing frame (RFC 6455 §7.1.1).
_CLOSE_TIMEOUT = 5.0
# Close codes that may not be sent in a close frame (RFC 6455 §7.4.1).
_UNSENDABLE = frozenset({1004, 1005, 1006, 1015})


async def forward_websocket(
    scope: Scope, receive: Receive, send: Send, options: ProxyOptions
) -> None:
    """Open the session upstream, accept the client, then relay until either side closes."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    upstream = options.upstream
    try:
        check_request_framing(scope.get("headers", ()))
        target = options.target(scope)
    except (RefusedRequest, UnsafeTarget):
        await deny_websocket(scope, receive, send, 400, "Bad Request")
        return
    path, _, query = target.partition("?")
    secure = upstream.scheme == "https"
    uri = WebSocketURI(secure, upstream.host, upstream.port, path, query)
    subprotocols = [Subprotocol(p) for p in scope.get("subprotocols", ())]
    protocol = ClientProtocol(
        uri, subprotocols=subprotocols or None, max_size=options.websocket_max_size
    )
    request = protocol.connect()
    del request.headers["Host"]
    for name, value in upstream_request_headers(
        scope,
        upstream.host_header,
        preserve_host=options.preserve_host,
        add_forwarded=options.add_forwarded,
        extra_drop=_HANDSHAKE,
    ):
        request.headers[name.decode("latin-1")] = value.decode("latin-1")
    protocol.send_request(request)

    try:
        with anyio.fail_after(options.connect_timeout):
            stream: anyio.abc.ByteStream
            if secure:
                context = _tls_context(options.verify)
                stream = await anyio.connect_tcp(upstream.host, upstream.port, ssl_context=context)
            else:
                stream = await anyio.connect_tcp(upstream.host, upstream.port)
    except TimeoutError:
        await deny_websocket(scope, receive, send, 504, "Gateway Timeout")
        return
    except OSError:
        await deny_websocket(scope, receive, send, 502, "Bad Gateway")
        return
    session = _Session(protocol, stream, send)
    try:
        await session.run(scope, receive, options.timeout)
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


@functools.lru_cache(maxsize=8)
def _tls_context(verify: Any) -> ssl.SSLContext:
    # ``verify`` as httpx reads it: a context, a CA bundle (file or
    # directory), ``False`` for none, ``True`` for the default trust store.
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


async def _then_cancel(stop: anyio.CancelScope, work: Callable[[], Awaitable[None]]) -> None:
    try:
        await work()
    finally:
        stop.cancel()


@dataclass
class _Session:
    protocol: ClientProtocol
    stream: anyio.abc.ByteStream
    send: Send
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    client_gone: bool = False
    events: list[object] = field(default_factory=list)

    async def flush(self) -> None:
        async with self.lock:
            try:
                for data in self.protocol.data_to_send():
                    if data:
                        await self.stream.send(data)
                    else:
                        await self.stream.send_eof()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                # The upstream is gone; the reading pump sees the end of the
                # stream and tells the client (1014).
                pass

    async def read(self) -> bool:
        """Read from the upstream into the protocol; ``False`` at the end of the stream."""
        try:
            data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            self.protocol.receive_eof()
            return False
        self.protocol.receive_data(data)
        return True

    async def run(self, scope: Scope, receive: Receive, timeout: float | None) -> None:
        try:
            with anyio.fail_after(timeout):
                response = await self.handshake()
        except TimeoutError:
            await deny_websocket(scope, receive, self.send, 504, "Gateway Timeout")
            return
        except OSError:
            await deny_websocket(scope, receive, self.send, 502, "Bad Gateway")
            return
        if response is None or self.protocol.handshake_exc is not None:
            status = 502
            if response is not None and 400 <= response.status_code < 500:
                status = response.status_code
            await deny_websocket(
                scope, receive, self.send, status, "Upstream refused the WebSocket"
            )
            return
        headers = drop_hop_by_hop(
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.raw_items()],
            _ACCEPT_DROP,
        )
        try:
            await self.send(
                {
                    "type": "websocket.accept",
                    "subprotocol": self.protocol.subprotocol,
                    "headers": headers,
                }
            )
        except OSError:
            return
        # Two pumps; whichever ends first ends the session.
        async with anyio.create_task_group() as group:
            stop = group.cancel_scope
            group.start_soon(_then_cancel, stop, self.upstream_to_client)
            group.start_soon(
                _then_cancel,
                stop,
                functools.partial(self.client_to_upstream, receive, stop, timeout),
            )

    async def handshake(self) -> Response | None:
        await self.flush()
        response: Response | None = None
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Response):
                    response = event
                else:
                    self.events.append(event)  # frames that came with the handshake
            if response is not None or self.protocol.handshake_exc is not None:
                return response
            if not await self.read():
                return None

    async def client_to_upstream(
        self, receive: Receive, scope: anyio.CancelScope, timeout: float | None
    ) -> None:
        protocol = self.protocol
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if protocol.state is not State.OPEN:
                    continue
                text = message.get("text")
                if text is not None:
                    protocol.send_text(text.encode("utf-8"))
                else:
                    protocol.send_binary(message.get("bytes") or b"")
                await self.flush()
            elif kind == "websocket.disconnect":
                self.client_gone = True
                if protocol.state is State.OPEN:
                    code: int = message.get("code", 1005)
                    reason: str = message.get("reason") or ""
                    if code in _UNSENDABLE or not 1000 <= code < 5000:
                        protocol.send_close()
                    else:
                        protocol.send_close(code, reason)
                    await self.flush()
                    # Wait (briefly) for the upstream's closing frame, read by the other pump.
                    wait = _CLOSE_TIMEOUT if timeout is None else min(timeout, _CLOSE_TIMEOUT)
                    scope.deadline = anyio.current_time() + wait
                    await anyio.sleep_forever()
                return

    async def upstream_to_client(self) -> None:
        protocol = self.protocol
        parts: list[bytes] = []
        text = False
        while True:
            events, self.events = self.events + protocol.events_received(), []
            for event in events:
                assert isinstance(event, Frame)
                opcode = event.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    text = opcode is Opcode.TEXT
                    parts = [bytes(event.data)]
                elif opcode is Opcode.CONT:
                    parts.append(bytes(event.data))
                elif opcode is Opcode.CLOSE:
                    await self.flush()  # the protocol's echo of the close frame
                    received = protocol.close_rcvd
                    code = 1000 if received is None or received.code == 1005 else received.code
                    await self.close_client(code, received.reason if received else "")
                    return
                else:
                    continue  # ping (answered by the protocol) or pong
                if event.fin:
                    data, parts = b"".join(parts), []
                    if not await self.relay(data, text):
                        return
            await self.flush()
            if (
                protocol.state is not State.OPEN
                and protocol.close_rcvd is None
                and not self.client_gone
            ):
                # The protocol failed the connection (bad frame, message too big).
                await self.close_client(_BAD_GATEWAY, "")
                return
            if not await self.read():
                if not self.client_gone:
                    await self.close_client(_BAD_GATEWAY, "")
                return

    async def relay(self, data: bytes, text: bool) -> bool:
        if self.client_gone:
            return True
        message: Message = {"type": "websocket.send"}
        if text:
            try:
                message["text"] = data.decode("utf-8")
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8")  # RFC 6455 §8.1
                await self.flush()
                await self.close_client(_BAD_GATEWAY, "")
                return False
        else:
            message["bytes"] = data
        try:
            await self.send(message)
        except OSError:
            self.client_gone = True
            return False
        return True

    async def close_client(self, code: int, reason: str) -> None:
        if self.client_gone:
            return
        self.client_gone = True
        # Shielded: the client pump ends as soon as the server reports the
        # close, and must not cancel the close message itself.
        with anyio.CancelScope(shield=True):
            try:
                await self.send({"type": "websocket.close", "code": code, "reason": reason})
            except OSError:
                pass


__all__ = ["forward_websocket"]
