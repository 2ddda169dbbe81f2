"""The reverse proxy's httpx transport: keep-alive pool, framing, failures.

Against a real uvicorn upstream for the ordinary cases, and a raw socket
server that answers with scripted bytes for the edge cases (a connection
closed between requests, ``Connection: close``, bodiless statuses, garbage).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import anyio.to_thread
import pytest

from asgikit import (
    JSONResponse,
    PlainTextResponse,
    Request,
    Response,
    WebSocket,
    route,
    router,
    websocket_route,
)
from asgikit._httpx import httpx
from asgikit.proxy import reverse_proxy
from asgikit.proxy._streams import _HIGH_WATER, AnyioStream, AsyncioStream
from asgikit.proxy._transport import ProxyTransport
from asgikit.testing import AsyncTestClient, TestClient
from tests.proxy.raw import Handler, RawServer, answer_each, ok, read_request
from tests.servers.live import free_port, serve

# -- the uvicorn upstream ----------------------------------------------------


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {"method": request.method, "size": len(body), "head": body[:20].decode("latin-1")}
    )


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def slow(request: Request) -> Response:
    await anyio.sleep(2)
    return PlainTextResponse("late")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = router(
        route("/echo", echo, methods=["GET", "POST"]), route("/hello", hello), route("/slow", slow)
    )
    with serve(app) as base:
        yield base


def client_for(url: str, **limits: float | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        transport=ProxyTransport(limits=httpx.Limits(**limits)),  # type: ignore[arg-type]
    )


# -- the ordinary path -------------------------------------------------------


async def test_requests_and_bodies_go_through_one_kept_alive_connection(upstream: str) -> None:
    async def upload() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 70000

    transport = ProxyTransport()
    async with httpx.AsyncClient(base_url=upstream, transport=transport) as client:
        hello = await client.get("/hello")
        whole = await client.post("/echo", content=b"abc")
        streamed = await client.post("/echo", content=upload())
        idle = transport._pool.idle_count
    assert hello.text == "hello"
    assert whole.json() == {"method": "POST", "size": 3, "head": "abc"}
    assert streamed.json()["size"] == 280000
    assert idle == 1


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``hello`` under uvicorn over TLS, with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", key, "-out", cert]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            *subject,
            *files,
        ],
        check=True,
        capture_output=True,
    )
    app = router(route("/hello", hello), websocket_route("/ws", echo_once))
    with serve(app, ssl_certfile=cert, ssl_keyfile=key) as base:
        yield base.replace("http://", "https://"), cert


async def test_https_upstream_with_a_verified_certificate(tls_upstream: tuple[str, str]) -> None:
    url, cert = tls_upstream
    trusted = ssl.create_default_context(cafile=cert)
    async with httpx.AsyncClient(base_url=url, transport=ProxyTransport(verify=trusted)) as client:
        answers = [(await client.get("/hello")).text for _ in range(2)]
    assert answers == ["hello", "hello"]
    async with AsyncTestClient(reverse_proxy(url)) as proxied:
        # Not signed by anyone the default trust store knows: refused.
        assert (await proxied.get("/hello")).status_code == 502


async def echo_once(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def test_verify_reaches_a_wss_upstream(tls_upstream: tuple[str, str]) -> None:
    url, cert = tls_upstream
    trusted = ssl.create_default_context(cafile=cert)
    with (
        TestClient(reverse_proxy(url, verify=trusted)) as client,
        client.websocket_connect("/ws") as ws,
    ):
        ws.send_text("over tls")
        assert ws.receive_text() == "over tls"


async def test_slow_upstream_read_times_out(upstream: str) -> None:
    async with httpx.AsyncClient(base_url=upstream, transport=ProxyTransport()) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow", timeout=httpx.Timeout(5, read=0.05))


async def test_refused_connection_is_a_connect_error() -> None:
    async with client_for(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/")


async def test_busy_pool_waits_then_raises_pool_timeout(upstream: str) -> None:
    async with client_for(upstream, max_connections=1) as client:
        async with client.stream("GET", "/hello") as held:
            with pytest.raises(httpx.PoolTimeout):
                await client.get("/hello", timeout=httpx.Timeout(5, pool=0.05))
            await held.aread()
        # Released at the end of the held body: the next request gets it.
        assert (await client.get("/hello")).text == "hello"


async def test_a_waiting_request_gets_the_released_connection(upstream: str) -> None:
    async with client_for(upstream, max_connections=1) as client:
        results: list[str] = []

        async def second() -> None:
            results.append((await client.get("/hello")).text)

        async with anyio.create_task_group() as group, client.stream("GET", "/hello") as held:
            group.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert results == []
            await held.aread()
    assert results == ["hello"]


async def test_many_concurrent_requests_share_a_small_pool(upstream: str) -> None:
    transport = ProxyTransport(limits=httpx.Limits(max_connections=4))
    answers: list[str] = []
    async with httpx.AsyncClient(base_url=upstream, transport=transport) as client:

        async def one() -> None:
            answers.append((await client.get("/hello", timeout=30)).text)

        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(one)
        pool = transport._pool
        counts = (pool._open, pool.idle_count)
    assert answers == ["hello"] * 100
    assert counts == (4, 4)


# -- scripted upstreams ------------------------------------------------------


async def test_chunked_head_and_bodiless_statuses_keep_the_connection(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(
        answer_each(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\none\r\n4\r\n,two\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
            ok(b"last"),
        )
    )
    async with client_for(server.url) as client:
        chunked = await client.get("/")
        head = await client.head("/")
        empty = await client.get("/")
        not_modified = await client.get("/")
        last = await client.get("/")
    assert chunked.content == b"one,two"
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "1000")
    assert (empty.status_code, empty.content) == (204, b"")
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert last.content == b"last"
    assert server.connections == 1


async def test_connection_close_answer_is_not_reused(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(answer_each(ok(b"bye", b"Connection: close\r\n"), then_close=True))
    async with client_for(server.url) as client:
        first = await client.get("/")
        second = await client.get("/")
    assert (first.content, second.content) == (b"bye", b"bye")
    assert server.connections == 2


async def test_body_delimited_by_the_connection_closing(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(answer_each(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", then_close=True))
    async with client_for(server.url) as client:
        first = await client.get("/")
        second = await client.get("/")
    assert (first.content, second.content) == (b"until the end", b"until the end")
    assert server.connections == 2


async def test_a_request_to_another_origin_waits_for_a_slot(
    upstream: str, raw_server: Callable[[Handler], RawServer]
) -> None:
    other = raw_server(answer_each(ok(b"other")))
    transport = ProxyTransport(limits=httpx.Limits(max_connections=1))
    results: list[bytes] = []
    async with httpx.AsyncClient(transport=transport) as client:

        async def second() -> None:
            results.append((await client.get(other.url)).content)

        async with (
            anyio.create_task_group() as group,
            client.stream("GET", f"{upstream}/hello") as held,
        ):
            group.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert results == []
            await held.aread()
        # The first origin's connection made room for the other's.
        assert (await client.get(f"{upstream}/hello")).text == "hello"
    assert results == [b"other"]


def answer_once_then_drop_the_next_request(sock: socket.socket, index: int) -> None:
    # The first connection answers once, then reads the next request and
    # closes without a word: the kept-alive connection passed the check on
    # reuse, and died under the request.  Later connections answer.
    if index == 1:
        read_request(sock)
        sock.sendall(ok(b"one"))
        read_request(sock)
        return
    while read_request(sock):
        sock.sendall(ok(b"%d" % index))


async def test_connection_dying_under_a_request_is_retried_once(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(answer_once_then_drop_the_next_request)
    async with client_for(server.url) as client:
        assert (await client.get("/")).content == b"one"
        # Idempotent, and its body can be sent again.
        assert (await client.put("/", content=b"replayable")).content == b"2"
    assert server.connections == 2


async def test_streamed_post_is_not_retried_on_a_dead_connection(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(answer_once_then_drop_the_next_request)

    async def upload() -> AsyncIterator[bytes]:
        yield b"cannot be sent twice"

    async with client_for(server.url) as client:
        assert (await client.get("/")).content == b"one"
        async with contextlib.aclosing(upload()) as body:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/", content=body)
    assert server.connections == 1


async def test_connection_closed_while_idle_is_found_out_before_reuse(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    def handler(sock: socket.socket, index: int) -> None:
        read_request(sock)
        sock.sendall(ok(b"%d" % index))
        if index > 1:
            while read_request(sock):
                sock.sendall(ok(b"%d" % index))

    server = raw_server(handler)

    async def upload() -> AsyncIterator[bytes]:
        yield b"not replayable"

    async with client_for(server.url) as client:
        assert (await client.get("/")).content == b"1"
        assert await anyio.to_thread.run_sync(server.closed.wait, 5)
        # A streamed POST is never retried: it works only because the dead
        # connection was found out before anything was sent on it.
        assert (await client.post("/", content=upload())).content == b"2"


# httpx's own response iterators are async generators that trio reports when
# a response is left half-way, as here (encode/httpx#3686).
@pytest.mark.filterwarnings("ignore:Async generator 'httpx:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_response_closed_before_its_end_closes_the_connection(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(answer_each(ok(b"x" * 100000)))
    async with client_for(server.url) as client:
        async with (
            client.stream("GET", "/") as response,
            contextlib.aclosing(response.aiter_raw()) as chunks,
        ):
            await anext(chunks)
        assert len((await client.get("/")).content) == 100000
    assert server.connections == 2
    gc.collect()  # while the filters above still apply


async def test_expired_connections_are_not_reused(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(answer_each(ok()))
    async with client_for(server.url, keepalive_expiry=0.0) as client:
        for _ in range(3):
            assert (await client.get("/")).content == b"ok"
    assert server.connections == 3


async def test_garbage_is_a_remote_protocol_error_and_a_502(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(answer_each(b"this is not HTTP\r\n\r\n", then_close=True))
    async with client_for(server.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")
    async with AsyncTestClient(reverse_proxy(server.url)) as proxied:
        response = await proxied.get("/")
    assert response.status_code == 502


async def test_body_cut_short_is_a_remote_protocol_error(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(
        answer_each(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", then_close=True)
    )
    async with client_for(server.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")


async def test_bytes_the_event_loop_queued_on_an_idle_connection_close_it(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # The race in slow motion: stray bytes reach an idle connection and, on
    # asyncio, the event loop reads them into the stream's buffer (as it may
    # when they land just as a response ends), where a poll of the socket misses them.
    go, stray = threading.Event(), threading.Event()

    def handler(sock: socket.socket, index: int) -> None:
        while read_request(sock):
            sock.sendall(ok(b"genuine"))
            if index == 1 and go.wait(5):
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
                stray.set()

    server = raw_server(handler)
    transport = ProxyTransport()
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        assert (await client.get("/")).content == b"genuine"
        go.set()
        assert await anyio.to_thread.run_sync(stray.wait, 5)
        (idle,) = transport._pool._idle[(b"http", b"127.0.0.1", int(server.url.rsplit(":", 1)[1]))]
        if isinstance(idle.stream, AsyncioStream):
            with anyio.fail_after(5):
                while idle.stream.buffered < len(b"SMUGGLED"):
                    await anyio.sleep(0.01)  # the loop reads them in while we wait
        assert (await client.get("/")).content == b"genuine"
    assert server.connections == 2


# -- the asyncio stream ----------------------------------------------------------


def _origin(server: RawServer) -> tuple[bytes, bytes, int]:
    return (b"http", b"127.0.0.1", int(server.url.rsplit(":", 1)[1]))


async def test_connections_run_on_the_transports_own_protocol_on_asyncio(
    raw_server: Callable[[Handler], RawServer], anyio_backend: str
) -> None:
    server = raw_server(answer_each(ok(b"hi")))
    transport = ProxyTransport()
    _, body = await transport.send_head(
        _origin(server), "GET", b"/", [(b"host", b"upstream")], b"", {}
    )
    assert [chunk async for chunk in body] == [b"hi"]
    (idle,) = transport._pool._idle[_origin(server)]
    expected = AsyncioStream if anyio_backend == "asyncio" else AnyioStream
    assert isinstance(idle.stream, expected)
    await transport.aclose()


async def test_a_large_response_read_slowly_is_held_only_up_to_the_high_water_mark(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # The stream reads as data comes: unless it pauses the socket, a client
    # that reads slowly would have the whole body pile up in memory.
    size = 16 * 1024 * 1024
    server = raw_server(answer_each(ok(b"x" * size)))
    transport = ProxyTransport()
    with anyio.fail_after(20):
        _, body = await transport.send_head(
            _origin(server), "GET", b"/", [(b"host", b"upstream")], b"", {}
        )
        received = len(await anext(body))
        connection = body._connection
        assert connection is not None
        stream = connection.stream
        if isinstance(stream, AsyncioStream):
            while not stream._reading_paused:
                await anyio.sleep(0.01)  # the loop reads until the mark, then pauses
            assert stream.buffered <= _HIGH_WATER + 1024 * 1024
        async for chunk in body:
            received += len(chunk)
    assert received == size
    await transport.aclose()


class _Pipe:
    """The little of an asyncio transport that a paused write touches."""

    def __init__(self) -> None:
        self.written = b""

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written += data


async def test_a_write_waiting_for_room_fails_when_the_connection_closes_cleanly(
    anyio_backend: str,
) -> None:
    # A write paused on a full buffer must not wait out its whole timeout
    # (or forever, without one) for a connection already gone.
    if anyio_backend != "asyncio":
        pytest.skip("the asyncio stream")
    loop = asyncio.get_running_loop()
    stream = AsyncioStream(loop)
    stream.connection_made(_Pipe())  # type: ignore[arg-type]
    stream.pause_writing()
    loop.call_soon(stream.connection_lost, None)
    with anyio.fail_after(5), pytest.raises(httpx.WriteError):
        await stream.send(b"body", None)
