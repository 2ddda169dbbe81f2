"""Class-based endpoints: ``HTTPEndpoint`` and ``WebSocketEndpoint``.

A subclass is an ASGI app: ``route("/items", Items)`` runs
``await Items(scope, receive, send)`` for each request, so an instance lives
for one request (or one WebSocket connection) and may keep state on ``self``.

``HTTPEndpoint`` dispatches by HTTP verb to a method of the same name in
lower case — ``get``, ``head``, ``post``, ``put``, ``patch``, ``delete``,
``options``, ``query`` — found once, when the subclass is defined.  Only those verbs are
dispatched: the request method is never used to look up an attribute, so
``FOO /items`` cannot reach ``Items.foo`` or ``Items.__init__`` (Starlette's
2026 advisory).  HEAD uses ``get`` when there is no ``head``.  Any other
method answers 405 with ``Allow`` (RFC 9110 §15.5.6).

``WebSocketEndpoint`` calls ``on_connect`` (by default: accept), then
``on_receive`` for each message decoded per ``encoding``, then
``on_disconnect`` with the close code.  A message that does not fit the
encoding closes the connection with 1003 (RFC 6455 §7.4.1).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Generator
from typing import Any, ClassVar, Literal

from asgikit.exceptions import HTTPException, WebSocketDisconnect
from asgikit.routes import deny_websocket, method_not_allowed, run_request_handler
from asgikit.types import Message, Receive, Scope, Send
from asgikit.websockets import WebSocket, WebSocketState

# The verbs dispatched, and the method each one calls (RFC 9110 §9.3, minus
# CONNECT and TRACE, which an application has no business answering; PATCH,
# RFC 5789; QUERY, the safe method with a body of draft-ietf-httpbis-safe-method-w-body).
_VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY")

# RFC 6455 §7.4.1.
_UNSUPPORTED_DATA = 1003
_INTERNAL_ERROR = 1011


class HTTPEndpoint:
    """Subclass it and define ``async def get(self, request)`` (``post``, ...).

    Each method takes the :class:`~asgikit.requests.Request` and returns a
    response; a plain ``def`` runs in a worker thread.  An ``HTTPException``
    becomes its response.  ``scope``, ``receive`` and ``send`` are on ``self``.
    """

    # verb -> (method name, is a coroutine function); built per subclass.
    _handlers: ClassVar[dict[str, tuple[str, bool]]] = {}
    _allow: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, tuple[str, bool]] = {}
        for verb in _VERBS:
            name = verb.lower()
            method = getattr(cls, name, None)
            if callable(method):
                handlers[verb] = (name, inspect.iscoroutinefunction(method))
        if "HEAD" not in handlers and "GET" in handlers:
            handlers["HEAD"] = handlers["GET"]
        cls._handlers = handlers
        cls._allow = frozenset(handlers)

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"{type(self).__name__} serves 'http' scopes, not {scope['type']!r}")
        self.scope = scope
        self.receive = receive
        self.send = send

    def __await__(self) -> Generator[Any, None, None]:
        return self.dispatch().__await__()

    async def dispatch(self) -> None:
        """Run the method for the request's verb, or answer 405."""
        scope, receive, send = self.scope, self.receive, self.send
        found = self._handlers.get(scope["method"])
        if found is None:
            await method_not_allowed(scope, receive, send, self._allow)
            return
        name, is_async = found
        await run_request_handler(getattr(self, name), is_async, scope, receive, send)


class WebSocketEndpoint:
    """Subclass it and override ``on_connect``, ``on_receive``, ``on_disconnect``.

    ``encoding`` says what ``on_receive`` gets: ``"text"`` (a ``str``),
    ``"bytes"``, ``"json"`` (the decoded value, from a text or binary
    message) or ``None`` (whichever of ``str`` or ``bytes`` was sent).
    """

    encoding: ClassVar[Literal["text", "bytes", "json"] | None] = None

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError(
                f"{type(self).__name__} serves 'websocket' scopes, not {scope['type']!r}"
            )
        self.scope = scope
        self.receive = receive
        self.send = send

    def __await__(self) -> Generator[Any, None, None]:
        return self.dispatch().__await__()

    async def dispatch(self) -> None:
        """Connect, then pass each message to ``on_receive`` until the connection ends.

        ``on_disconnect`` runs once the connection was accepted, whatever ends
        it: the client (its close code, also when a send finds it gone), a bad
        message (1003), or an exception (1011, and the exception propagates).
        """
        websocket = WebSocket(self.scope, self.receive, self.send)
        try:
            await self.on_connect(websocket)
        except HTTPException as exc:
            if websocket.application_state is not WebSocketState.CONNECTING:
                raise
            await deny_websocket(self.scope, self.receive, self.send, exc.status_code, exc.detail)
            return
        if websocket.application_state is not WebSocketState.CONNECTED:
            return  # on_connect refused the connection
        close_code = 1000
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    close_code = int(message.get("code") or 1005)
                    break
                ok, data = self._decode(message)
                if not ok:
                    close_code = _UNSUPPORTED_DATA
                    await websocket.close(_UNSUPPORTED_DATA, data)
                    break
                await self.on_receive(websocket, data)
        except WebSocketDisconnect as exc:
            # A send found the client gone: the connection is over, not broken.
            close_code = exc.code
        except Exception:
            close_code = _INTERNAL_ERROR
            raise
        finally:
            await self.on_disconnect(websocket, close_code)

    def _decode(self, message: Message) -> tuple[bool, Any]:
        """``(True, data)``, or ``(False, reason)`` when the message does not fit."""
        text = message.get("text")
        data = message.get("bytes")
        encoding = self.encoding
        if encoding == "text":
            return (True, text) if text is not None else (False, "expected a text message")
        if encoding == "bytes":
            return (True, data) if data is not None else (False, "expected a binary message")
        if encoding == "json":
            payload = text if text is not None else data
            if payload is None:
                return False, "expected a JSON message"
            try:
                return True, json.loads(payload)
            except (ValueError, RecursionError):
                # UnicodeDecodeError is a ValueError too.
                return False, "malformed JSON"
        return True, text if text is not None else data

    async def on_connect(self, websocket: WebSocket) -> None:
        """Called first; the default accepts.  Close here to refuse the connection."""
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        """Called with each message, decoded per ``encoding``."""

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        """Called once the connection is over, with its close code."""


__all__ = ["HTTPEndpoint", "WebSocketEndpoint"]
