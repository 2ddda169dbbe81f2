"""All fourteen middleware in one ``stack()``: each still does its job among the others.

The same checks run through the in-process TestClient and through a real
uvicorn with httpx (and a real WebSocket client).  ``server_errors`` sits
inside ``cors``, so a 500 still carries the CORS headers; ``proxy_headers``
sits outermost, so ``X-Forwarded-Proto: https`` from the (trusted) loopback
peer satisfies ``https_redirect`` behind it.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from asgikit.composition import stack
from asgikit.middleware.body_limit import body_limit
from asgikit.middleware.compress import compress
from asgikit.middleware.cors import cors
from asgikit.middleware.csrf import csrf
from asgikit.middleware.exception_handlers import exception_handlers
from asgikit.middleware.https_redirect import https_redirect
from asgikit.middleware.proxy_headers import proxy_headers
from asgikit.middleware.request_id import request_id
from asgikit.middleware.security_headers import security_headers
from asgikit.middleware.server_errors import server_errors
from asgikit.middleware.sessions import sessions
from asgikit.middleware.timing import timing
from asgikit.middleware.trusted_host import trusted_host
from asgikit.middleware.websocket_origin import websocket_origin
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.routing import route, router, websocket_route
from asgikit.testing import TestClient, WebSocketDenialResponse
from asgikit.types import ASGIApp
from asgikit.websockets import WebSocket
from tests.servers.live import serve

SITE = "https://site.example"
EVIL = "https://evil.example"
BIG = ["some repeated text"] * 100


async def data(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "items": BIG,
            "scheme": request.url.scheme,
            "client": request.client.host if request.client else None,
            "request_id": request.scope.get("asgikit.request_id"),
        }
    )


async def visit(request: Request) -> JSONResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JSONResponse(dict(request.session))


async def upload(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("boom")


async def lookup(request: Request) -> JSONResponse:
    raise KeyError("missing")


async def on_lookup(request: Request, exc: Exception) -> ASGIApp:
    return PlainTextResponse("not found here", 409)


async def greet(socket: WebSocket) -> None:
    await socket.accept()
    await socket.send_text("hi")
    await socket.close()


def full_stack() -> ASGIApp:
    return stack(
        proxy_headers(trusted_hosts=["127.0.0.1"]),
        trusted_host(allowed_hosts=["testserver", "127.0.0.1"]),
        https_redirect(),
        request_id(),
        timing(),
        security_headers(hsts_max_age=3600),
        cors(allow_origins=[SITE], allow_methods=["GET", "POST"], allow_headers=["x-csrf-token"]),
        server_errors(),
        exception_handlers(handlers={LookupError: on_lookup}),
        sessions(secret_key="s" * 32),
        csrf(secret_key="c" * 32, trusted_origins=[SITE]),
        websocket_origin(allowed_origins=[SITE]),
        body_limit(max_size=1000),
        compress(minimum_size=100),
        router(
            route("/data", data),
            route("/visit", visit),
            route("/upload", upload, methods=["POST"]),
            route("/boom", boom),
            route("/lookup", lookup),
            websocket_route("/ws", greet),
        ),
    )


def check_http(client: httpx.Client) -> None:
    """What every middleware of the stack does, over https (or forwarded as https)."""
    response = client.get("/data", headers={"origin": SITE, "accept-encoding": "gzip"})
    assert response.status_code == 200
    body = response.json()
    assert body["items"] == BIG
    # proxy_headers + https_redirect: the forwarded scheme is believed, no redirect.
    assert body["scheme"] == "https"
    assert body["client"] == "127.0.0.1"
    # request_id: the same id in the scope and on the response.
    assert response.headers["x-request-id"] == body["request_id"]
    # timing, security_headers (HSTS only over https), cors, compress.
    assert re.fullmatch(r"app;dur=\d+(\.\d+)?", response.headers["server-timing"])
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["strict-transport-security"] == "max-age=3600"
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["content-encoding"] == "gzip"
    assert {"Origin", "Accept-Encoding"} <= {
        v.strip() for v in response.headers["vary"].split(",")
    }
    # csrf: the first answer hands out the token cookie.
    token = client.cookies["csrftoken"]

    preflight = client.options(
        "/upload",
        headers={
            "origin": SITE,
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-csrf-token",
        },
    )
    assert preflight.status_code == 200
    assert "x-csrf-token" in preflight.headers["access-control-allow-headers"]

    # trusted_host
    assert client.get("/data", headers={"host": "example.com.evil.com"}).status_code == 400

    # sessions: a round trip through the signed cookie.
    assert client.get("/visit").json() == {"visits": 1}
    assert client.get("/visit").json() == {"visits": 2}

    # csrf, then body_limit by Content-Length and while streaming.
    assert client.post("/upload", content=b"x").status_code == 403
    assert client.post("/upload", content=b"x", headers={"origin": EVIL}).status_code == 403
    csrf_header = {"x-csrf-token": token}
    assert client.post("/upload", content=b"x" * 10, headers=csrf_header).json() == {"size": 10}
    assert client.post("/upload", content=b"x" * 1001, headers=csrf_header).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b"x" * 400

    assert client.post("/upload", content=chunks(), headers=csrf_header).status_code == 413

    # server_errors inside cors: the 500 carries the CORS headers.  The error
    # is re-raised for the server to log, and uvicorn then closes the
    # connection: ask for that up front so the client does not reuse it.
    failed = client.get("/boom", headers={"origin": SITE, "connection": "close"})
    assert failed.status_code == 500
    assert failed.text == "Internal Server Error"
    assert failed.headers["access-control-allow-origin"] == SITE
    assert "x-request-id" in failed.headers
    # exception_handlers
    handled = client.get("/lookup", headers={"origin": SITE})
    assert (handled.status_code, handled.text) == (409, "not found here")
    assert handled.headers["access-control-allow-origin"] == SITE


def test_all_fourteen_in_one_stack_through_the_test_client() -> None:
    with TestClient(
        full_stack(),
        base_url="https://testserver",
        client=("127.0.0.1", 5000),
        follow_redirects=False,
        raise_server_exceptions=False,
    ) as client:
        check_http(client)
        # https_redirect for plain http.
        redirect = client.get("http://testserver/data?a=1")
        assert redirect.status_code == 307
        assert redirect.headers["location"] == "https://testserver/data?a=1"
        # websocket_origin
        with client.websocket_connect("wss://testserver/ws", headers={"origin": SITE}) as ws:
            assert ws.receive_text() == "hi"
        with (
            pytest.raises(WebSocketDenialResponse) as denied,
            client.websocket_connect("wss://testserver/ws", headers={"origin": EVIL}),
        ):
            pass
        assert denied.value.status_code == 403


def test_all_fourteen_in_one_stack_through_uvicorn() -> None:
    with serve(full_stack(), lifespan="off") as base:
        forwarded = {"x-forwarded-proto": "https"}
        with httpx.Client(base_url=base, headers=forwarded) as client:
            check_http(client)
        redirect = httpx.get(base + "/data?a=1")
        assert redirect.status_code == 307
        assert redirect.headers["location"] == base.replace("http:", "https:") + "/data?a=1"
        # Streamed from the server: gzip bytes on the wire, Content-Length fixed.
        with httpx.stream(
            "GET", base + "/data", headers={**forwarded, "accept-encoding": "gzip"}
        ) as response:
            raw = b"".join(response.iter_raw())
        assert int(response.headers["content-length"]) == len(raw)
        assert gzip.decompress(raw).startswith(b'{"items":')

        ws_url = base.replace("http:", "ws:") + "/ws"
        with ws_connect(ws_url, origin=SITE, additional_headers=forwarded) as ws:  # type: ignore[arg-type]
            assert ws.recv(timeout=5) == "hi"
        with pytest.raises(InvalidStatus) as denied:
            ws_connect(ws_url, origin=EVIL, additional_headers=forwarded)  # type: ignore[arg-type]
        assert denied.value.response.status_code == 403
