"""An httpx client that talks to an ASGI app in-process, for tests.

``TestClient(app)`` is an ``httpx.Client``: ``with TestClient(app) as client``
starts an event loop in a thread (an anyio blocking portal), runs the app's
lifespan startup, and turns each request into an ASGI 3 ``http`` scope (ASGI
spec 2.4). ``async with TestClient(app) as client`` gives an
``AsyncTestClient`` (an ``httpx.AsyncClient``) that runs the app in the
current event loop, asyncio or trio. Both drive the app through one core,
``_HTTPExchange``; the transports only differ in how they reach it.

Trailers (the ASGI ``http.response.trailers`` extension, advertised by
default) land in ``response.extensions["http.response.trailers"]`` as a
list of raw pairs, complete once the body has been read.

Bodies stream both ways: the request body reaches ``receive()`` chunk by
chunk, and each chunk the app sends is handed to the httpx response as it is
produced, so ``client.stream(...)`` sees a streaming response as a real
client would. Closing a response early sends ``http.disconnect`` to the app.
Exceptions raised by the app are re-raised in the test by default.

Without ``with``, each request (or WebSocket session) gets its own event loop
and lifespan does not run; a client works before, between and after its
``with`` blocks, and each block runs the lifespan again.  Leaving a block
cancels the app of any response still open.

Deliberate differences from Starlette's ``TestClient``: ASGI 3 apps only;
the app may run up to four body chunks ahead of the reader (Starlette
holds it at every chunk); an app that raises on the lifespan scope is taken
to have no lifespan, as servers do (Starlette re-raises); the
Starlette's private ``http.response.debug`` message is refused (a clear
``RuntimeError``); ``websocket_connect`` takes no ``params`` (the query goes
in the URL).  A ``timeout`` given with a request is applied, not ignored
(Starlette warns and ignores it): each wait for the app (the response
start, each body chunk) is bounded by its read timeout, past which the app
is told the client left and ``httpx.ReadTimeout`` is raised.  The client's
default is no timeout. There is no network, no HTTP/1.1 framing and no
HTTP/2; ``root_path`` behaves like a server's ``--root-path`` behind a proxy
that strips the prefix (it is prepended to ``path`` and ``raw_path``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

from asgikit._httpx import httpx
from asgikit._testing_core import (
    _DEFAULT_EXTENSIONS,
    LifespanFailed,
    _Config,
)
from asgikit._testing_transport import _AsyncTransport, _SyncTransport
from asgikit._testing_ws import (
    AsyncWebSocketTestSession,
    WebSocketDenialResponse,
    WebSocketTestSession,
)
from asgikit.types import ASGIApp

_SyncClient = TypeVar("_SyncClient", bound="TestClient")
_AsyncClient = TypeVar("_AsyncClient", bound="AsyncTestClient")


def _extensions(
    extensions: Mapping[str, Mapping[str, Any]] | None,
) -> Mapping[str, Mapping[str, Any]]:
    return _DEFAULT_EXTENSIONS if extensions is None else extensions


def _default_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {"user-agent": "testclient", **(headers or {})}


class AsyncTestClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that runs ``app`` in the current event loop.

    Use it as ``async with AsyncTestClient(app) as client`` (or get one from
    ``async with TestClient(app)``): entering runs the lifespan startup,
    leaving runs its shutdown. Options are those of :class:`TestClient`.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        *,
        raise_server_exceptions: bool = True,
        root_path: str = "",
        client: tuple[str, int] = ("testclient", 50000),
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        cookies: httpx.Cookies | dict[str, str] | None = None,
        extensions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        config = _Config(app, raise_server_exceptions, root_path, client, _extensions(extensions))
        self._test_transport = _AsyncTransport(config)
        super().__init__(
            base_url=base_url,
            headers=_default_headers(headers),
            follow_redirects=follow_redirects,
            cookies=cookies,
            transport=self._test_transport,
            timeout=None,  # only a timeout given with a request bounds the app
        )

    async def __aenter__(self: _AsyncClient) -> _AsyncClient:
        await super().__aenter__()
        try:
            await self._test_transport.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    def websocket_connect(
        self,
        url: str,
        subprotocols: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[AsyncWebSocketTestSession]:
        """Open a WebSocket session: ``async with client.websocket_connect("/ws") as ws``.

        Raises ``WebSocketDisconnect`` if the app closes before accepting, and
        ``WebSocketDenialResponse`` if it answers with an HTTP response.
        """
        request = self.build_request("GET", url, headers=headers)
        return self._test_transport.websocket(request, subprotocols)


class TestClient(httpx.Client):
    """An ``httpx.Client`` that sends its requests to an ASGI ``app``.

    ``with TestClient(app) as client`` runs the lifespan around the block;
    ``async with TestClient(app) as client`` yields an :class:`AsyncTestClient`.
    ``raise_server_exceptions`` re-raises the app's exceptions in the test
    (otherwise the client sees a 500 if no response had started).
    ``root_path`` and ``client`` fill those scope keys, ``extensions`` replaces
    the advertised ASGI extensions (by default ``http.response.pathsend`` and
    ``websocket.http.response``), and ``backend`` is the anyio backend of the
    event loop thread ("asyncio" or "trio").
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        *,
        raise_server_exceptions: bool = True,
        root_path: str = "",
        client: tuple[str, int] = ("testclient", 50000),
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        cookies: httpx.Cookies | dict[str, str] | None = None,
        extensions: Mapping[str, Mapping[str, Any]] | None = None,
        backend: Literal["asyncio", "trio"] = "asyncio",
    ) -> None:
        self._options: dict[str, Any] = {
            "raise_server_exceptions": raise_server_exceptions,
            "root_path": root_path,
            "client": client,
            "headers": headers,
            "follow_redirects": follow_redirects,
            "cookies": cookies,
            "extensions": extensions,
        }
        self._app = app
        self._test_base_url = base_url
        self._async_client: AsyncTestClient | None = None
        config = _Config(app, raise_server_exceptions, root_path, client, _extensions(extensions))
        self._test_transport = _SyncTransport(config, backend)
        super().__init__(
            base_url=base_url,
            headers=_default_headers(headers),
            follow_redirects=follow_redirects,
            cookies=cookies,
            transport=self._test_transport,
            timeout=None,  # only a timeout given with a request bounds the app
        )

    # Not httpx's enter and exit, which would close the client for good: a
    # test client works before, between and after its ``with`` blocks, and
    # each block runs the lifespan again.
    def __enter__(self: _SyncClient) -> _SyncClient:
        self._test_transport.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._test_transport.close()

    async def __aenter__(self) -> AsyncTestClient:
        client = AsyncTestClient(self._app, self._test_base_url, **self._options)
        self._async_client = await client.__aenter__()
        return self._async_client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.__aexit__(exc_type, exc, traceback)

    def websocket_connect(
        self,
        url: str,
        subprotocols: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> contextlib.AbstractContextManager[WebSocketTestSession]:
        """Open a WebSocket session: ``with client.websocket_connect("/ws") as ws``.

        Raises ``WebSocketDisconnect`` if the app closes before accepting, and
        ``WebSocketDenialResponse`` if it answers with an HTTP response.
        """
        request = self.build_request("GET", url, headers=headers)
        return self._test_transport.websocket(request, subprotocols)


__all__ = [
    "AsyncTestClient",
    "AsyncWebSocketTestSession",
    "LifespanFailed",
    "TestClient",
    "WebSocketDenialResponse",
    "WebSocketTestSession",
]
