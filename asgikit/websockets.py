"""``WebSocket``: one WebSocket connection, over the ASGI WebSocket spec.

The state machine follows the spec's message order: ``websocket.connect``,
then ``accept`` (or a refusal: a close, which servers answer with HTTP 403,
or a real HTTP response through the ``websocket.http.response`` extension),
then messages both ways, then a close from either side.

Each side's state is tracked separately.  Receiving after the peer left
raises ``WebSocketDisconnect`` with its code (the ``iter_*`` loops simply
end); sending after the app closed is a ``RuntimeError`` that says so;
sending after the peer left raises ``WebSocketDisconnect``, as does a
server's ``OSError`` on send (ASGI 2.4).  ``close()`` on a connection that is
already over does nothing, so it is safe in a ``finally``.

Server shutdown: when the server receives SIGINT or SIGTERM, a ``receive``
that is waiting on an open connection closes it with 1001 ("going away",
RFC 6455 §7.4.1: a server going down) and returns a disconnect, so the
handler's loop ends and the server can stop (uvicorn closes sockets itself
at shutdown, hypercorn would wait for its graceful timeout).  How the
signal is seen, and where it cannot be: ``asgikit._shutdown``.  A handler
that waits on something else (a queue, a broadcast) and never on
``receive`` is not woken; the server's graceful timeout bounds it.

Frames, masking, ping/pong and message size limits are the server's job and
are not seen here.

Deliberately unlike Starlette's ``WebSocket``: a second ``close()`` does
nothing instead of raising; a refusal is ``deny(status, body, headers)``
rather than ``send_denial_response(response)`` (raw
``websocket.http.response.*`` messages cover the rest), and without the
server's extension it closes (HTTP 403) instead of raising;
``receive_json`` takes a text or a binary frame whatever its ``mode``.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

import anyio

from asgikit._shutdown import unless_shutdown, watch_signals
from asgikit.datastructures import validate_header
from asgikit.exceptions import WebSocketDisconnect
from asgikit.requests import HTTPConnection
from asgikit.types import Message, Receive, Scope, Send

_T = TypeVar("_T")
HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None

# RFC 6455 §7.4.1: 1006 is never sent on the wire; it reports a lost connection.
_ABNORMAL_CLOSURE = 1006
# RFC 6455 §7.4.1: 1001, "an endpoint is going away, such as a server going down".
_GOING_AWAY = 1001
_SHUTDOWN_REASON = "server shutting down"


class WebSocketState(enum.Enum):
    """Where one side of the connection is in its life."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


