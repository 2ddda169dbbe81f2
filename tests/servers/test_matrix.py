"""The server matrix: one conformance app under every major ASGI server.

``tests/servers/conformance_app.py`` runs under each server below, started
once per server in a subprocess on a free loopback port, and is spoken to
with httpx, ``curl`` and the ``websockets`` client.  Run just this with
``pytest -m servers``.

Servers (the id is the test parameter):

    id                 command besides host/port              event loop
    uvicorn-httptools  uvicorn --http httptools               asyncio (uvloop);
                       (WebSockets: websockets-sansio, the default)
    uvicorn-h11        uvicorn --http h11 --ws wsproto        asyncio (uvloop)
    hypercorn-asyncio  hypercorn --worker-class asyncio       asyncio
    hypercorn-trio     hypercorn --worker-class trio          trio
    granian            granian --interface asgi               asyncio, Rust I/O
    daphne             daphne                                 asyncio on Twisted

Known gaps.  Each is the server's, and each is an ``xfail(strict=True)``
(see ``GAPS``), so the day a server closes one the matrix says so:

    server      lacks                               so an asgikit app...
    daphne 4.2  the lifespan protocol: it never     runs no lifespan handler; no
                sends lifespan.startup              lifespan state reaches
                                                    request.state / websocket.state
    daphne 4.2  the websocket.http.response         refuses handshakes (deny(), the
                extension                           router's 404) with a close
                                                    before accept: a bare 403
    daphne 4.2  the reason of websocket.close       closes with the code; the
                                                    client sees an empty reason

Extensions each server advertises (pinned by ``test_advertised_extensions``):
only granian offers ``http.response.pathsend``, which ``FileResponse`` and
``static_files`` use when a whole file is sent; elsewhere they read the file
in chunks themselves.  All but daphne offer ``websocket.http.response``.

Not a gap, but noise: uvicorn's default ``websockets-sansio`` protocol logs
"ASGI callable returned without completing handshake" after an app refused
a handshake with a ``websocket.http.response`` (the client gets the right
response; uvicorn does not count a denial as a finished handshake).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.servers.live import serve_process

pytestmark = pytest.mark.servers

APP = "tests.servers.conformance_app:app"
DATA = bytes(range(256)) * 1024  # what conformance_app writes to data.bin
TIMEOUT = 10.0

SERVERS: dict[str, tuple[str, list[str]]] = {
    "uvicorn-httptools": ("uvicorn", ["--http", "httptools"]),
    "uvicorn-h11": ("uvicorn", ["--http", "h11", "--ws", "wsproto"]),
    "hypercorn-asyncio": ("hypercorn", ["--worker-class", "asyncio"]),
    "hypercorn-trio": ("hypercorn", ["--worker-class", "trio"]),
    "granian": ("granian", ["--log-level", "warning"]),
    "daphne": ("daphne", ["-v", "0"]),
}

LIFESPAN = "daphne does not implement the ASGI lifespan protocol"
WS_HTTP_RESPONSE = "daphne lacks the websocket.http.response extension: refusals are a bare 403"
CLOSE_REASON = "daphne drops the reason of websocket.close"

#: Known gaps: test name -> {server id: reason}.  Applied as strict xfails.
GAPS: dict[str, dict[str, str]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def gap(**servers: str) -> Callable[[F], F]:
    """Record that the decorated test is known to fail on these servers, and why."""

    def decorate(func: F) -> F:
        GAPS[func.__name__] = {name.replace("_", "-"): reason for name, reason in servers.items()}
        return func

    return decorate


@pytest.fixture(scope="module", params=list(SERVERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """``(server id, base URL)`` of the conformance app under one server."""
    name = str(request.param)
    kind, args = SERVERS[name]
    directory = tmp_path_factory.mktemp(f"conformance-{name}")
    env = {"ASGIKIT_CONFORMANCE_DIR": str(directory)}
    with serve_process(APP, server=kind, args=args, env=env) as url:
        yield name, url


@pytest.fixture(autouse=True)
def _known_gaps(request: pytest.FixtureRequest, server: tuple[str, str]) -> None:
    reason = GAPS.get(request.function.__name__, {}).get(server[0])
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture
def base_url(server: tuple[str, str]) -> str:
    return server[1]


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as http:
        yield http


@pytest.fixture
def features(client: httpx.Client) -> dict[str, bool]:
    result: dict[str, bool] = client.get("/features").json()
    return result


def need(features: dict[str, bool], name: str) -> None:
    if not features.get(name):
        pytest.skip(f"{name} is not importable yet")


def ws_url(base: str, path: str) -> str:
    return "ws" + base.removeprefix("http") + path


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run curl; ``-sS`` quiet but with errors, ``--fail-with-body`` off (we check codes)."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", str(TIMEOUT), *args],
        capture_output=True,
        timeout=TIMEOUT + 5,
        check=True,
    )


# -- what the server offers -------------------------------------------------------

EXPECTED_EXTENSIONS = {
    # server id: (HTTP scope extensions, WebSocket scope extensions)
    "uvicorn-httptools": ([], ["websocket.http.response"]),
    "uvicorn-h11": ([], ["websocket.http.response"]),
    "hypercorn-asyncio": ([], ["websocket.http.response"]),
    "hypercorn-trio": ([], ["websocket.http.response"]),
    # granian puts one extensions dict in every scope, HTTP and WebSocket alike.
    "granian": (["http.response.pathsend", "websocket.http.response"],) * 2,
    "daphne": ([], []),
}


def test_advertised_extensions(server: tuple[str, str], client: httpx.Client) -> None:
    name, base = server
    http_extensions, ws_extensions = EXPECTED_EXTENSIONS[name]
    assert client.get("/scope").json()["extensions"] == http_extensions
    with connect(ws_url(base, "/ws/state/x"), open_timeout=TIMEOUT) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT))["extensions"] == ws_extensions


# -- lifespan ---------------------------------------------------------------------


@gap(daphne=LIFESPAN)
def test_lifespan_state_reaches_every_request(client: httpx.Client) -> None:
    first = client.get("/state").json()
    second = client.get("/state").json()
    assert first["started"] == "yes"
    # The yielded dict is shared (shallow copy per request), so the list grows.
    assert second["hits"] == first["hits"] + 1


@gap(daphne=LIFESPAN)
def test_lifespan_state_reaches_websockets(base_url: str) -> None:
    with connect(ws_url(base_url, "/ws/state/lobby"), open_timeout=TIMEOUT) as ws:
        message = json.loads(ws.recv(timeout=TIMEOUT))
    assert message["started"] == "yes"
    assert message["room"] == "lobby"


# -- routing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/typed/int/42", ["int", "42"]),
        ("/typed/float/2.5", ["float", "2.5"]),
        ("/typed/uuid/" + str(uuid.UUID(int=7)), ["UUID", str(uuid.UUID(int=7))]),
        ("/typed/path/a/b/c.txt", ["str", "a/b/c.txt"]),
        ("/typed/str/h%C3%A9llo%20world", ["str", "héllo world"]),
    ],
)
def test_typed_path_parameters(client: httpx.Client, path: str, expected: list[str]) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"value": expected}


def test_a_parameter_that_does_not_convert_is_404(client: httpx.Client) -> None:
    assert client.get("/typed/int/forty-two").status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    response = client.post("/stream")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_head_sends_headers_without_a_body_via_curl(base_url: str) -> None:
    result = curl("-I", base_url + "/")
    head = result.stdout.decode("latin-1").lower()
    assert head.startswith("http/1.1 200")
    assert "content-length: 11" in head
    assert head.endswith("\r\n\r\n")


# -- JSON -------------------------------------------------------------------------


def test_json_echo_round_trips(client: httpx.Client) -> None:
    payload = {"text": "héllo ☃", "numbers": list(range(100)), "nested": {"ok": True}}
    response = client.post("/echo", json=payload)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == payload


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_chunked_json_request_body_via_curl(base_url: str) -> None:
    # curl sends a body from stdin with Transfer-Encoding: chunked.
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            str(TIMEOUT),
            "-H",
            "content-type: application/json",
            "-H",
            "transfer-encoding: chunked",
            "--data-binary",
            "@-",
            base_url + "/echo",
        ],
        input=json.dumps({"chunked": [1, 2, 3]}).encode(),
        capture_output=True,
        timeout=TIMEOUT + 5,
        check=True,
    )
    assert json.loads(result.stdout) == {"chunked": [1, 2, 3]}


# -- streaming and SSE ------------------------------------------------------------


def test_streaming_response_arrives_whole(client: httpx.Client) -> None:
    with client.stream("GET", "/stream?n=200") as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        body = b"".join(response.iter_bytes())
    assert body == b"".join(f"chunk {i}\n".encode() for i in range(200))


def test_streamed_chunks_are_not_buffered(client: httpx.Client) -> None:
    token = uuid.uuid4().hex
    with client.stream("GET", f"/gate/{token}") as response:
        chunks = response.iter_raw()
        # The second chunk waits for the gate: the first must come alone.
        assert next(chunks) == b"first;"
        assert client.post(f"/gate/{token}/open").text == "opened"
        assert b"".join(chunks) == b"second"


def test_a_client_leaving_mid_stream_closes_the_generator(client: httpx.Client) -> None:
    before = client.get("/counters").json()["endless_closed"]
    with httpx.stream("GET", str(client.base_url) + "/endless", timeout=TIMEOUT) as response:
        next(response.iter_raw())
    deadline = time.monotonic() + 5
    while client.get("/counters").json()["endless_closed"] == before:
        assert time.monotonic() < deadline, "the stream's generator was never closed"
        time.sleep(0.02)


def test_server_sent_events_parse(client: httpx.Client, features: dict[str, bool]) -> None:
    need(features, "asgikit.sse.EventSourceResponse")
    with client.stream("GET", "/events?n=3") as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        text = response.read().decode()
    events = [block for block in text.split("\n\n") if block]
    assert events[:3] == [f'event: tick\nid: {i}\ndata: {{"n":{i}}}' for i in range(3)]
    assert events[3] == "event: multi\ndata: line one\ndata: line two"


# -- files and ranges -------------------------------------------------------------


def test_whole_file_with_validators(client: httpx.Client, features: dict[str, bool]) -> None:
    need(features, "asgikit.files.FileResponse")
    response = client.get("/file")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-disposition"] == 'attachment; filename="data.bin"'
    again = client.get("/file", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


def test_single_range_via_curl(base_url: str, features: dict[str, bool]) -> None:
    need(features, "asgikit.files.FileResponse")
    result = curl("-D", "-", "-r", "1000-70999", base_url + "/file")
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.lower().startswith(b"http/1.1 206")
    assert b"content-range: bytes 1000-70999/262144" in head.lower()
    assert body == DATA[1000:71000]


def test_suffix_multi_and_unsatisfiable_ranges(
    client: httpx.Client, features: dict[str, bool]
) -> None:
    need(features, "asgikit.files.FileResponse")
    suffix = client.get("/file", headers={"range": "bytes=-100"})
    assert (suffix.status_code, suffix.content) == (206, DATA[-100:])
    multi = client.get("/file", headers={"range": "bytes=0-9,100-109"})
    assert multi.status_code == 206
    assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert DATA[0:10] in multi.content
    assert DATA[100:110] in multi.content
    beyond = client.get("/file", headers={"range": "bytes=300000-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(DATA)}"


def test_static_files_and_ranges(client: httpx.Client, features: dict[str, bool]) -> None:
    need(features, "asgikit.staticfiles.static_files")
    hello = client.get("/static/hello.txt")
    assert (hello.status_code, hello.text) == (200, "hello from a static file\n")
    assert hello.headers["content-type"] == "text/plain; charset=utf-8"
    part = client.get("/static/data.bin", headers={"range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, DATA[10:20])
    assert client.get("/static/../conformance_app.py").status_code == 404
    assert client.get("/static/missing.txt").status_code == 404


# -- uploads ----------------------------------------------------------------------


def test_multipart_upload_via_curl(base_url: str, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    content = bytes(range(256)) * 8192  # 2 MiB: past the in-memory spool size
    upload.write_bytes(content)
    result = curl(
        "-F",
        "title=héllo",
        "-F",
        f"file=@{upload};type=application/octet-stream",
        base_url + "/upload",
    )
    answer = json.loads(result.stdout)
    assert answer["fields"] == {"title": "héllo"}
    assert answer["files"]["file"] == {
        "filename": "upload.bin",
        "content_type": "application/octet-stream",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def test_urlencoded_and_multipart_upload_via_httpx(client: httpx.Client) -> None:
    form = client.post("/upload", data={"a": "1", "b": "two words"})
    assert form.json() == {"fields": {"a": "1", "b": "two words"}, "files": {}}
    files = {"doc": ("notes.txt", b"some notes\n", "text/plain")}
    multi = client.post("/upload", data={"x": "y"}, files=files)
    assert multi.json()["fields"] == {"x": "y"}
    assert multi.json()["files"]["doc"]["size"] == len(b"some notes\n")


# -- middleware -------------------------------------------------------------------


def test_cors_compress_and_a_header_layer(client: httpx.Client, features: dict[str, bool]) -> None:
    need(features, "asgikit.middleware.cors.cors")
    need(features, "asgikit.middleware.compress.compress")
    response = client.get(
        "/layered/json",
        headers={"origin": "https://example.com", "accept-encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["access-control-allow-origin"] == "https://example.com"
    assert response.headers["x-layer"] == "1"
    assert len(response.json()["items"]) == 100
    preflight = client.options(
        "/layered/json",
        headers={"origin": "https://example.com", "access-control-request-method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://example.com"


# -- WebSockets -------------------------------------------------------------------


def test_websocket_echo_with_subprotocol(base_url: str) -> None:
    with connect(
        ws_url(base_url, "/ws"),
        subprotocols=["other", "conformance.v2"],  # type: ignore[list-item]
        open_timeout=TIMEOUT,
    ) as ws:
        assert ws.subprotocol == "conformance.v2"
        ws.send("héllo")
        assert ws.recv(timeout=TIMEOUT) == "héllo"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(timeout=TIMEOUT) == b"\x00\xff" * 1000
        big = "x" * 200_000
        ws.send(big)
        assert ws.recv(timeout=TIMEOUT) == big


def test_websocket_without_subprotocol(base_url: str) -> None:
    with connect(ws_url(base_url, "/ws"), open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol is None


def test_websocket_close_code(base_url: str) -> None:
    with connect(ws_url(base_url, "/ws"), open_timeout=TIMEOUT) as ws:
        ws.send("close:4321:see you")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 4321


@gap(daphne=CLOSE_REASON)
def test_websocket_close_reason(base_url: str) -> None:
    with connect(ws_url(base_url, "/ws"), open_timeout=TIMEOUT) as ws:
        ws.send("close:4000:bye now")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert (ws.close_code, ws.close_reason) == (4000, "bye now")


@gap(daphne=WS_HTTP_RESPONSE)
def test_websocket_deny_is_an_http_response(base_url: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(base_url, "/ws/deny"), open_timeout=TIMEOUT)
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert bytes(response.body or b"") == b"who are you?"


@gap(daphne=WS_HTTP_RESPONSE)
def test_unknown_websocket_path_is_404(base_url: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(base_url, "/nowhere"), open_timeout=TIMEOUT)
    assert info.value.response.status_code == 404


def test_refused_websocket_is_refused_everywhere(base_url: str) -> None:
    # Whatever the server offers, a denial never opens the connection.
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(base_url, "/ws/deny"), open_timeout=TIMEOUT)
    assert info.value.response.status_code in (401, 403)
