"""Tests for asgikit.endpoints: HTTPEndpoint and WebSocketEndpoint classes as routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from asgikit.endpoints import HTTPEndpoint, WebSocketEndpoint
from asgikit.exceptions import HTTPException, WebSocketDisconnect
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routing import route, router, websocket_route
from asgikit.testing import TestClient, WebSocketDenialResponse
from asgikit.websockets import WebSocket
from tests.conftest import make_scope, run_app
from tests.servers.live import serve


class Items(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return JSONResponse({"id": request.path_params["id"], "method": request.method})

    async def post(self, request: Request) -> Response:
        return PlainTextResponse(await request.body(), status_code=201)

    def delete(self, request: Request) -> Response:
        # A plain def runs in a worker thread.
        return Response(status_code=204)

    async def put(self, request: Request) -> Response:
        raise HTTPException(409, "conflict")

    async def helper(self, request: Request) -> Response:
        return PlainTextResponse("must never be reachable")


app = router(route("/items/{id:int}", Items))


async def test_each_verb_runs_its_method() -> None:
    async with TestClient(app) as client:
        got = await client.get("/items/3")
        posted = await client.post("/items/3", content=b"body")
        deleted = await client.delete("/items/3")
    assert got.json() == {"id": 3, "method": "GET"}
    assert (posted.status_code, posted.text) == (201, "body")
    assert deleted.status_code == 204


async def test_head_uses_get_and_sends_no_body() -> None:
    async with TestClient(app) as client:
        response = await client.head("/items/3")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/json"


async def test_a_missing_verb_answers_405_with_allow() -> None:
    async with TestClient(app) as client:
        response = await client.patch("/items/3")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, POST, PUT"


@pytest.mark.parametrize("method", ["HELPER", "helper", "__INIT__", "DISPATCH", "TRACE"])
async def test_a_method_name_that_is_not_a_verb_is_never_dispatched(method: str) -> None:
    async with TestClient(app) as client:
        response = await client.request(method, "/items/3")
    assert response.status_code == 405
    assert "must never" not in response.text


async def test_http_exception_in_a_method_becomes_its_response() -> None:
    async with TestClient(app) as client:
        response = await client.put("/items/3")
    assert (response.status_code, response.text) == (409, "conflict")


async def test_explicit_head_is_used_over_get() -> None:
    class WithHead(HTTPEndpoint):
        async def get(self, request: Request) -> Response:
            return PlainTextResponse("get")

        async def head(self, request: Request) -> Response:
            return PlainTextResponse("", headers={"x-head": "1"})

    async with TestClient(router(route("/", WithHead))) as client:
        response = await client.head("/")
    assert response.headers["x-head"] == "1"


async def test_an_http_endpoint_refuses_a_websocket_scope() -> None:
    with pytest.raises(ValueError, match="serves 'http' scopes"):
        await run_app(Items, make_scope(type="websocket"))


# WebSocketEndpoint


class Echo(WebSocketEndpoint):
    encoding = "text"
    log: list[Any] = []

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(f"echo {data}")

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        self.log.append(close_code)


class JSONEcho(WebSocketEndpoint):
    encoding = "json"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_json({"got": data})


class BytesEcho(WebSocketEndpoint):
    encoding = "bytes"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_bytes(data[::-1])


class RawEcho(WebSocketEndpoint):
    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(type(data).__name__)


class Refuse(WebSocketEndpoint):
    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.close(4001)

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        raise AssertionError("not called for a refused connection")


class Deny(WebSocketEndpoint):
    async def on_connect(self, websocket: WebSocket) -> None:
        raise HTTPException(401, "no")


class Fails(WebSocketEndpoint):
    log: list[int] = []

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        raise RuntimeError("handler bug")

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        self.log.append(close_code)


ws_app = router(
    websocket_route("/text", Echo),
    websocket_route("/json", JSONEcho),
    websocket_route("/bytes", BytesEcho),
    websocket_route("/raw", RawEcho),
    websocket_route("/refuse", Refuse),
    websocket_route("/deny", Deny),
    websocket_route("/fails", Fails),
)


async def test_text_endpoint_echoes_and_reports_the_client_close_code() -> None:
    Echo.log.clear()
    async with TestClient(ws_app) as client, client.websocket_connect("/text") as ws:
        await ws.send_text("hi")
        assert await ws.receive_text() == "echo hi"
        await ws.close(4000)
    assert Echo.log == [4000]


async def test_json_endpoint_decodes_text_and_binary_messages() -> None:
    async with TestClient(ws_app) as client, client.websocket_connect("/json") as ws:
        await ws.send_json({"a": 1})
        assert await ws.receive_json() == {"got": {"a": 1}}
        await ws.send_bytes(b"[1, 2]")
        assert await ws.receive_json() == {"got": [1, 2]}


async def test_bytes_endpoint_gets_bytes() -> None:
    async with TestClient(ws_app) as client, client.websocket_connect("/bytes") as ws:
        await ws.send_bytes(b"abc")
        assert await ws.receive_bytes() == b"cba"


async def test_no_encoding_passes_text_or_bytes_as_sent() -> None:
    async with TestClient(ws_app) as client, client.websocket_connect("/raw") as ws:
        await ws.send_text("x")
        assert await ws.receive_text() == "str"
        await ws.send_bytes(b"x")
        assert await ws.receive_text() == "bytes"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/text", {"type": "websocket.receive", "bytes": b"binary"}),
        ("/bytes", {"type": "websocket.receive", "text": "text"}),
        ("/json", {"type": "websocket.receive", "text": "{not json"}),
        ("/json", {"type": "websocket.receive", "bytes": b"\xff\xfe"}),
    ],
)
async def test_a_message_that_does_not_fit_the_encoding_closes_with_1003(
    path: str, message: dict[str, Any]
) -> None:
    Echo.log.clear()
    async with TestClient(ws_app) as client, client.websocket_connect(path) as ws:
        await ws.send(message)
        reply = await ws.receive()
    assert (reply["type"], reply["code"]) == ("websocket.close", 1003)
    if path == "/text":
        assert Echo.log == [1003]


async def test_closing_in_on_connect_refuses_the_connection() -> None:
    async with TestClient(ws_app) as client:
        with pytest.raises(WebSocketDisconnect) as info:
            async with client.websocket_connect("/refuse"):
                pass
    assert info.value.code == 4001


async def test_http_exception_in_on_connect_denies_the_handshake() -> None:
    async with TestClient(ws_app) as client:
        with pytest.raises(WebSocketDenialResponse) as info:
            async with client.websocket_connect("/deny"):
                pass
    assert (info.value.status_code, info.value.text) == (401, "no")


async def test_an_exception_in_on_receive_reports_1011_and_propagates() -> None:
    Fails.log.clear()

    async def session(client: Any) -> None:
        async with client.websocket_connect("/fails") as ws:
            await ws.send_text("x")
            await ws.receive()

    async with TestClient(ws_app) as client:
        with pytest.raises(RuntimeError, match="handler bug"):
            await session(client)
    assert Fails.log == [1011]


async def test_a_websocket_endpoint_refuses_an_http_scope() -> None:
    with pytest.raises(ValueError, match="serves 'websocket' scopes"):
        await run_app(Echo, make_scope())


def test_endpoints_through_a_real_uvicorn_server() -> None:
    both = router(route("/items/{id:int}", Items), websocket_route("/text", Echo))
    with serve(both) as base_url:
        got = httpx.get(base_url + "/items/5")
        refused = httpx.request("PROPFIND", base_url + "/items/5")
        with ws_connect(base_url.replace("http", "ws") + "/text") as ws:
            ws.send("over the wire")
            reply = ws.recv()
    assert got.json() == {"id": 5, "method": "GET"}
    assert (refused.status_code, refused.headers["allow"]) == (405, "DELETE, GET, HEAD, POST, PUT")
    assert reply == "echo over the wire"


def test_uploads_read_in_an_endpoint_are_closed_after_the_response() -> None:
    # Endpoints answer through the same runner as routes, clean-up included.
    kept: list[Any] = []

    class Upload(HTTPEndpoint):
        async def post(self, request: Request) -> PlainTextResponse:
            form = await request.form()
            upload = form["file"]
            kept.append(upload)
            return PlainTextResponse(str(upload.size))

    with TestClient(router(route("/up", Upload))) as client:
        answer = client.post("/up", files={"file": ("a.txt", b"abc")})
    assert answer.text == "3"
    assert kept[0].file.closed


# Parity with Starlette's tests/test_endpoints.py


class Greeting(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        name = request.path_params.get("name")
        return PlainTextResponse(f"Hello, {name or 'world'}!")

    async def query(self, request: Request) -> Response:
        return PlainTextResponse("Hello, QUERY " + (await request.body()).decode())


greetings = router(route("/", Greeting), route("/{name}", Greeting))


async def test_path_params_reach_the_method() -> None:
    async with TestClient(greetings) as client:
        assert (await client.get("/")).text == "Hello, world!"
        assert (await client.get("/tom")).text == "Hello, tom!"


async def test_query_is_dispatched_like_the_other_verbs() -> None:
    async with TestClient(greetings) as client:
        response = await client.request("QUERY", "/", content=b"body")
        refused = await client.post("/")
    assert (response.status_code, response.text) == (200, "Hello, QUERY body")
    assert (refused.status_code, refused.text) == (405, "Method Not Allowed")
    assert refused.headers["allow"] == "GET, HEAD, QUERY"


async def test_head_without_get_is_refused_with_allow_naming_only_the_methods() -> None:
    class PostOnly(HTTPEndpoint):
        async def post(self, request: Request) -> Response:
            return PlainTextResponse("posted")

    async with TestClient(router(route("/", PostOnly))) as client:
        response = await client.head("/")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


async def test_a_method_can_send_early_hints_through_self_send() -> None:
    # Deliberate difference: Request has no send_early_hints(); the endpoint
    # sends the ASGI extension's message itself, and it goes out first.
    class Page(HTTPEndpoint):
        async def get(self, request: Request) -> Response:
            if "http.response.early_hint" in self.scope.get("extensions", {}):
                await self.send(
                    {"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload"]}
                )
            return PlainTextResponse("page")

    scope = make_scope(extensions={"http.response.early_hint": {}})
    sent = await run_app(router(route("/", Page)), scope)
    assert sent.messages[0] == {
        "type": "http.response.early_hint",
        "links": [b"</s.css>; rel=preload"],
    }
    assert sent.body == b"page"


async def test_on_connect_may_choose_a_subprotocol() -> None:
    class Chat(WebSocketEndpoint):
        async def on_connect(self, websocket: WebSocket) -> None:
            assert websocket.scope["subprotocols"] == ["soap", "wamp"]
            await websocket.accept(subprotocol="wamp")

    async with (
        TestClient(router(websocket_route("/ws", Chat))) as client,
        client.websocket_connect("/ws", subprotocols=["soap", "wamp"]) as ws,
    ):
        assert ws.accepted_subprotocol == "wamp"


async def test_an_empty_text_message_reaches_on_receive_as_an_empty_string() -> None:
    async with TestClient(ws_app) as client, client.websocket_connect("/raw") as ws:
        await ws.send_text("")
        assert await ws.receive_text() == "str"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/text", {"type": "websocket.receive", "text": None, "bytes": b"hello"}),
        ("/bytes", {"type": "websocket.receive", "text": "hi", "bytes": None}),
    ],
)
async def test_a_message_with_both_keys_and_the_wanted_one_none_closes_with_1003(
    path: str, message: dict[str, Any]
) -> None:
    async with TestClient(ws_app) as client, client.websocket_connect(path) as ws:
        await ws.send(message)
        reply = await ws.receive()
    assert (reply["type"], reply["code"]) == ("websocket.close", 1003)
