"""The WebSocket half of :mod:`asgikit.testing`: one connection driven in-process.

``_WebSocketExchange`` plays the server's side of the ASGI ``websocket``
protocol (ASGI spec, "WebSocket" and the ``websocket.http.response``
extension) for one connection: it checks the order of the app's messages the
way a server would, queues them for the test, and feeds the test's messages to
the app. The public sessions wrap it: ``WebSocketTestSession`` for synchronous
tests (each call crosses into the event loop through a blocking portal) and
``AsyncWebSocketTestSession`` for async ones.

There is no wire here: no frames, no masking, no ping/pong, no size limits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import anyio
import anyio.from_thread

from asgikit._httpx import httpx
from asgikit.exceptions import WebSocketDisconnect
from asgikit.types import ASGIApp, Message, Scope

#: Starts a task in the client's task group (``_AppRunner.spawn``).
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]

# RFC 6455 section 7.4.1: 1006 means no close frame was received.
_ABNORMAL_CLOSURE = 1006


class ConnectionClosed(OSError):
    """Raised by ``send()`` once the test client has left.

    ASGI spec 2.4: sending on a closed connection raises a server-specific
    subclass of ``OSError``.
    """


class WebSocketDenialResponse(Exception):
    """The app refused the WebSocket handshake with an HTTP response.

    Sent through the ``websocket.http.response`` extension: ``status_code``,
    ``headers`` and ``content`` hold the response the client would have seen.
    """

    def __init__(self, status_code: int, headers: httpx.Headers, content: bytes) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r})"


class _WebSocketExchange:
    """The server's side of one ASGI WebSocket connection."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        *,
        raise_server_exceptions: bool,
        denial_responses: bool,
    ) -> None:
        self._app = app
        self._scope = scope
        self._raise = raise_server_exceptions
        self._denial_responses = denial_responses
        self._to_app, self._app_inbox = anyio.create_memory_object_stream[Message](math.inf)
        self._from_app, self._test_inbox = anyio.create_memory_object_stream[Message](math.inf)
        self._to_app.send_nowait({"type": "websocket.connect"})
        self._state: Literal["connecting", "open", "denying", "closed"] = "connecting"
        self._client_closed = False
        self._close_message: Message | None = None
        self._finished = anyio.Event()
        self._error: Exception | None = None
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] = []

    # The app's side.

    async def _run(self) -> None:
        try:
            await self._app(self._scope, self._app_inbox.receive, self._app_send)
        except Exception as exc:
            # Reacting to a closed connection by raising is normal, not a bug.
            over = self._client_closed or self._state == "closed"
            if not (over and isinstance(exc, (ConnectionClosed, WebSocketDisconnect))):
                self._error = exc
        finally:
            self._finished.set()
            self._from_app.close()
            self._app_inbox.close()

    async def _app_send(self, message: Message) -> None:
        if self._client_closed:
            raise ConnectionClosed("the test client closed the WebSocket")
        kind = message["type"]
        state = self._state
        if state == "connecting" and kind == "websocket.accept":
            self._state = "open"
        elif state == "connecting" and kind == "websocket.http.response.start":
            if not self._denial_responses:
                raise RuntimeError("the websocket.http.response extension is not enabled")
            self._state = "denying"
        elif state == "denying" and kind == "websocket.http.response.body":
            if not message.get("more_body", False):
                self._closed_by_app(_ABNORMAL_CLOSURE)
        elif state in ("connecting", "open") and kind == "websocket.close":
            self._closed_by_app(message.get("code") or 1000)
        elif state == "open" and kind == "websocket.send":
            if (message.get("bytes") is None) == (message.get("text") is None):
                raise RuntimeError("websocket.send needs exactly one of 'bytes' and 'text'")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in WebSocket state {state!r}")
        await self._from_app.send(message)

    def _closed_by_app(self, code: int) -> None:
        self._state = "closed"
        # What a server reports to the app once the connection is gone.
        self._deliver({"type": "websocket.disconnect", "code": code, "reason": ""})

    # The test's side.

    async def connect(self, spawn: Spawn) -> None:
        """Start the app and wait for its answer to the handshake."""
        spawn(self._run)
        try:
            await self._handshake()
        except BaseException:
            self._to_app.close()
            self._test_inbox.close()
            raise

    async def _handshake(self) -> None:
        message = await self._next_from_app()
        if message is None:
            self._raise_error()
            if self._raise:
                raise RuntimeError("the app returned without accepting or closing the WebSocket")
            raise WebSocketDenialResponse(500, httpx.Headers(), b"")
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted_subprotocol = message.get("subprotocol")
            self.extra_headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
        elif kind == "websocket.close":
            raise WebSocketDisconnect(message.get("code") or 1000, message.get("reason"))
        else:
            headers = httpx.Headers([(bytes(k), bytes(v)) for k, v in message.get("headers", ())])
            body = bytearray()
            while (part := await self._next_from_app()) is not None:
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            else:
                self._raise_error()
            raise WebSocketDenialResponse(int(message["status"]), headers, bytes(body))

    async def send(self, message: Message) -> None:
        """Queue a message for the app's ``receive()``."""
        if self._client_closed:
            raise RuntimeError("the WebSocket session is closed")
        self._deliver(message)

    def _deliver(self, message: Message) -> None:
        try:
            self._to_app.send_nowait(message)
        except anyio.BrokenResourceError:
            pass  # the app has returned; like a peer that is gone, nobody reads it

    async def receive(self) -> Message:
        """The app's next message: ``websocket.send`` or ``websocket.close``."""
        if self._close_message is not None:
            return self._close_message
        message = await self._next_from_app()
        if message is None:
            self._raise_error()
            message = {"type": "websocket.close", "code": _ABNORMAL_CLOSURE, "reason": ""}
        if message["type"] == "websocket.close":
            self._close_message = message
        return message

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Tell the app the client left, wait for it to finish, surface its error."""
        if not self._client_closed:
            if self._state != "closed":
                disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason or ""}
                self._deliver(disconnect)
            self._client_closed = True
        await self._finished.wait()
        self._to_app.close()
        self._test_inbox.close()
        self._raise_error()

    async def _next_from_app(self) -> Message | None:
        try:
            return await self._test_inbox.receive()
        except anyio.EndOfStream:
            return None

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None and self._raise:
            raise error


def _text_message(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def _bytes_message(data: bytes) -> Message:
    return {"type": "websocket.receive", "bytes": data}


def _json_message(data: Any, mode: Literal["text", "binary"]) -> Message:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return _bytes_message(text.encode()) if mode == "binary" else _text_message(text)


def _payload(message: Message, kind: Literal["text", "bytes"]) -> Any:
    if message["type"] == "websocket.close":
        raise WebSocketDisconnect(message.get("code") or 1000, message.get("reason"))
    data = message.get(kind)
    if data is None:
        other = "bytes" if kind == "text" else "text"
        raise TypeError(f"expected a {kind} message, the app sent {other}")
    return data


def _json_payload(message: Message, mode: Literal["text", "binary"]) -> Any:
    return json.loads(_payload(message, "bytes" if mode == "binary" else "text"))


class _Session:
    """What both sessions read from the handshake; the I/O differs (sync or async)."""

    _exchange: _WebSocketExchange

    @property
    def accepted_subprotocol(self) -> str | None:
        """The subprotocol the app chose, if any."""
        return self._exchange.accepted_subprotocol

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers the app added to its handshake response."""
        return self._exchange.extra_headers