def _raw_headers(headers: HeadersArg) -> list[tuple[bytes, bytes]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    raw: list[tuple[bytes, bytes]] = []
    for key, value in items:
        pair = (key.lower().encode("latin-1"), value.encode("latin-1"))
        validate_header(*pair)
        raw.append(pair)
    return raw


def _check_mode(mode: str) -> None:
    # An explicit option is never ignored: a typo must not mean "text".
    if mode not in ("text", "binary"):
        raise ValueError(f"mode is 'text' or 'binary', not {mode!r}")


class WrongMessageType(RuntimeError):
    """A text message came where a binary one was expected, or the reverse."""


class InvalidText(ValueError):
    """A text message that is not valid Unicode (RFC 6455 §8.1: text is UTF-8)."""


class _Messages(AsyncIterator[_T]):
    # A plain iterator, not an async generator: leaving the loop early (a
    # ``return`` inside ``async for``) leaves nothing to finalize.
    __slots__ = ("_next", "_websocket")

    def __init__(self, websocket: WebSocket, next_message: Callable[[], Awaitable[_T]]) -> None:
        self._websocket = websocket
        self._next = next_message

    async def __anext__(self) -> _T:
        try:
            return await self._next()
        except WebSocketDisconnect:
            raise StopAsyncIteration from None
        except WrongMessageType:
            # RFC 6455 §7.4.1: 1003, a type of data the endpoint cannot accept.
            await self._websocket.close(1003, "unsupported message type")
            raise StopAsyncIteration from None
        except ValueError as error:
            # RFC 6455 §7.4.1: 1007, data not consistent with the message's type.
            reason = "invalid text" if isinstance(error, InvalidText) else "malformed JSON"
            await self._websocket.close(1007, reason)
            raise StopAsyncIteration from None


class WebSocket(HTTPConnection):
    """A WebSocket connection: ``WebSocket(scope, receive, send)``.

    ``client_state`` and ``application_state`` say where each side is
    (:class:`WebSocketState`).  The scope's views (``url``, ``headers``,
    ``query_params``, ``path_params``, ``cookies``, ``url_for``...) are those
    of an HTTP request.
    """

    #: Close with 1001 when the server shuts down while ``receive`` waits.
    close_on_shutdown = True

    __slots__ = ("_receive", "_send", "application_state", "client_state", "close_code")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError("WebSocket needs a 'websocket' scope")
        super().__init__(scope)
        self._receive = receive
        self._send = send
        self.client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING
        #: The code the peer closed with, once it has.
        self.close_code: int | None = None

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        protocols: list[str] = list(self.scope.get("subprotocols", ()))
        return protocols

    @property
    def can_deny_with_response(self) -> bool:
        """Whether the server lets a refusal be a full HTTP response."""
        return "websocket.http.response" in (self.scope.get("extensions") or {})

    # -- raw messages -------------------------------------------------------

    async def receive(self) -> Message:
        """The next raw ASGI message from the client."""
        if self.client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError("cannot receive: the client has already disconnected")
        if self.client_state is WebSocketState.CONNECTED and self.close_on_shutdown:
            running, received = await unless_shutdown(self._receive)
            if not running:
                return await self._close_for_shutdown()
            assert received is not None
            message = received
        else:
            if self.close_on_shutdown:
                watch_signals()  # from the handshake on, a shutdown is seen
            message = await self._receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            self.client_state = WebSocketState.DISCONNECTED
            self.close_code = message.get("code") or 1005
        elif self.client_state is WebSocketState.CONNECTING:
            if kind != "websocket.connect":
                raise RuntimeError(f"expected websocket.connect, got {kind!r}")
            self.client_state = WebSocketState.CONNECTED
        elif kind != "websocket.receive":
            raise RuntimeError(f"unexpected message {kind!r}")
        return message

    async def _close_for_shutdown(self) -> Message:
        self.client_state = WebSocketState.DISCONNECTED
        self.close_code = _GOING_AWAY
        if self.application_state in (WebSocketState.CONNECTING, WebSocketState.CONNECTED):
            # Not accepted yet: the close refuses the handshake instead.
            self.application_state = WebSocketState.DISCONNECTED
            # Bounded: a client that stopped reading must not hold the shutdown.
            with anyio.move_on_after(1), contextlib.suppress(OSError):
                await self._send(
                    {"type": "websocket.close", "code": _GOING_AWAY, "reason": _SHUTDOWN_REASON}
                )
        return {"type": "websocket.disconnect", "code": _GOING_AWAY, "reason": _SHUTDOWN_REASON}

    async def send(self, message: Message) -> None:
        """Send a raw ASGI message to the client (the order is checked)."""
        state = self.application_state
        kind = message["type"]
        if state is WebSocketState.DISCONNECTED:
            raise RuntimeError(f"cannot send {kind!r}: the WebSocket was already closed")
        if self.client_state is WebSocketState.DISCONNECTED and state is WebSocketState.CONNECTED:
            self.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(self.close_code or _ABNORMAL_CLOSURE)
        if state is WebSocketState.CONNECTING:
            if kind == "websocket.accept":
                self.application_state = WebSocketState.CONNECTED
            elif kind == "websocket.close":
                self.application_state = WebSocketState.DISCONNECTED
            elif kind == "websocket.http.response.start":
                self.application_state = WebSocketState.RESPONSE
            else:
                raise RuntimeError(f"accept, close or deny the WebSocket first, not {kind!r}")
        elif state is WebSocketState.RESPONSE:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"expected websocket.http.response.body, not {kind!r}")
            if not message.get("more_body", False):
                self.application_state = WebSocketState.DISCONNECTED
        elif kind == "websocket.close":
            self.application_state = WebSocketState.DISCONNECTED
        elif kind != "websocket.send":
            raise RuntimeError(f"unexpected message {kind!r} on an open WebSocket")
        try:
            await self._send(message)
        except OSError:
            # ASGI 2.4: a send on a connection that is gone raises an OSError.
            self.application_state = WebSocketState.DISCONNECTED
            self.client_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(self.close_code or _ABNORMAL_CLOSURE) from None

    async def _await_connect(self) -> None:
        if self.client_state is WebSocketState.CONNECTING:
            await self.receive()
        if self.client_state is WebSocketState.DISCONNECTED:
            raise WebSocketDisconnect(self.close_code or _ABNORMAL_CLOSURE)

    # -- handshake ----------------------------------------------------------

    async def accept(self, subprotocol: str | None = None, headers: HeadersArg = None) -> None:
        """Accept the connection, with ``subprotocol`` (one the client offered).

        ``headers`` are added to the handshake response.  RFC 6455 §4.1 has a
        client fail the connection on a subprotocol it did not offer, so that
        is a ``ValueError`` here rather than a broken connection there.
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(f"the client did not offer subprotocol {subprotocol!r}")
        raw = _raw_headers(headers)
        if any(name == b"sec-websocket-protocol" for name, _ in raw):
            raise ValueError("choose the subprotocol with accept(subprotocol=...)")
        await self._await_connect()
        await self.send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": raw})

    async def deny(
        self, status_code: int = 403, body: bytes | str = b"", headers: HeadersArg = None
    ) -> None:
        """Refuse the handshake with an HTTP response, where the server allows it.

        Without the ``websocket.http.response`` extension the refusal is a
        close, which the server answers with HTTP 403 (``status_code``,
        ``body`` and ``headers`` are then lost).
        """
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError("deny() refuses a handshake: the WebSocket was already answered")
        if not 100 <= status_code <= 599:
            raise ValueError(f"not an HTTP status code: {status_code}")
        content = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        raw = _raw_headers(headers)
        names = {name for name, _ in raw}
        if b"content-type" not in names and content:
            raw.append((b"content-type", b"text/plain; charset=utf-8"))
        if b"content-length" not in names:
            raw.append((b"content-length", str(len(content)).encode()))
        await self._await_connect()
        if not self.can_deny_with_response:
            await self.send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        await self.send(
            {"type": "websocket.http.response.start", "status": status_code, "headers": raw}
        )
        await self.send({"type": "websocket.http.response.body", "body": content})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection; before ``accept`` this refuses it (HTTP 403).

        Does nothing when the connection is already over (closed by the app,
        or the client gone), so it can sit in a ``finally``.
        """
        if self.application_state in (WebSocketState.DISCONNECTED, WebSocketState.RESPONSE):
            return
        if self.client_state is WebSocketState.DISCONNECTED:
            self.application_state = WebSocketState.DISCONNECTED
            return
        if len((reason or "").encode("utf-8")) > 123:
            # RFC 6455 §5.5: a control frame's payload is at most 125 bytes.
            raise ValueError("a close reason is at most 123 bytes of UTF-8")
        if self.application_state is WebSocketState.CONNECTING:
            await self._await_connect()
        try:
            await self.send({"type": "websocket.close", "code": code, "reason": reason or ""})
        except WebSocketDisconnect:
            pass

    # -- data ---------------------------------------------------------------

    async def _receive_data(self) -> Message:
        if self.application_state is WebSocketState.CONNECTING:
            raise RuntimeError("accept the WebSocket before receiving messages")
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(self.close_code or 1005, message.get("reason"))
        return message

    async def receive_text(self) -> str:
        """The next text message; a binary message is a ``RuntimeError``.

        Text with no UTF-8 form (a lone surrogate, which no conforming server
        delivers) is :class:`InvalidText`: echoed, no server could send it.
        """
        message = await self._receive_data()
        text = message.get("text")
        if text is None:
            raise WrongMessageType("expected a text message, got a binary one")
        text = str(text)
        if not text.isascii():  # isascii() is a flag check; only other text is encoded
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidText("the text message has no UTF-8 form") from None
        return text

    async def receive_bytes(self) -> bytes:
        """The next binary message; a text message is a ``RuntimeError``."""
        message = await self._receive_data()
        data = message.get("bytes")
        if data is None:
            raise WrongMessageType("expected a binary message, got a text one")
        return bytes(data)

    async def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        """The next message decoded as JSON (a text or a binary frame).

        Malformed JSON raises ``ValueError`` (``json.JSONDecodeError``).
        Either frame type is accepted whatever ``mode`` says (a client's
        choice of frame is no reason to fail); ``mode`` is still checked.
        """
        _check_mode(mode)
        message = await self._receive_data()
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if data is None:
            raise RuntimeError("the WebSocket message has neither text nor bytes")
        try:
            return json.loads(data)
        except RecursionError:
            # Deep nesting ("[[[[...") exhausts the decoder's stack: still malformed input.
            raise ValueError("malformed JSON: nested too deeply") from None

    def iter_text(self) -> AsyncIterator[str]:
        """Text messages until the client disconnects (then the loop just ends).

        A binary message closes the connection with 1003 and ends the loop.
        """
        return _Messages(self, self.receive_text)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary messages until the client disconnects (a text one: close 1003)."""
        return _Messages(self, self.receive_bytes)

    def iter_json(self) -> AsyncIterator[Any]:
        """JSON messages until the client disconnects (malformed JSON: close 1007)."""
        return _Messages(self, self.receive_json)

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self.send({"type": "websocket.send", "bytes": bytes(data)})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Send ``data`` as JSON in a text (default) or binary message."""
        _check_mode(mode)
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (say, echoed from a client's "\ud800") has no UTF-8
            # form, and the server could not send it; escaped it is the same JSON.
            text = json.dumps(data, separators=(",", ":"))
            encoded = text.encode("ascii")
        if mode == "binary":
            await self.send_bytes(encoded)
        else:
            await self.send_text(text)


__all__ = ["HeadersArg", "InvalidText", "WebSocket", "WebSocketState", "WrongMessageType"]
