"""reverse_proxy over HTTP, against real upstreams on loopback.

Upstreams: an asgikit app under uvicorn (in a thread) and a plain
``http.server`` for a non-ASGI one.  The proxy is driven through the
TestClient and through a real uvicorn in front of it.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import hashlib
import http.server
import importlib
import threading
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from asgikit import (
    JSONResponse,
    PlainTextResponse,
    Request,
    Response,
    StreamingResponse,
    WebSocket,
    mount,
    route,
    router,
    websocket_route,
)
from asgikit._httpx import httpx
from asgikit.exceptions import ClientDisconnect
from asgikit.middleware.body_limit import body_limit
from asgikit.proxy import reverse_proxy
from asgikit.testing import AsyncTestClient, TestClient
from tests.conftest import make_scope, run_app
from tests.servers.live import free_port, serve, serve_process

CHUNK = b"x" * 65536
GATES: dict[str, threading.Event] = {}
FINALLY: dict[str, threading.Event] = {}
OUTCOME: dict[str, str] = {}


def gate(token: str) -> threading.Event:
    return GATES.setdefault(token, threading.Event())


# -- the asgikit upstream ----------------------------------------------------


async def echo(request: Request) -> Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    scope = request.scope
    return JSONResponse(
        {
            "method": request.method,
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "size": size,
            "sha256": digest.hexdigest(),
        }
    )


async def gated(request: Request) -> Response:
    """``first``, then waits for the test to release it: ``released`` (or ``timeout``)."""
    event = gate(request.query_params["token"])

    async def body() -> AsyncIterator[bytes]:
        yield b"first\n"
        released = await anyio.to_thread.run_sync(event.wait, 5)
        yield b"released\n" if released else b"timeout\n"

    return StreamingResponse(body())


async def gated_upload(request: Request) -> Response:
    """Releases the test's gate on the first body chunk, then reads the rest."""
    event = gate(request.query_params["token"])
    parts = []
    async for chunk in request.stream():
        event.set()
        parts.append(chunk)
    headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]]
    return JSONResponse({"body": b"".join(parts).decode(), "headers": headers})


async def upload_watch(request: Request) -> Response:
    """Releases the gate on the first chunk; its ``finally`` runs however the upload ends."""
    token = request.query_params["token"]
    done = FINALLY.setdefault(token, threading.Event())
    OUTCOME[token] = "complete"
    try:
        async for _ in request.stream():
            gate(token).set()
    except ClientDisconnect:
        OUTCOME[token] = "disconnected"
        return PlainTextResponse("gone")
    finally:
        done.set()
    return PlainTextResponse("complete")


async def forever(request: Request) -> Response:
    done = FINALLY.setdefault(request.query_params["token"], threading.Event())

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"tick\n"
                await anyio.sleep(0.01)
        finally:
            done.set()

    return StreamingResponse(body())


async def big(request: Request) -> Response:
    size = int(request.query_params["size"])

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(CHUNK)):
            yield CHUNK

    return StreamingResponse(body(), media_type="application/octet-stream")


async def cookies(request: Request) -> Response:
    compressed = gzip.compress(b"hello " * 100)
    response = Response(compressed, media_type="text/plain")
    response.headers["content-encoding"] = "gzip"
    response.headers.append("set-cookie", "a=1; Path=/")
    response.headers.append("set-cookie", "b=2; Path=/")
    response.headers["x-hop"] = "dropped"
    response.headers["connection"] = "x-hop"
    response.headers["keep-alive"] = "timeout=5"
    response.headers["x-end"] = "kept"
    return response


async def slow(request: Request) -> Response:
    await anyio.sleep(1)
    return PlainTextResponse("late")


async def status(request: Request) -> Response:
    return PlainTextResponse("teapot", status_code=418)


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


UPSTREAM = router(
    websocket_route("/ws-echo", ws_echo),
    route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    route("/gated", gated),
    route("/gated-upload", gated_upload, methods=["POST"]),
    route("/forever", forever),
    route("/upload-watch", upload_watch, methods=["POST"]),
    route("/big", big),
    route("/cookies", cookies),
    route("/slow", slow),
    route("/teapot", status),
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve(UPSTREAM) as base:
        yield base


# -- a plain http.server upstream -------------------------------------------


class PlainHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PlainServer

    def do_GET(self) -> None:
        self.server.ports.add(self.client_address[1])
        if self.path == "/fixed":
            body = b"a fixed-length body"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one,", b"two,", b"three"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten b")
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PlainServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), PlainHandler)
        self.ports: set[int] = set()