class WebSocketTestSession(_Session):
    """A WebSocket connection to the app, used from synchronous test code.

    Returned by ``TestClient.websocket_connect()``. ``accepted_subprotocol``
    and ``extra_headers`` come from the app's ``websocket.accept``.
    """

    def __init__(
        self, portal: anyio.from_thread.BlockingPortal, exchange: _WebSocketExchange
    ) -> None:
        self._portal = portal
        self._exchange = exchange

    def send(self, message: Message) -> None:
        """Send a raw ASGI message to the app's ``receive()``."""
        self._portal.call(self._exchange.send, message)

    def send_text(self, data: str) -> None:
        """Send a text frame."""
        self.send(_text_message(data))

    def send_bytes(self, data: bytes) -> None:
        """Send a binary frame."""
        self.send(_bytes_message(data))

    def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Send ``data`` as JSON in a text (default) or binary frame."""
        self.send(_json_message(data, mode))

    def receive(self) -> Message:
        """The app's next raw message (``websocket.send`` or ``websocket.close``)."""
        return self._portal.call(self._exchange.receive)

    def receive_text(self) -> str:
        """The next text frame; raises ``WebSocketDisconnect`` if the app closed."""
        return str(_payload(self.receive(), "text"))

    def receive_bytes(self) -> bytes:
        """The next binary frame; raises ``WebSocketDisconnect`` if the app closed."""
        return bytes(_payload(self.receive(), "bytes"))

    def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        """The next frame parsed as JSON."""
        return _json_payload(self.receive(), mode)

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close from the client's side and wait for the app to finish."""
        self._portal.call(self._exchange.close, code, reason)


class AsyncWebSocketTestSession(_Session):
    """A WebSocket connection to the app, used from async test code.

    Returned by ``AsyncTestClient.websocket_connect()``; the same API as
    :class:`WebSocketTestSession` with every call awaited.
    """

    def __init__(self, exchange: _WebSocketExchange) -> None:
        self._exchange = exchange

    async def send(self, message: Message) -> None:
        """Send a raw ASGI message to the app's ``receive()``."""
        await self._exchange.send(message)

    async def send_text(self, data: str) -> None:
        """Send a text frame."""
        await self.send(_text_message(data))

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame."""
        await self.send(_bytes_message(data))

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Send ``data`` as JSON in a text (default) or binary frame."""
        await self.send(_json_message(data, mode))

    async def receive(self) -> Message:
        """The app's next raw message (``websocket.send`` or ``websocket.close``)."""
        return await self._exchange.receive()

    async def receive_text(self) -> str:
        """The next text frame; raises ``WebSocketDisconnect`` if the app closed."""
        return str(_payload(await self.receive(), "text"))

    async def receive_bytes(self) -> bytes:
        """The next binary frame; raises ``WebSocketDisconnect`` if the app closed."""
        return bytes(_payload(await self.receive(), "bytes"))

    async def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        """The next frame parsed as JSON."""
        return _json_payload(await self.receive(), mode)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close from the client's side and wait for the app to finish."""
        await self._exchange.close(code, reason)


def websocket_headers(
    raw: list[tuple[bytes, bytes]], subprotocols: list[str] | None
) -> list[tuple[bytes, bytes]]:
    """The request headers of an opening handshake (RFC 6455 section 4.1)."""
    headers = [(name, value) for name, value in raw if name not in (b"connection", b"upgrade")]
    headers += [
        (b"connection", b"upgrade"),
        (b"upgrade", b"websocket"),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ]
    if subprotocols:
        headers.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode("latin-1")))
    return headers


__all__ = [
    "AsyncWebSocketTestSession",
    "ConnectionClosed",
    "Spawn",
    "WebSocketDenialResponse",
    "WebSocketTestSession",
    "websocket_headers",
]
