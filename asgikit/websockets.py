"""``WebSocket``: one WebSocket connection, over the ASGI WebSocket spec.

The state machine follows the spec's message order: ``websocket.connect``,
then ``accept`` (or a close or a denial response), then messages both ways,
then a close from either side.  Receiving after the peer left raises
``WebSocketDisconnect`` with its code; sending after close is a
``RuntimeError``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from asgikit.exceptions import WebSocketDisconnect
from asgikit.requests import HTTPConnection
from asgikit.types import Message, Receive, Scope, Send


class WebSocketState(enum.Enum):
    """Where one side of the connection is in its life."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocket(HTTPConnection):
    """A WebSocket connection: ``WebSocket(scope, receive, send)``."""

    __slots__ = ("_receive", "_send", "application_state", "client_state")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError("WebSocket needs a 'websocket' scope")
        super().__init__(scope)
        self._receive = receive
        self._send = send
        self.client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        protocols: list[str] = list(self.scope.get("subprotocols", ()))
        return protocols

    async def receive(self) -> Message:
        """The next raw ASGI message from the client."""
        if self.client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError("cannot receive: the WebSocket is disconnected")
        message = await self._receive()
        kind = message["type"]
        if self.client_state is WebSocketState.CONNECTING:
            if kind != "websocket.connect":
                raise RuntimeError(f"expected websocket.connect, got {kind!r}")
            self.client_state = WebSocketState.CONNECTED
        elif kind == "websocket.disconnect":
            self.client_state = WebSocketState.DISCONNECTED
        elif kind != "websocket.receive":
            raise RuntimeError(f"unexpected message {kind!r}")
        return message

    async def send(self, message: Message) -> None:
        """Send a raw ASGI message to the client."""
        state = self.application_state
        if state in (WebSocketState.DISCONNECTED, WebSocketState.RESPONSE):
            raise RuntimeError("cannot send: the WebSocket is closed")
        kind = message["type"]
        if state is WebSocketState.CONNECTING:
            if kind == "websocket.accept":
                self.application_state = WebSocketState.CONNECTED
            elif kind == "websocket.close":
                self.application_state = WebSocketState.DISCONNECTED
            elif kind == "websocket.http.response.start":
                self.application_state = WebSocketState.RESPONSE
            else:
                raise RuntimeError(f"send accept or close first, not {kind!r}")
        elif kind == "websocket.close":
            self.application_state = WebSocketState.DISCONNECTED
        elif kind != "websocket.send":
            raise RuntimeError(f"unexpected message {kind!r} on an open WebSocket")
        try:
            await self._send(message)
        except OSError:
            # ASGI 2.4: send on a closed connection raises an OSError.
            self.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(1006) from None

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Accept the connection, choosing ``subprotocol`` among those offered."""
        if self.client_state is WebSocketState.CONNECTING:
            await self.receive()
        raw: list[tuple[bytes, bytes]] = []
        if headers:
            items = headers.items() if isinstance(headers, Mapping) else headers
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items]
        await self.send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": raw})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection (before ``accept``, this refuses it with HTTP 403)."""
        await self.send({"type": "websocket.close", "code": code, "reason": reason or ""})

    def _check_message(self, message: Message) -> Message:
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        return message

    async def receive_text(self) -> str:
        """The next text message; a bytes message is a ``RuntimeError``."""
        message = self._check_message(await self.receive())
        text = message.get("text")
        if text is None:
            raise RuntimeError("expected a text message, got bytes")
        return str(text)

    async def receive_bytes(self) -> bytes:
        """The next binary message; a text message is a ``RuntimeError``."""
        message = self._check_message(await self.receive())
        data = message.get("bytes")
        if data is None:
            raise RuntimeError("expected a binary message, got text")
        return bytes(data)

    async def receive_json(self, mode: str = "text") -> Any:
        """The next message decoded as JSON (from a text or a binary frame)."""
        message = self._check_message(await self.receive())
        data = message.get("text") if mode == "text" else message.get("bytes")
        if data is None:
            data = message.get("bytes") if mode == "text" else message.get("text")
        if data is None:
            raise RuntimeError("empty WebSocket message")
        return json.loads(data)

    async def iter_text(self) -> AsyncIterator[str]:
        """Text messages until the client disconnects (then the loop just ends)."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary messages until the client disconnects."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        """JSON messages until the client disconnects."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self.send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Send ``data`` as JSON in a text (default) or binary message."""
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if mode == "binary":
            await self.send_bytes(text.encode("utf-8"))
        else:
            await self.send_text(text)


__all__ = ["WebSocket", "WebSocketState"]
