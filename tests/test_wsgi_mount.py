"""A Flask (WSGI) app mounted under an asgikit router through a2wsgi (examples/wsgi_mount.py).

a2wsgi runs on asyncio only: these tests drive the app through the sync
TestClient (asyncio) and a real uvicorn, not through the trio backend.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from a2wsgi import WSGIMiddleware
from flask import Flask, Response

from asgikit import JSONResponse, Request, lifespan, mount, route, router
from asgikit.testing import TestClient
from examples.wsgi_mount import app as example_app
from tests.servers.live import serve

UPLOAD = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MiB, every byte value


def gated_app() -> tuple[Any, threading.Event]:
    """A Flask app whose stream sends "first", then waits for the test before "second"."""
    gate = threading.Event()
    flask_app = Flask("gated")

    @flask_app.get("/gated")
    def gated() -> Response:
        def body() -> Iterator[str]:
            yield "first\n"
            # Only a streamed first line can reach the client, and let it open the gate.
            yield "second\n" if gate.wait(10) else "the first line was held back\n"

        return Response(body(), mimetype="text/plain")

    return router(mount("/flask", WSGIMiddleware(flask_app))), gate


def test_flask_sees_the_mount_as_script_root_and_url_for_uses_it() -> None:
    with TestClient(example_app) as client:
        assert client.get("/flask/where").json() == {
            "script_root": "/flask",
            "path": "/where",
            "url_for": "/flask/where",
            "greeting": "hello from the lifespan",
        }
        assert client.get("/").json() == {"asgikit": True, "greeting": "hello from the lifespan"}


def test_the_servers_root_path_comes_before_the_mount() -> None:
    with TestClient(example_app, root_path="/proxy") as client:
        found = client.get("/flask/where").json()
    assert found["script_root"] == "/proxy/flask"
    assert found["url_for"] == "/proxy/flask/where"


def test_a_streamed_flask_response_arrives_line_by_line() -> None:
    app, gate = gated_app()
    with TestClient(app) as client, client.stream("GET", "/flask/gated") as response:
        chunks = response.iter_bytes()
        assert next(chunks) == b"first\n"
        gate.set()
        assert b"".join(chunks) == b"second\n"


def test_a_20_mib_upload_arrives_intact() -> None:
    with TestClient(example_app) as client:
        answer = client.post("/flask/upload", content=UPLOAD).json()
    assert answer == {"size": len(UPLOAD), "sha256": hashlib.sha256(UPLOAD).hexdigest()}


def test_the_routers_lifespan_still_runs_around_the_mounted_wsgi_app() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"db": "connected"}
        events.append("shutdown")

    async def status(request: Request) -> JSONResponse:
        return JSONResponse({"db": request.state.db})

    flask_app = Flask("plain")
    flask_app.get("/db")(lambda: {"db": Flask.__name__})
    app = lifespan(
        router(route("/status", status), mount("/legacy", WSGIMiddleware(flask_app))), resources
    )
    with TestClient(app) as client:
        assert events == ["startup"]
        assert client.get("/status").json() == {"db": "connected"}
        assert client.get("/legacy/db").json() == {"db": "Flask"}
    assert events == ["startup", "shutdown"]


def test_under_uvicorn_with_root_path_streaming_and_a_large_upload() -> None:
    with serve(example_app, root_path="/proxy") as base:
        where = httpx.get(base + "/flask/where").json()
        assert where["script_root"] == "/proxy/flask"
        assert where["url_for"] == "/proxy/flask/where"
        assert where["greeting"] == "hello from the lifespan"
        answer = httpx.post(base + "/flask/upload", content=UPLOAD, timeout=30).json()
        assert answer == {"size": len(UPLOAD), "sha256": hashlib.sha256(UPLOAD).hexdigest()}
        assert httpx.get(base + "/flask/count/3").text == "line 0\nline 1\nline 2\n"
    app, gate = gated_app()
    with serve(app, lifespan="on") as base, httpx.stream("GET", base + "/flask/gated") as response:
        chunks = response.iter_bytes()
        assert next(chunks) == b"first\n"
        gate.set()
        assert b"".join(chunks) == b"second\n"