@pytest.fixture(scope="module")
def plain() -> Iterator[PlainServer]:
    server = PlainServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def plain_url(server: PlainServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


# -- forwarding --------------------------------------------------------------


def test_forwards_method_raw_path_below_root_path_query_and_body(upstream: str) -> None:
    app = router(mount("/api", reverse_proxy(upstream + "/echo/v1")))
    with TestClient(app) as client:
        response = client.put("/api/a%2Fb/c%20d?x=1&y=%2F", content=b"payload")
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "PUT"
    assert seen["raw_path"] == "/echo/v1/a%2Fb/c%20d"
    assert seen["query"] == "x=1&y=%2F"
    assert seen["size"] == len(b"payload")


def test_rewrite_path_maps_the_path_below_root_path(upstream: str) -> None:
    app = reverse_proxy(upstream, rewrite_path=lambda path: "/echo" + path.replace("/old", "/new"))
    with TestClient(app) as client:
        seen = client.get("/old/x").json()
    assert seen["raw_path"] == "/echo/new/x"


def test_upstream_status_and_head_pass_through(upstream: str) -> None:
    with TestClient(reverse_proxy(upstream)) as client:
        teapot = client.get("/teapot")
        head = client.head("/teapot")
    assert (teapot.status_code, teapot.text) == (418, "teapot")
    assert (head.status_code, head.content) == (418, b"")


async def test_response_streams_down_before_the_upstream_finishes(upstream: str) -> None:
    token = uuid.uuid4().hex
    async with (
        AsyncTestClient(reverse_proxy(upstream)) as client,
        client.stream("GET", "/gated", params={"token": token}) as response,
        contextlib.aclosing(response.aiter_raw()) as chunks,
    ):
        first = await anext(chunks)
        # The upstream is still waiting for this: a buffering proxy would
        # only have delivered "first" after the upstream timed out.
        gate(token).set()
        rest = b"".join([chunk async for chunk in chunks])
    assert first == b"first\n"
    assert rest == b"released\n"


def test_request_body_streams_up_before_the_client_finishes(upstream: str) -> None:
    token = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        yield b"start;"
        # Sent only once the upstream has the first chunk (or 5 s passed).
        yield b"released" if gate(token).wait(5) else b"timeout"

    with serve(reverse_proxy(upstream)) as front:
        seen = httpx.post(f"{front}/gated-upload", params={"token": token}, content=body()).json()
    assert seen["body"] == "start;released"
    # No length was known when the request went up: it was sent chunked.
    assert ["transfer-encoding", "chunked"] in seen["headers"]


def test_a_whole_body_goes_up_with_its_length_and_no_body_without_framing(upstream: str) -> None:
    with serve(reverse_proxy(upstream)) as front:
        fixed = httpx.post(f"{front}/echo/x", content=b"abcd").json()
        empty = httpx.get(f"{front}/echo/x").json()
    assert ["content-length", "4"] in fixed["headers"]
    assert fixed["size"] == 4
    assert not any(k in ("content-length", "transfer-encoding") for k, _ in empty["headers"])


def test_fixed_length_and_chunked_responses_from_a_plain_http_server(plain: PlainServer) -> None:
    with serve(reverse_proxy(plain_url(plain))) as front, httpx.Client() as client:
        fixed = client.get(f"{front}/fixed")
        chunked = client.get(f"{front}/chunked")
        missing = client.get(f"{front}/missing")
    assert fixed.content == b"a fixed-length body"
    assert fixed.headers["content-length"] == str(len(fixed.content))
    assert chunked.content == b"one,two,three"
    assert chunked.headers.get_list("transfer-encoding") == ["chunked"]
    assert missing.status_code == 404


def test_upstream_connections_are_kept_alive(plain: PlainServer) -> None:
    plain.ports.clear()
    with TestClient(reverse_proxy(plain_url(plain))) as client:
        bodies = [client.get("/fixed").content for _ in range(5)]
    assert bodies == [b"a fixed-length body"] * 5
    assert len(plain.ports) == 1


def test_upstream_failing_mid_body_leaves_the_response_incomplete(plain: PlainServer) -> None:
    with serve(reverse_proxy(plain_url(plain))) as front, httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{front}/truncated")
        # The proxy is still fine afterwards.
        assert client.get(f"{front}/fixed").status_code == 200


def test_content_encoding_passes_raw_and_set_cookie_stays_repeated(upstream: str) -> None:
    with (
        serve(reverse_proxy(upstream)) as front,
        httpx.Client() as client,
        client.stream("GET", f"{front}/cookies") as response,
    ):
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == b"hello " * 100
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers["x-end"] == "kept"
    assert "x-hop" not in response.headers
    assert "keep-alive" not in response.headers


def test_large_bodies_stream_both_ways_with_flat_memory(upstream: str) -> None:
    size = 200 * 1024 * 1024
    sent = hashlib.sha256()

    def upload() -> Iterator[bytes]:
        for _ in range(size // len(CHUNK)):
            sent.update(CHUNK)
            yield CHUNK

    with TestClient(reverse_proxy(upstream)) as client:
        tracemalloc.start()
        try:
            received = 0
            with client.stream("GET", "/big", params={"size": size}) as response:
                for chunk in response.iter_raw():
                    received += len(chunk)
            seen = client.post("/echo/upload", content=upload()).json()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received == size
    assert (seen["size"], seen["sha256"]) == (size, sent.hexdigest())
    # 400 MiB went through; a buffering proxy would have peaked above 200 MiB.
    assert peak < 16 * 1024 * 1024


# -- failures are answers ----------------------------------------------------


def test_unreachable_upstream_is_502() -> None:
    with TestClient(reverse_proxy(f"http://127.0.0.1:{free_port()}")) as client:
        response = client.get("/anything")
    assert response.status_code == 502
    assert response.text.startswith("Bad Gateway")


async def test_slow_upstream_is_504(upstream: str) -> None:
    async with AsyncTestClient(reverse_proxy(upstream, timeout=0.1)) as client:
        response = await client.get("/slow")
    assert response.status_code == 504
    assert response.text.startswith("Gateway Timeout")


def test_client_disconnect_cancels_the_upstream_and_frees_the_connection(upstream: str) -> None:
    token = uuid.uuid4().hex
    proxy = reverse_proxy(upstream, max_connections=1, pool_timeout=5)
    with serve(proxy) as front, httpx.Client() as client:
        with client.stream("GET", f"{front}/forever", params={"token": token}) as response:
            assert next(response.iter_lines()) == "tick"
        # Leaving the block closed the connection: the upstream generator stops...
        assert FINALLY[token].wait(5)
        # ...and the proxy's only upstream connection is free again.
        assert client.get(f"{front}/echo/after").status_code == 200


def test_client_leaving_mid_upload_cancels_the_upstream_request(upstream: str) -> None:
    token = uuid.uuid4().hex

    class Abandoned(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"first chunk"
        assert gate(token).wait(5)  # the upstream is reading the body
        raise Abandoned  # httpx drops the connection mid-body

    with serve(reverse_proxy(upstream)) as front, pytest.raises(Abandoned):
        httpx.post(f"{front}/upload-watch", params={"token": token}, content=body())
    assert FINALLY[token].wait(5)
    # Cut off, not handed a shorter body that looks complete.
    assert OUTCOME[token] == "disconnected"


# httpx's response streams are async generators that trio reports when they
# are dropped half-way, as they are on a disconnect (encode/httpx#3686).
@pytest.mark.filterwarnings("ignore:Async generator 'httpx:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_client_disconnect_through_the_test_client(upstream: str) -> None:
    token = uuid.uuid4().hex
    proxy = reverse_proxy(upstream, max_connections=1, pool_timeout=5)
    async with AsyncTestClient(proxy) as client:
        async with (
            client.stream("GET", "/forever", params={"token": token}) as response,
            contextlib.aclosing(response.aiter_raw()) as chunks,
        ):
            assert (await anext(chunks)).startswith(b"tick")
        assert await anyio.to_thread.run_sync(FINALLY[token].wait, 5)
        assert (await client.get("/echo/after")).status_code == 200
    gc.collect()  # while the filters above still apply


# -- the shared client -------------------------------------------------------


async def test_without_lifespan_the_client_is_made_on_first_use(upstream: str) -> None:
    proxy: Any = reverse_proxy(upstream)
    first = await run_app(proxy, make_scope(path="/teapot"))
    client = proxy._client
    second = await run_app(proxy, make_scope(path="/teapot"))
    assert (first.status, second.status) == (418, 418)
    assert proxy._client is client  # one pool for both requests
    await proxy.aclose()
    assert client.is_closed


# Each request without `with` runs on a new event loop; the connection pooled
# on the previous, now closed, loop can no longer be closed and is reported.
@pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_without_lifespan_a_new_event_loop_gets_a_new_client(upstream: str) -> None:
    proxy: Any = reverse_proxy(upstream)
    client = TestClient(proxy)  # no `with`: one event loop per request
    assert client.get("/teapot").status_code == 418
    first = proxy._client
    assert client.get("/teapot").status_code == 418
    assert proxy._client is not first
    del client, proxy, first
    gc.collect()  # while the filters above still apply


async def test_a_client_passed_in_is_used_and_left_open(upstream: str) -> None:
    hits: list[str] = []

    async def record(request: httpx.Request) -> None:
        hits.append(str(request.url))

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as own:
        async with AsyncTestClient(reverse_proxy(upstream, client=own)) as client:
            assert (await client.get("/teapot")).status_code == 418
        assert not own.is_closed
    assert hits == [f"{upstream}/teapot"]


def test_lifespan_reaches_the_proxy_through_a_router_and_middleware(upstream: str) -> None:
    proxy: Any = reverse_proxy(upstream)
    app = router(mount("/api", body_limit(proxy, max_size=100)))
    with TestClient(app) as client:
        opened = proxy._client  # opened by the startup, before any request
        assert opened is not None
        assert client.get("/api/teapot").status_code == 418
        assert proxy._client is opened
    assert opened.is_closed


def test_lifespan_closes_the_client_it_opened(upstream: str) -> None:
    proxy: Any = reverse_proxy(upstream)
    with TestClient(proxy) as client:
        assert client.get("/teapot").status_code == 418
        opened = proxy._client
        assert opened is not None
    assert opened.is_closed


def test_forwarded_request_headers_through_uvicorn(upstream: str) -> None:
    with serve(reverse_proxy(upstream)) as front:
        seen = httpx.get(
            f"{front}/echo/h",
            headers={"connection": "keep-alive, x-private", "x-private": "1", "x-public": "2"},
        ).json()
    names = [name for name, _ in seen["headers"]]
    assert "x-private" not in names
    assert "connection" not in names
    assert ["x-public", "2"] in seen["headers"]
    assert ["x-forwarded-for", "127.0.0.1"] in seen["headers"]
    host = front.removeprefix("http://")
    assert ["forwarded", f'for=127.0.0.1;host="{host}";proto=http'] in seen["headers"]


# -- the example gateway -----------------------------------------------------


def test_example_gateway(upstream: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_API_UPSTREAM", upstream)
    monkeypatch.setenv("GATEWAY_WS_UPSTREAM", upstream)
    monkeypatch.setenv("GATEWAY_ALLOW_ORIGINS", "https://app.example")
    monkeypatch.setenv("GATEWAY_MAX_BODY", "10")
    gateway = importlib.reload(importlib.import_module("examples.gateway"))
    origin = {"origin": "https://app.example"}
    with TestClient(gateway.app) as client:
        assert client.get("/").text.startswith("gateway")
        proxied = client.get("/api/echo/users?id=1", headers=origin)
        preflight = client.options(
            "/api/echo/users",
            headers={**origin, "access-control-request-method": "PUT"},
        )
        too_big = client.post("/api/echo/users", content=b"x" * 11)
        with client.websocket_connect("/ws/ws-echo") as ws:
            ws.send_text("through the gateway")
            echoed = ws.receive_text()
    assert proxied.json()["raw_path"] == "/echo/users"
    assert proxied.json()["query"] == "id=1"
    assert proxied.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.status_code == 200
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert too_big.status_code == 413
    assert echoed == "through the gateway"


def test_example_gateway_under_hypercorn_on_trio(upstream: str) -> None:
    env = {"GATEWAY_API_UPSTREAM": upstream, "GATEWAY_WS_UPSTREAM": upstream}
    args = ["--worker-class", "trio"]
    with (
        serve_process(
            "examples.gateway:app", server="hypercorn", args=args, env=env, probe="/healthz"
        ) as front,
        httpx.Client() as client,
    ):
        proxied = client.post(f"{front}/api/echo/x?y=1", content=b"hello")
        with client.stream("GET", f"{front}/api/big", params={"size": 4 * len(CHUNK)}) as big:
            size = sum(len(chunk) for chunk in big.iter_raw())
    assert proxied.json()["raw_path"] == "/echo/x"
    assert proxied.json()["size"] == 5
    assert size == 4 * len(CHUNK)


@pytest.mark.parametrize("raw_path", [None, b"/a%ED%A0%80"])
def test_a_path_with_a_lone_surrogate_is_percent_encoded_upstream(raw_path: bytes | None) -> None:
    from asgikit.proxy._config import raw_path_below_root
    from tests.conftest import make_scope

    scope = make_scope()
    scope["path"] = "/a\ud800"  # what a server decoding with "surrogatepass" would give
    if raw_path is None:
        del scope["raw_path"]
    else:
        scope["raw_path"] = raw_path
    assert raw_path_below_root(scope) == "/a%ED%A0%80"


async def test_dot_segments_never_climb_out_of_the_upstream_base_path() -> None:
    # URL libraries (httpx too) resolve "/v1/../admin" to "/admin": a gateway
    # must refuse such a path instead of forwarding it.  Driven by hand, since
    # an HTTP client would itself resolve the dots before sending.
    from asgikit.proxy import reverse_proxy
    from asgikit.routing import mount, router

    app = router(mount("/api", reverse_proxy("http://127.0.0.1:9/v1")))
    for path, raw in (
        ("/api/../admin", b"/api/../admin"),
        ("/api/../admin", b"/api/%2e%2e/admin"),
        ("/api/./x", b"/api/./x"),
        ("/api/a/../../b", b"/api/a/%2E%2E/%2E%2E/b"),
    ):
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object], sent: list[Any] = sent) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": raw,
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"gateway")],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "scheme": "http",
        }
        await app(scope, receive, send)
        assert sent[0]["status"] == 400, raw
