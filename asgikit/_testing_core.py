"""The in-process ASGI driver behind ``asgikit.testing``.

``_AppRunner`` runs an app's lifespan; ``_HTTPExchange`` turns one httpx
request into an ASGI ``http`` scope and its messages, streaming both ways;
``_Config`` holds what a client was built with.  ``testing.py`` keeps only
the httpx transports and clients on top of these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import anyio
import anyio.abc
import anyio.from_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from asgikit._httpx import httpx
from asgikit._testing_ws import (
    ConnectionClosed,
    Spawn,
    _WebSocketExchange,
    websocket_headers,
)
from asgikit.exceptions import ClientDisconnect
from asgikit.types import ASGIApp, Message, Scope

_ASGI = {"version": "3.0", "spec_version": "2.4"}
_DEFAULT_EXTENSIONS: Mapping[str, Mapping[str, Any]] = {
    "http.response.pathsend": {},
    "http.response.trailers": {},
    "websocket.http.response": {},
}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_BODY_BUFFER = 4  # chunks the app may run ahead of the reader
_FILE_CHUNK = 64 * 1024

ReadBody = Callable[[], Awaitable[bytes | None]]
T = TypeVar("T")


class LifespanFailed(RuntimeError):
    """The app answered ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``.

    ``message`` is the message the app gave; the app's own exception, if it
    raised one, is the ``__cause__``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _AppRunner:
    """The task group app tasks run in, and the lifespan protocol around it."""

    def __init__(self, app: ASGIApp, *, lifespan: bool, raise_server_exceptions: bool) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._lifespan = lifespan
        self._raise = raise_server_exceptions
        self._tg: anyio.abc.TaskGroup | None = None
        self._supported = False
        self._error: Exception | None = None
        self._streams: tuple[
            MemoryObjectSendStream[Message] | MemoryObjectReceiveStream[Message], ...
        ] = ()

    def spawn(self, task: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``task`` until it ends or the client closes."""
        if self._tg is None:
            raise RuntimeError("the test client is not running")
        self._tg.start_soon(task)

    async def __aenter__(self) -> _AppRunner:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        if self._lifespan:
            try:
                await self._startup()
            except BaseException:
                await self._stop()
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._supported:
                await self._shutdown()
        finally:
            await self._stop()

    async def _stop(self) -> None:
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        for stream in self._streams:
            stream.close()

    async def _startup(self) -> None:
        self._to_app, app_inbox = anyio.create_memory_object_stream[Message](2)
        from_app, self._replies = anyio.create_memory_object_stream[Message](2)
        self._streams = (self._to_app, app_inbox, from_app, self._replies)
        scope = {"type": "lifespan", "asgi": dict(_ASGI), "state": self.state}

        async def run() -> None:
            try:
                await self.app(scope, app_inbox.receive, from_app.send)
            except Exception as exc:
                self._error = exc
            finally:
                from_app.close()

        self.spawn(run)
        reply = await self._exchange("lifespan.startup")
        # An app that raises or returns without a reply has no lifespan
        # support; servers go on without it (ASGI spec, "Lifespan Protocol").
        self._supported = reply is not None
        if not self._supported:
            self._error = None

    async def _shutdown(self) -> None:
        reply = await self._exchange("lifespan.shutdown")
        if reply is None and self._error is not None and self._raise:
            raise self._error

    async def _exchange(self, event: str) -> Message | None:
        await self._to_app.send({"type": event})
        try:
            reply = await self._replies.receive()
        except anyio.EndOfStream:
            return None
        kind = reply["type"]
        if kind == f"{event}.complete":
            return reply
        if kind != f"{event}.failed":
            raise RuntimeError(f"unexpected ASGI message {kind!r} in reply to {event!r}")
        async for _ in self._replies:  # the app should end after a failure
            pass
        raise LifespanFailed(str(reply.get("message", ""))) from self._error


class _HTTPExchange:
    """The server's side of one ASGI HTTP request, shared by both transports."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        read_body: ReadBody,
        *,
        raise_server_exceptions: bool,
        read_timeout: float | None = None,
    ) -> None:
        self._app = app
        self._scope = scope
        self._read_timeout = read_timeout
        self._read_body = read_body
        self._raise = raise_server_exceptions
        self._pathsend = "http.response.pathsend" in scope["extensions"]
        self._trailers_allowed = "http.response.trailers" in scope["extensions"]
        self._trailers_declared = False
        self._body_complete = False
        # Filled as the app sends them; the response's
        # ``extensions["http.response.trailers"]`` is this very list.
        self.trailers: list[tuple[bytes, bytes]] = []
        self._head = scope["method"] == "HEAD"
        self._chunks_in, self._chunks_out = anyio.create_memory_object_stream[bytes](_BODY_BUFFER)
        self._started = anyio.Event()
        self._finished = anyio.Event()
        self._over = anyio.Event()  # the response is complete or the client left
        self._status: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._complete = False
        self._client_gone = False
        self._closed = False
        self._body_done = False
        self._lookahead: bytes | None = None
        self._looked = False
        self._error: Exception | None = None

    async def start(self, spawn: Spawn) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Run the app until it starts the response; return status and headers."""
        spawn(self._run)
        await self._wait(self._started.wait)
        if self._status is None:
            if self._raise:
                self._chunks_out.close()
                self._raise_error()
                raise RuntimeError("the app returned without starting a response")
            return 500, []  # what a server answers; the body stream is already closed
        return self._status, self._headers

    async def next_chunk(self) -> bytes | None:
        """The next body chunk, or ``None`` once the app has finished."""
        try:
            return await self._wait(self._chunks_out.receive)
        except anyio.EndOfStream:
            pass
        # Wait for the app, so that work it does after the body (background
        # tasks) is done, and its errors surface, when the response is read.
        await self._finished.wait()
        self._raise_error()
        return None

    async def aclose(self) -> None:
        """The client is done with the response: tell the app if it was early."""
        if self._closed:
            return
        self._closed = True
        if not self._complete:
            self._client_gone = True
            self._over.set()
        self._chunks_out.close()
        await self._finished.wait()
        self._raise_error()

    async def _wait(self, step: Callable[[], Awaitable[T]]) -> T:
        # A per-request ``timeout`` bounds each wait for the app, as httpx's
        # read timeout bounds each wait for a server.
        if self._read_timeout is None:
            return await step()
        with anyio.move_on_after(self._read_timeout):
            return await step()
        self._client_gone = True  # the app is told the client left
        self._over.set()
        self._closed = True
        self._chunks_out.close()
        raise httpx.ReadTimeout(f"the app did not answer within {self._read_timeout} s")

    def abandon(self) -> None:
        """Drop the response without the app: its event loop is already gone."""
        self._closed = True
        self._chunks_out.close()

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None and self._raise:
            raise error

    async def _run(self) -> None:
        try:
            await self._app(self._scope, self._receive, self._send)
        except Exception as exc:
            # Raising because the client left is how apps are meant to stop.
            if not (self._client_gone and isinstance(exc, (ConnectionClosed, ClientDisconnect))):
                self._error = exc
        finally:
            self._chunks_in.close()
            self._finished.set()
            self._started.set()

    async def _next_body_chunk(self) -> bytes | None:
        while (chunk := await self._read_body()) is not None:
            if chunk:
                return chunk
        return None

    async def _receive(self) -> Message:
        if not self._client_gone and not self._body_done:
            # Read one chunk ahead so the last chunk carries more_body=False.
            if not self._looked:
                self._lookahead = await self._next_body_chunk()
                self._looked = True
            chunk = self._lookahead
            if chunk is not None:
                self._lookahead = await self._next_body_chunk()
            more = chunk is not None and self._lookahead is not None
            self._body_done = not more
            return {"type": "http.request", "body": chunk or b"", "more_body": more}
        await self._over.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self._client_gone:
            raise ConnectionClosed("the test client closed the response")
        kind = message["type"]
        if kind == "http.response.start":
            if self._status is not None:
                raise RuntimeError("http.response.start sent twice")
            self._status = int(message["status"])
            self._headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            self._trailers_declared = self._trailers_allowed and bool(message.get("trailers"))
            self._started.set()
        elif kind == "http.response.body":
            self._check_open(kind)
            if self._body_complete:
                raise RuntimeError("http.response.body sent after the body was complete")
            body = message.get("body", b"")
            if body and not self._head:
                await self._emit(bytes(body))
            if not message.get("more_body", False):
                self._finish_body()
        elif kind == "http.response.trailers" and self._trailers_allowed:
            # ASGI HTTP trailers extension: after a complete body, once
            # declared in http.response.start, until more_trailers is false.
            self._check_open(kind)
            if not self._trailers_declared:
                raise RuntimeError("http.response.trailers sent without declaring trailers")
            if not self._body_complete:
                raise RuntimeError("http.response.trailers sent before the body was complete")
            self.trailers.extend((bytes(k), bytes(v)) for k, v in message.get("headers", ()))
            if not message.get("more_trailers", False):
                self._finish_response()
        elif kind == "http.response.pathsend" and self._pathsend:
            self._check_open(kind)
            if not self._head:
                async with await anyio.open_file(message["path"], "rb") as file:
                    while chunk := await file.read(_FILE_CHUNK):
                        await self._emit(chunk)
            self._finish_body()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP connection")

    def _check_open(self, kind: str) -> None:
        if self._status is None:
            raise RuntimeError(f"{kind} sent before http.response.start")
        if self._complete:
            raise RuntimeError(f"{kind} sent after the response was complete")

    async def _emit(self, chunk: bytes) -> None:
        try:
            await self._chunks_in.send(chunk)
        except anyio.BrokenResourceError:
            raise ConnectionClosed("the test client closed the response") from None

    def _finish_body(self) -> None:
        self._body_complete = True
        if self._trailers_declared:
            # The body ends for the reader; the response once the trailers are in.
            self._chunks_in.close()
        else:
            self._finish_response()

    def _finish_response(self) -> None:
        self._complete = True
        self._chunks_in.close()
        self._over.set()


@dataclass(frozen=True)
class _Config:
    app: ASGIApp
    raise_server_exceptions: bool
    root_path: str
    client: tuple[str, int]
    extensions: Mapping[str, Mapping[str, Any]]

    def scope(self, kind: str, request: httpx.Request, state: dict[str, Any]) -> Scope:
        url = request.url
        raw_path, _, query_string = url.raw_path.partition(b"?")
        raw_root = quote(self.root_path).encode("ascii")
        scheme = url.scheme
        if kind == "websocket":
            scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        return {
            "type": kind,
            "asgi": dict(_ASGI),
            "http_version": "1.1",
            "method": request.method,
            "scheme": scheme,
            "path": self.root_path + unquote(raw_path.decode("ascii")),
            "raw_path": raw_root + raw_path,
            "query_string": query_string,
            "root_path": self.root_path,
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "client": self.client,
            "server": (url.host, _DEFAULT_PORTS.get(scheme, 80) if url.port is None else url.port),
            "state": dict(state),
            "extensions": {name: dict(value) for name, value in self.extensions.items()},
        }

    def http_exchange(
        self, request: httpx.Request, state: dict[str, Any], read_body: ReadBody
    ) -> _HTTPExchange:
        scope = self.scope("http", request, state)
        raise_errors = self.raise_server_exceptions
        timeouts = request.extensions.get("timeout") or {}
        return _HTTPExchange(
            self.app,
            scope,
            read_body,
            raise_server_exceptions=raise_errors,
            read_timeout=timeouts.get("read"),
        )

    def websocket_exchange(
        self, request: httpx.Request, subprotocols: list[str] | None, state: dict[str, Any]
    ) -> _WebSocketExchange:
        scope = self.scope("websocket", request, state)
        scope.pop("method")
        scope["headers"] = websocket_headers(scope["headers"], subprotocols)
        scope["subprotocols"] = list(subprotocols or ())
        return _WebSocketExchange(
            self.app,
            scope,
            raise_server_exceptions=self.raise_server_exceptions,
            denial_responses="websocket.http.response" in self.extensions,
        )


__all__ = ["LifespanFailed", "ReadBody"]
