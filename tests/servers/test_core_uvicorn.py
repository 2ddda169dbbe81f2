"""The core pieces under a real uvicorn, spoken to by a real httpx client.

Routing (404, 405 with ``Allow``, HEAD, trailing-slash redirects), mounts
under a server ``--root-path``, a JSON body echo, a streaming response that
arrives chunk by chunk, and lifespan: its state reaches ``request.state``,
and a failing startup stops the server with the handler's message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from asgikit.lifespan import lifespan
from asgikit.requests import Request
from asgikit.responses import JSONResponse, Response
from asgikit.routing import mount, route, router
from asgikit.streaming import StreamingResponse
from asgikit.types import ASGIApp
from tests.servers.live import free_port, serve

# The streaming test waits on this; a bound keeps a broken stream from hanging.
SAFETY_TIMEOUT = 10.0


async def where(request: Request) -> Response:
    return JSONResponse(
        {
            "path": request.scope["path"],
            "root_path": request.scope["root_path"],
            "params": {k: str(v) for k, v in request.path_params.items()},
            "user_url": str(request.url_for("api:user", id=1)),
        }
    )


async def echo(request: Request) -> Response:
    return JSONResponse({"got": await request.json()})


async def with_state(request: Request) -> Response:
    request.state.hits.append(1)
    return JSONResponse({"name": request.state.name, "hits": len(request.state.hits)})


def core_app(release: threading.Event) -> ASGIApp:
    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first;"
            # The second chunk waits until the client has seen the first, so a
            # buffered response would never arrive (the client times out).
            await anyio.to_thread.run_sync(release.wait, SAFETY_TIMEOUT)
            yield b"second"

        return StreamingResponse(chunks(), media_type="text/plain")

    api = router(route("/users/{id:int}", where, name="user"), route("/where", where))

    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, Any]]:
        yield {"name": "from lifespan", "hits": []}

    return lifespan(
        router(
            route("/", where),
            route("/items/", where, name="items"),
            route("/items/{id:int}", where, methods=["GET", "DELETE"]),
            route("/echo", echo, methods=["POST"]),
            route("/stream", stream),
            route("/state", with_state),
            mount("/api", api, name="api"),
        ),
        resources,
    )


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    release = threading.Event()
    with serve(core_app(release), root_path="/proxy") as url:
        yield url
    release.set()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=SAFETY_TIMEOUT) as http:
        yield http


def test_typed_route_and_mount_under_the_servers_root_path(client: httpx.Client) -> None:
    body = client.get("/api/users/42").json()
    assert body == {
        "path": "/proxy/api/users/42",
        "root_path": "/proxy/api",
        "params": {"id": "42"},
        "user_url": f"{str(client.base_url).rstrip('/')}/proxy/api/users/1",
    }


def test_unknown_path_is_404(client: httpx.Client) -> None:
    response = client.get("/nothing/here")
    assert response.status_code == 404
    assert response.text == "Not Found"


def test_int_parameter_too_long_is_404(client: httpx.Client) -> None:
    assert client.get("/items/" + "1" * 10_000).status_code == 404


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    response = client.put("/items/3")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD"


def test_head_has_headers_and_no_body(client: httpx.Client) -> None:
    get = client.get("/items/3")
    head = client.head("/items/3")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


def test_trailing_slash_redirect_is_relative_and_keeps_root_path_and_query(
    client: httpx.Client,
) -> None:
    response = client.get("/items?page=2", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/proxy/items/?page=2"


def test_json_body_is_echoed(client: httpx.Client) -> None:
    payload = {"name": "ünïcode", "n": [1, 2.5, None, True], "nested": {"k": "v" * 1000}}
    response = client.post("/echo", json=payload)
    assert response.status_code == 200
    assert response.json() == {"got": payload}


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_streaming_response_arrives_chunk_by_chunk() -> None:
    release = threading.Event()  # its own server: the event is used once
    with (
        serve(core_app(release)) as url,
        httpx.Client(timeout=SAFETY_TIMEOUT) as http,
        http.stream("GET", url + "/stream") as response,
    ):
        chunks = response.iter_raw()
        assert next(chunks) == b"first;"
        release.set()
        rest = b"".join(chunks)
    assert rest == b"second"


def test_lifespan_state_reaches_request_state(client: httpx.Client) -> None:
    first = client.get("/state").json()
    second = client.get("/state").json()
    assert first["name"] == "from lifespan"
    assert second["hits"] == first["hits"] + 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("failing_handler", "ConnectionRefusedError: database at db:5432 refused"),
        ("failing_mount", "sub-app has no config"),
    ],
)
def test_failing_startup_stops_the_server_with_the_message(target: str, message: str) -> None:
    root = Path(__file__).resolve().parents[2]
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"tests.servers.core_apps:{target}",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--lifespan",
        "on",
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, timeout=60)
    stderr = done.stderr.decode()
    assert done.returncode != 0
    assert message in stderr
    assert "Application startup failed" in stderr
