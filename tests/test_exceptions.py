"""HTTPException and WebSocketDisconnect, and how a route answers an HTTPException.

Parity with Starlette's tests/test_exceptions.py (the behaviours, in our style).
"""

from __future__ import annotations

from typing import Any

import pytest

from asgikit.exceptions import HTTPException, WebSocketDisconnect
from asgikit.middleware.exception_handlers import exception_handlers
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.routing import route, router, websocket_route
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from asgikit.websockets import WebSocket


def raising(status: int, **kwargs: Any) -> Any:
    async def endpoint(request: Request) -> PlainTextResponse:
        raise HTTPException(status, **kwargs)

    return endpoint


async def ws_fails(websocket: WebSocket) -> None:
    raise RuntimeError("Yikes")


async def answered_then_raises(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("OK")(scope, receive, send)
    raise HTTPException(406)


app = router(
    route("/406", raising(406)),
    route("/204", raising(204)),
    route("/304", raising(304)),
    route("/200-with-headers", raising(200, headers={"x-potato": "always"})),
    route("/499", raising(499)),
    route("/after-response", answered_then_raises),
    websocket_route("/ws", ws_fails),
)


@pytest.fixture
def client() -> Any:
    with TestClient(exception_handlers(app, {})) as client:
        yield client


def test_an_http_exception_answers_its_reason_phrase(client: TestClient) -> None:
    response = client.get("/406")
    assert (response.status_code, response.text) == (406, "Not Acceptable")


def test_204_and_304_have_no_body_and_no_content_length(client: TestClient) -> None:
    no_content = client.get("/204")
    assert no_content.status_code == 204
    assert "content-length" not in no_content.headers
    not_modified = client.get("/304")
    assert (not_modified.status_code, not_modified.text) == (304, "")


def test_the_exception_headers_are_sent(client: TestClient) -> None:
    response = client.get("/200-with-headers")
    assert response.status_code == 200
    assert response.headers["x-potato"] == "always"


def test_a_status_without_a_reason_phrase_has_an_empty_body(client: TestClient) -> None:
    response = client.get("/499")
    assert (response.status_code, response.text) == (499, "")


def test_an_error_in_a_websocket_handler_propagates(client: TestClient) -> None:
    with pytest.raises(RuntimeError, match="Yikes"), client.websocket_connect("/ws"):
        pass


def test_an_http_exception_after_the_response_started_goes_on_unchanged() -> None:
    # Deliberate difference: Starlette raises a RuntimeError("Caught handled
    # exception, but response already started"); asgikit lets the original
    # exception go on, so the server reports what actually went wrong.
    async def on_406(request: Request, exc: HTTPException) -> PlainTextResponse:
        raise AssertionError("not called once the response started")

    client = TestClient(exception_handlers(app, {406: on_406}))
    with client, pytest.raises(HTTPException) as info:
        client.get("/after-response")
    assert info.value.status_code == 406
    with TestClient(exception_handlers(app, {}), raise_server_exceptions=False) as client:
        response = client.get("/after-response")
    assert (response.status_code, response.text) == (200, "OK")


def test_http_exception_str_and_repr() -> None:
    assert str(HTTPException(404)) == "404: Not Found"
    assert str(HTTPException(404, "Not Found: foo")) == "404: Not Found: foo"
    assert str(HTTPException(404, headers={"key": "value"})) == "404: Not Found"
    assert repr(HTTPException(404)) == "HTTPException(status_code=404, detail='Not Found')"

    class CustomHTTPException(HTTPException):
        pass

    assert repr(CustomHTTPException(500, detail="Something custom")) == (
        "CustomHTTPException(status_code=500, detail='Something custom')"
    )


def test_websocket_disconnect_repr_and_defaults() -> None:
    # Starlette's WebSocketException (raise to close with a code) has no
    # counterpart: close with ``await websocket.close(code, reason)``.
    assert repr(WebSocketDisconnect(1008, "Policy Violation")) == (
        "WebSocketDisconnect(code=1008, reason='Policy Violation')"
    )
    assert (WebSocketDisconnect().code, WebSocketDisconnect().reason) == (1000, "")


def test_the_handler_gets_the_endpoints_own_request_with_its_body() -> None:
    seen: list[Request] = []

    class BadBody(HTTPException):
        pass

    async def read_then_raise(request: Request) -> PlainTextResponse:
        seen.append(request)
        await request.body()
        raise BadBody(422)

    async def on_bad_body(request: Request, exc: BadBody) -> JSONResponse:
        seen.append(request)
        return JSONResponse({"body": (await request.body()).decode()}, 422)

    inner = router(route("/", read_then_raise, methods=["POST"]))
    with TestClient(exception_handlers(inner, {BadBody: on_bad_body})) as client:
        response = client.post("/", content=b"Hello!")
    assert (response.status_code, response.json()) == (422, {"body": "Hello!"})
    assert seen[0] is seen[1]


def test_sync_and_async_handlers_typed_with_exception_are_accepted() -> None:
    async def async_catch_all(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"async": str(exc)}, 500)

    def sync_catch_all(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"sync": str(exc)}, 500)

    async def fails(request: Request) -> PlainTextResponse:
        raise ValueError("x")

    for handler, key in ((async_catch_all, "async"), (sync_catch_all, "sync")):
        wrapped = exception_handlers(router(route("/", fails)), {Exception: handler})
        with TestClient(wrapped) as client:
            assert client.get("/").json() == {key: "x"}


def test_an_answered_exception_drops_its_traceback() -> None:
    # A module-level instance raised on every request must not pile up frames.
    shared = HTTPException(401, "Unauthorized")

    async def raise_shared(request: Request) -> PlainTextResponse:
        raise shared

    with TestClient(router(route("/", raise_shared))) as client:
        assert client.get("/").status_code == 401
        assert client.get("/").status_code == 401
    assert shared.__traceback__ is None

    handled = HTTPException(402)

    async def raise_handled(request: Request) -> PlainTextResponse:
        raise handled

    async def on_402(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse("pay", 402)

    with TestClient(
        exception_handlers(router(route("/", raise_handled)), {402: on_402})
    ) as client:
        assert client.get("/").text == "pay"
    assert handled.__traceback__ is None
