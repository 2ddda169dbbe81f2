"""websocket_origin: handshakes from other origins are refused before the app sees them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit.exceptions import WebSocketDisconnect
from asgikit.middleware.websocket_origin import websocket_origin
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.routing import route, router, websocket_route
from asgikit.testing import TestClient, WebSocketDenialResponse
from asgikit.types import Message, Receive, Scope, Send
from asgikit.websockets import WebSocket
from tests.servers.live import serve


async def hello(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


async def page(request: Request) -> PlainTextResponse:
    return PlainTextResponse("page")


routes = router(websocket_route("/ws", hello), route("/", page))
ALLOWED = ["https://app.example.com", "https://*.trusted.org", "http://localhost:8000"]


def connect(client: TestClient, origin: str | None) -> str:
    headers = {} if origin is None else {"origin": origin}
    with client.websocket_connect("/ws", headers=headers) as websocket:
        return websocket.receive_text()


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("http://testserver", id="own-origin"),
        pytest.param("https://app.example.com", id="exact"),
        pytest.param("HTTPS://APP.EXAMPLE.COM:443", id="case-and-default-port"),
        pytest.param("https://a.trusted.org", id="subdomain"),
        pytest.param("https://a.b.trusted.org", id="deep-subdomain"),
        pytest.param("http://localhost:8000", id="with-port"),
        pytest.param(None, id="no-origin-not-a-browser"),
    ],
)
def test_allowed_origins_reach_the_app(origin: str | None) -> None:
    with TestClient(websocket_origin(routes, allowed_origins=ALLOWED)) as client:
        assert connect(client, origin) == "hello"


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("https://evil.example", id="other"),
        pytest.param("https://app.example.com.evil.example", id="suffix-trick"),
        pytest.param("https://trusted.org", id="bare-domain-of-wildcard"),
        pytest.param("https://eviltrusted.org", id="no-dot-before-suffix"),
        pytest.param("http://a.trusted.org", id="wrong-scheme"),
        pytest.param("http://localhost:8001", id="wrong-port"),
        pytest.param("https://testserver", id="own-host-wrong-scheme"),
        pytest.param("https://x/y.trusted.org", id="not-a-host"),
        pytest.param("null", id="null"),
        pytest.param("", id="empty"),
    ],
)
def test_other_origins_are_refused_with_403(origin: str) -> None:
    client = TestClient(websocket_origin(routes, allowed_origins=ALLOWED))
    with client, pytest.raises(WebSocketDenialResponse) as denied:
        connect(client, origin)
    assert denied.value.status_code == 403
    assert denied.value.content == b"WebSocket origin not allowed"


def test_without_the_http_response_extension_the_refusal_is_a_close() -> None:
    app = websocket_origin(routes, allowed_origins=ALLOWED)
    client = TestClient(app, extensions={})
    with client, pytest.raises(WebSocketDisconnect) as closed:
        connect(client, "https://evil.example")
    assert closed.value.code == 1008


def test_missing_origin_refused_when_asked() -> None:
    client = TestClient(websocket_origin(routes, allow_missing=False))
    with client, pytest.raises(WebSocketDenialResponse):
        connect(client, None)


def test_star_allows_every_origin_and_exclude_skips() -> None:
    with TestClient(websocket_origin(routes, allowed_origins=["*"])) as client:
        assert connect(client, "https://anything.example") == "hello"
    with TestClient(websocket_origin(routes, exclude=["/ws"])) as client:
        assert connect(client, "https://anything.example") == "hello"


def test_http_passes_through_whatever_the_origin() -> None:
    with TestClient(websocket_origin(routes)) as client:
        assert client.get("/", headers={"origin": "https://evil.example"}).text == "page"


async def test_lifespan_passes_through() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope: Scope = {"type": "lifespan"}
    await websocket_origin(inner)(scope, None, None)  # type: ignore[arg-type]
    assert seen == [scope]


def test_malformed_allowed_origins_are_refused_when_built() -> None:
    with pytest.raises(ValueError):
        websocket_origin(routes, allowed_origins=["example.com"])


def test_layer_shape_and_starlette_drop_in() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket as StarletteWebSocket

    async def starlette_ws(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(
        routes=[WebSocketRoute("/ws", starlette_ws)],
        middleware=[Middleware(websocket_origin, allowed_origins=ALLOWED)],
    )
    with TestClient(app) as client:
        assert connect(client, "https://app.example.com") == "hi"
        with pytest.raises(WebSocketDenialResponse):
            connect(client, "https://evil.example")
    layered = websocket_origin(allowed_origins=ALLOWED)(routes)
    with TestClient(layered) as client:
        assert connect(client, "https://a.trusted.org") == "hello"


def test_through_uvicorn_with_a_real_websocket_client() -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    app = websocket_origin(routes, allowed_origins=ALLOWED)
    with serve(app) as base_url:
        url = base_url.replace("http://", "ws://") + "/ws"
        with ws_connect(url, origin="https://app.example.com") as websocket:  # type: ignore[arg-type]
            assert websocket.recv() == "hello"
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, origin="https://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403


@settings(max_examples=100, deadline=None)
@given(origin=st.binary(max_size=80), host=st.binary(max_size=40))
async def test_arbitrary_origin_and_host_headers_never_raise(origin: bytes, host: bytes) -> None:
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept"})

    app = websocket_origin(inner, allowed_origins=ALLOWED)
    scope: Scope = {
        "type": "websocket",
        "scheme": "ws",
        "path": "/ws",
        "headers": [(b"origin", origin), (b"host", host)],
        "extensions": {"websocket.http.response": {}},
    }
    await app(scope, None, send)  # type: ignore[arg-type]
    assert messages[0]["type"] in ("websocket.accept", "websocket.http.response.start")
