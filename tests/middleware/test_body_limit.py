"""body_limit: 413 before reading by Content-Length, and while reading a longer stream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from asgikit.middleware.body_limit import RequestBodyTooLarge, body_limit
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app
from tests.servers.live import serve

calls: list[str] = []


async def read_all(scope: Scope, receive: Receive, send: Send) -> None:
    calls.append("app")
    body = await Request(scope, receive).body()
    await PlainTextResponse(f"got {len(body)}")(scope, receive, send)


async def raw_reader(scope: Scope, receive: Receive, send: Send) -> None:
    total = 0
    more = True
    while more:
        message = await receive()
        total += len(message.get("body", b""))
        more = message.get("more_body", False)
    await PlainTextResponse(f"got {total}")(scope, receive, send)


def test_small_body_passes() -> None:
    response = TestClient(body_limit(read_all, max_size=10)).post("/", content=b"x" * 10)
    assert response.text == "got 10"


def test_content_length_too_big_is_refused_before_the_app_runs() -> None:
    calls.clear()
    response = TestClient(body_limit(read_all, max_size=10)).post("/", content=b"x" * 11)
    assert response.status_code == 413
    assert calls == []


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1 2"])
async def test_malformed_content_length_is_400(length: bytes) -> None:
    sent = await run_app(
        body_limit(read_all, max_size=10),
        make_scope("POST", headers=[(b"content-length", length)]),
    )
    assert sent.status == 400


async def test_huge_content_length_is_413_without_int_conversion_trouble() -> None:
    scope = make_scope("POST", headers=[(b"content-length", b"9" * 5000)])
    assert (await run_app(body_limit(read_all, max_size=10), scope)).status == 413


def chunks(n: int) -> Iterator[bytes]:
    for _ in range(n):
        yield b"x" * 100


@pytest.mark.parametrize("app", [read_all, raw_reader])
def test_chunked_body_growing_past_the_limit_gets_413(app: object) -> None:
    client = TestClient(body_limit(app, max_size=250))  # type: ignore[arg-type]
    assert client.post("/", content=chunks(2)).text == "got 200"
    response = client.post("/", content=chunks(5))
    assert response.status_code == 413


def test_asgikit_route_answers_the_413_itself() -> None:
    async def upload(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    app = body_limit(router(route("/up", upload, methods=["POST"])), max_size=50)
    assert TestClient(app).post("/up", content=chunks(1)).status_code == 413


def test_per_route_limit_wraps_an_asgi_app_endpoint() -> None:
    app = router(
        route("/small", body_limit(raw_reader, max_size=50), methods=["POST"]),
        route("/big", raw_reader, methods=["POST"]),
    )
    client = TestClient(app)
    assert client.post("/small", content=b"x" * 51).status_code == 413
    assert client.post("/big", content=b"x" * 51).text == "got 51"


def test_per_route_limit_takes_a_request_handler_function() -> None:
    async def upload(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"got {len(await request.body())}")

    app = router(
        route("/small", body_limit(upload, max_size=50), methods=["POST"]),  # type: ignore[arg-type]
        route("/layer", body_limit(max_size=50)(upload), methods=["POST"]),  # type: ignore[arg-type]
        route("/big", upload, methods=["POST"]),
    )
    client = TestClient(app)
    assert client.post("/small", content=b"x" * 51).status_code == 413
    assert client.post("/small", content=chunks(1)).status_code == 413
    assert client.post("/layer", content=chunks(1)).status_code == 413
    assert client.post("/small", content=b"x" * 50).text == "got 50"
    assert client.post("/big", content=b"x" * 51).text == "got 51"


def test_generic_500_for_the_limit_error_becomes_413() -> None:
    # What a framework that answers every exception with a 500 does inside.
    async def catch_all(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await raw_reader(scope, receive, send)
        except Exception:
            await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)

    response = TestClient(body_limit(catch_all, max_size=50)).post("/", content=chunks(1))
    assert response.status_code == 413
    assert response.text == "Request body larger than 50 bytes"


def test_a_500_unrelated_to_the_limit_goes_through() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("broken", 500)(scope, receive, send)

    response = TestClient(body_limit(failing, max_size=50)).post("/", content=b"x")
    assert (response.status_code, response.text) == (500, "broken")


def test_inner_limit_error_is_not_swallowed_by_outer() -> None:
    app = body_limit(body_limit(raw_reader, max_size=150), max_size=1000)
    assert TestClient(app).post("/", content=chunks(2)).status_code == 413


async def test_exceeding_after_response_started_re_raises() -> None:
    async def late(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            pass

    from tests.conftest import body_receive

    with pytest.raises(RequestBodyTooLarge):
        await run_app(body_limit(late, max_size=1), make_scope("POST"), body_receive(b"ab", b"c"))


def test_through_uvicorn_with_httpx() -> None:
    with serve(body_limit(raw_reader, max_size=100), lifespan="off") as base:
        assert httpx.post(base, content=b"x" * 101).status_code == 413
        assert httpx.post(base, content=chunks(3)).status_code == 413
        assert httpx.post(base, content=b"x" * 100).text == "got 100"
