"""The httpx transports of the test clients: each request handed to the app in-process.

``_SyncTransport`` reaches the app through a blocking portal (an event loop
in a thread), ``_AsyncTransport`` in the caller's own event loop; both drive
it through ``_testing_core._HTTPExchange``, and stream the response body to
httpx as the app produces it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.abc
import anyio.from_thread

from asgikit._httpx import httpx
from asgikit._testing_core import (
    _AppRunner,
    _Config,
    _HTTPExchange,
)
from asgikit._testing_ws import (
    AsyncWebSocketTestSession,
    WebSocketTestSession,
)


class _SyncResponseStream(httpx.SyncByteStream):
    def __init__(
        self,
        portal: anyio.from_thread.BlockingPortal,
        exchange: _HTTPExchange,
        release: contextlib.ExitStack,
        open_streams: set[_SyncResponseStream] | None,
    ) -> None:
        self._portal = portal
        self._exchange = exchange
        self._release: contextlib.ExitStack | None = release
        # The with block's open responses, when the stream runs in its portal.
        self._open_streams = open_streams
        if open_streams is not None:
            open_streams.add(self)

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self._portal.call(self._exchange.next_chunk)) is not None:
            yield chunk

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            if self._open_streams is not None:
                self._open_streams.discard(self)
            with release:
                self._portal.call(self._exchange.aclose)

    def abandon(self) -> None:
        """The ``with`` block ended with this response open: its app is cancelled."""
        self._release = None
        self._exchange.abandon()


class _SyncTransport(httpx.BaseTransport):
    """Runs the app in a blocking portal: one for the whole ``with`` block, else one per call."""

    def __init__(self, config: _Config, backend: str) -> None:
        self._config = config
        self._backend = backend
        self._shared: tuple[anyio.from_thread.BlockingPortal, _AppRunner] | None = None
        self._stack: contextlib.ExitStack | None = None
        self._open_streams: set[_SyncResponseStream] = set()

    def start(self) -> None:
        if self._stack is not None:
            raise RuntimeError("the test client's with block is already running")
        portal, runner, self._stack = self._open(lifespan=True)
        self._shared = (portal, runner)

    def close(self) -> None:
        stack, self._stack, self._shared = self._stack, None, None
        if stack is not None:
            # Leaving the block cancels the app of every response still open.
            stack.close()
        streams, self._open_streams = self._open_streams, set()
        for stream in streams:
            stream.abandon()

    def _open(
        self, *, lifespan: bool
    ) -> tuple[anyio.from_thread.BlockingPortal, _AppRunner, contextlib.ExitStack]:
        raise_errors = self._config.raise_server_exceptions
        runner = _AppRunner(
            self._config.app, lifespan=lifespan, raise_server_exceptions=raise_errors
        )
        stack = contextlib.ExitStack()
        try:
            portal = stack.enter_context(anyio.from_thread.start_blocking_portal(self._backend))
            stack.enter_context(portal.wrap_async_context_manager(runner))
        except BaseException:
            stack.close()
            raise
        return portal, runner, stack

    def _acquire(
        self,
    ) -> tuple[anyio.from_thread.BlockingPortal, _AppRunner, contextlib.ExitStack]:
        """The shared portal inside ``with``, else a fresh one (without lifespan)."""
        if self._shared is not None:
            return (*self._shared, contextlib.ExitStack())
        return self._open(lifespan=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        portal, runner, release = self._acquire()
        with release:
            assert isinstance(request.stream, httpx.SyncByteStream)
            body = iter(request.stream)

            async def read_body() -> bytes | None:
                return next(body, None)

            exchange = portal.call(self._config.http_exchange, request, runner.state, read_body)
            status, headers = portal.call(exchange.start, runner.spawn)
            open_streams = self._open_streams if self._shared is not None else None
            stream = _SyncResponseStream(portal, exchange, release.pop_all(), open_streams)
        extensions = {"http.response.trailers": exchange.trailers}
        return httpx.Response(status, headers=headers, stream=stream, extensions=extensions)

    @contextlib.contextmanager
    def websocket(
        self, request: httpx.Request, subprotocols: list[str] | None
    ) -> Iterator[WebSocketTestSession]:
        portal, runner, release = self._acquire()
        with release:
            config = self._config
            exchange = portal.call(config.websocket_exchange, request, subprotocols, runner.state)
            portal.call(exchange.connect, runner.spawn)
            try:
                yield WebSocketTestSession(portal, exchange)
            finally:
                portal.call(exchange.close, 1000, None)


class _AsyncResponseStream(httpx.AsyncByteStream):
    def __init__(self, exchange: _HTTPExchange) -> None:
        self._exchange = exchange

    # An iterator object, not an async generator: a generator left unfinished
    # when a client stops reading early is a ResourceWarning on trio.
    def __aiter__(self) -> _AsyncResponseStream:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._exchange.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        await self._exchange.aclose()


class _AsyncTransport(httpx.AsyncBaseTransport):
    """Runs the app in the current event loop, inside ``async with``."""

    def __init__(self, config: _Config) -> None:
        self._config = config
        self._runner: _AppRunner | None = None

    async def start(self) -> None:
        raise_errors = self._config.raise_server_exceptions
        runner = _AppRunner(self._config.app, lifespan=True, raise_server_exceptions=raise_errors)
        self._runner = await runner.__aenter__()

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.__aexit__(None, None, None)

    def _require_runner(self) -> _AppRunner:
        if self._runner is None:
            raise RuntimeError("use AsyncTestClient inside `async with`")
        return self._runner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        runner = self._require_runner()
        assert isinstance(request.stream, httpx.AsyncByteStream)
        body = aiter(request.stream)

        async def read_body() -> bytes | None:
            return await anext(body, None)

        exchange = self._config.http_exchange(request, runner.state, read_body)
        status, headers = await exchange.start(runner.spawn)
        return httpx.Response(
            status,
            headers=headers,
            stream=_AsyncResponseStream(exchange),
            extensions={"http.response.trailers": exchange.trailers},
        )

    @contextlib.asynccontextmanager
    async def websocket(
        self, request: httpx.Request, subprotocols: list[str] | None
    ) -> AsyncIterator[AsyncWebSocketTestSession]:
        runner = self._require_runner()
        exchange = self._config.websocket_exchange(request, subprotocols, runner.state)
        await exchange.connect(runner.spawn)
        try:
            yield AsyncWebSocketTestSession(exchange)
        finally:
            await exchange.close()
